"""Static pod manifests from the plan: exact flags, images, probes, volumes, per-host sets."""

from __future__ import annotations

import pytest

from ansible_collections.cloud58.platform.plugins.module_utils.controlplane.manifests import (
    PKI_DIGEST_ANNOTATION,
    component_pki_files,
    host_components,
    host_kubeconfigs,
    host_manifests,
)
from ansible_collections.cloud58.platform.plugins.module_utils.controlplane.settings import settings_from

SETTINGS = settings_from({"image_registry": "localhost/cloud58"})
PKI = "/etc/kubernetes/pki"


def _flags(pod):
    command = pod["spec"]["containers"][0]["command"]
    return command[0], dict(arg[2:].split("=", 1) for arg in command[1:])


def test_lab_master_runs_all_five(lab_plan):
    cluster = lab_plan["clusters"]["lab1-k8s"]
    assert host_components(cluster, "lab1-m2") == [
        "etcd",
        "etcd-events",
        "kube-apiserver",
        "kube-controller-manager",
        "kube-scheduler",
    ]
    assert sorted(host_manifests(cluster, "lab1-m2", SETTINGS)) == [
        "etcd-events.yaml",
        "etcd.yaml",
        "kube-apiserver.yaml",
        "kube-controller-manager.yaml",
        "kube-scheduler.yaml",
    ]


def test_bj1_events_etcd_lives_on_its_own_hosts(bj1_plan):
    (name,) = bj1_plan["clusters"]
    cluster = bj1_plan["clusters"][name]
    events_host = cluster["etcd_events"]["members"][0]["name"]
    master = cluster["masters"][0]
    assert host_components(cluster, events_host) == ["etcd-events"]
    assert host_components(cluster, master) == [
        "etcd",
        "kube-apiserver",
        "kube-controller-manager",
        "kube-scheduler",
    ]
    assert host_components(cluster, "bj1-no-such-host") == []


def test_apiserver_flags(lab_plan):
    pod = host_manifests(lab_plan["clusters"]["lab1-k8s"], "lab1-m2", SETTINGS)["kube-apiserver.yaml"]
    program, flags = _flags(pod)
    assert program == "kube-apiserver"
    assert flags == {
        "advertise-address": "198.18.0.75",
        "allow-privileged": "true",
        "anonymous-auth": "true",
        "audit-log-maxage": "7",
        "audit-log-maxbackup": "10",
        "audit-log-maxsize": "100",
        "audit-log-path": "/var/log/kubernetes/audit/audit.log",
        "audit-policy-file": "/etc/kubernetes/audit-policy.yaml",
        "authorization-mode": "Node,RBAC",
        "bind-address": "0.0.0.0",
        "client-ca-file": f"{PKI}/ca.crt",
        "enable-admission-plugins": "NodeRestriction",
        "enable-bootstrap-token-auth": "true",
        "encryption-provider-config": f"{PKI}/encryption-config.yaml",
        "endpoint-reconciler-type": "lease",
        "etcd-cafile": f"{PKI}/etcd/ca.crt",
        "etcd-certfile": f"{PKI}/apiserver-etcd-client.crt",
        "etcd-keyfile": f"{PKI}/apiserver-etcd-client.key",
        "etcd-servers": "https://198.18.0.11:2379,https://198.18.0.75:2379,https://198.18.0.12:2379",
        "etcd-servers-overrides": "/events#https://198.18.0.11:2383;https://198.18.0.75:2383;https://198.18.0.12:2383",
        "kubelet-client-certificate": f"{PKI}/apiserver-kubelet-client.crt",
        "kubelet-client-key": f"{PKI}/apiserver-kubelet-client.key",
        "kubelet-preferred-address-types": "InternalIP,ExternalIP,Hostname",
        "profiling": "false",
        "proxy-client-cert-file": f"{PKI}/front-proxy-client.crt",
        "proxy-client-key-file": f"{PKI}/front-proxy-client.key",
        "requestheader-allowed-names": "front-proxy-client",
        "requestheader-client-ca-file": f"{PKI}/front-proxy-ca.crt",
        "requestheader-extra-headers-prefix": "X-Remote-Extra-",
        "requestheader-group-headers": "X-Remote-Group",
        "requestheader-username-headers": "X-Remote-User",
        "secure-port": "6443",
        "service-account-issuer": "https://kubernetes.default.svc.cluster.local",
        "service-account-key-file": f"{PKI}/sa.pub",
        "service-account-signing-key-file": f"{PKI}/sa.key",
        "service-cluster-ip-range": "198.18.8.0/24",
        "tls-cert-file": f"{PKI}/apiserver.crt",
        "tls-min-version": "VersionTLS12",
        "tls-private-key-file": f"{PKI}/apiserver.key",
    }
    container = pod["spec"]["containers"][0]
    assert container["image"] == "localhost/cloud58/kube-apiserver:v1.36.3"
    assert container["livenessProbe"]["httpGet"] == {
        "host": "198.18.0.75",
        "port": 6443,
        "path": "/livez",
        "scheme": "HTTPS",
    }
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert pod["spec"]["volumes"] == [
        {"name": "k8s-certs", "hostPath": {"path": PKI, "type": "Directory"}},
        {"name": "audit-policy", "hostPath": {"path": "/etc/kubernetes/audit-policy.yaml", "type": "File"}},
        {"name": "audit-log", "hostPath": {"path": "/var/log/kubernetes/audit", "type": "DirectoryOrCreate"}},
    ]


@pytest.mark.parametrize(
    ("events", "expected"),
    [
        (
            False,
            {
                "name": "lab1-m3",
                "data-dir": "/var/lib/etcd",
                "listen-client-urls": "https://127.0.0.1:2379,https://198.18.0.12:2379",
                "advertise-client-urls": "https://198.18.0.12:2379",
                "listen-peer-urls": "https://198.18.0.12:2380",
                "initial-advertise-peer-urls": "https://198.18.0.12:2380",
                "initial-cluster": "lab1-m1=https://198.18.0.11:2380,lab1-m2=https://198.18.0.75:2380,"
                "lab1-m3=https://198.18.0.12:2380",
                "initial-cluster-state": "new",
                "initial-cluster-token": "lab1-k8s-etcd",
                "listen-metrics-urls": "http://127.0.0.1:2381",
                "cert-file": f"{PKI}/etcd/server.crt",
                "key-file": f"{PKI}/etcd/server.key",
                "peer-cert-file": f"{PKI}/etcd/peer.crt",
                "peer-key-file": f"{PKI}/etcd/peer.key",
                "trusted-ca-file": f"{PKI}/etcd/ca.crt",
                "peer-trusted-ca-file": f"{PKI}/etcd/ca.crt",
                "client-cert-auth": "true",
                "peer-client-cert-auth": "true",
                "snapshot-count": "10000",
                "quota-backend-bytes": "8589934592",
                "auto-compaction-mode": "periodic",
                "auto-compaction-retention": "8h",
            },
        ),
        (
            True,
            {
                "name": "lab1-m3",
                "data-dir": "/var/lib/etcd-events",
                "listen-client-urls": "https://127.0.0.1:2383,https://198.18.0.12:2383",
                "advertise-client-urls": "https://198.18.0.12:2383",
                "listen-peer-urls": "https://198.18.0.12:2382",
                "initial-advertise-peer-urls": "https://198.18.0.12:2382",
                "initial-cluster": "lab1-m1=https://198.18.0.11:2382,lab1-m2=https://198.18.0.75:2382,"
                "lab1-m3=https://198.18.0.12:2382",
                "initial-cluster-state": "new",
                "initial-cluster-token": "lab1-k8s-etcd-events",
                "listen-metrics-urls": "http://127.0.0.1:2384",
                "cert-file": f"{PKI}/etcd/events-server.crt",
                "key-file": f"{PKI}/etcd/events-server.key",
                "peer-cert-file": f"{PKI}/etcd/events-peer.crt",
                "peer-key-file": f"{PKI}/etcd/events-peer.key",
                "trusted-ca-file": f"{PKI}/etcd/ca.crt",
                "peer-trusted-ca-file": f"{PKI}/etcd/ca.crt",
                "client-cert-auth": "true",
                "peer-client-cert-auth": "true",
                "snapshot-count": "10000",
                "quota-backend-bytes": "8589934592",
                "auto-compaction-mode": "periodic",
                "auto-compaction-retention": "8h",
            },
        ),
    ],
    ids=["main", "events"],
)
def test_etcd_flags_ports_and_data_dirs(lab_plan, events, expected):
    name = "etcd-events.yaml" if events else "etcd.yaml"
    pod = host_manifests(lab_plan["clusters"]["lab1-k8s"], "lab1-m3", SETTINGS)[name]
    assert _flags(pod) == ("etcd", expected)
    container = pod["spec"]["containers"][0]
    assert container["image"] == "localhost/cloud58/etcd:v3.6.8"
    port = 2384 if events else 2381
    assert container["livenessProbe"]["httpGet"] == {
        "host": "127.0.0.1",
        "port": port,
        "path": "/livez",
        "scheme": "HTTP",
    }
    assert pod["spec"]["volumes"][0] == {
        "name": "etcd-data",
        "hostPath": {"path": expected["data-dir"], "type": "DirectoryOrCreate"},
    }


def test_controller_manager_eviction_and_leader_election_from_settings(lab_plan):
    settings = settings_from(
        {
            "eviction": {
                "node_monitor_grace_period": "20s",
                "node_eviction_rate": 0.2,
                "secondary_node_eviction_rate": 0.02,
                "unhealthy_zone_threshold": 0.7,
                "large_cluster_size_threshold": 30,
            },
            "leader_election": {"lease_duration": "30s", "renew_deadline": "20s", "retry_period": "4s"},
            "controller_manager_extra_args": {"concurrent-deployment-syncs": 10, "profiling": True},
        }
    )
    pod = host_manifests(lab_plan["clusters"]["lab1-k8s"], "lab1-m1", settings)[
        "kube-controller-manager.yaml"
    ]
    flags = _flags(pod)[1]
    tuned = {
        k: flags[k]
        for k in (
            "node-monitor-grace-period",
            "node-eviction-rate",
            "secondary-node-eviction-rate",
            "unhealthy-zone-threshold",
            "large-cluster-size-threshold",
            "leader-elect",
            "leader-elect-lease-duration",
            "leader-elect-renew-deadline",
            "leader-elect-retry-period",
            "concurrent-deployment-syncs",
            "profiling",
            "cluster-name",
            "allocate-node-cidrs",
            "kubeconfig",
        )
    }
    assert tuned == {
        "node-monitor-grace-period": "20s",
        "node-eviction-rate": "0.2",
        "secondary-node-eviction-rate": "0.02",
        "unhealthy-zone-threshold": "0.7",
        "large-cluster-size-threshold": "30",
        "leader-elect": "true",
        "leader-elect-lease-duration": "30s",
        "leader-elect-renew-deadline": "20s",
        "leader-elect-retry-period": "4s",
        "concurrent-deployment-syncs": "10",
        "profiling": "true",
        "cluster-name": "lab1-k8s",
        "allocate-node-cidrs": "false",
        "kubeconfig": "/etc/kubernetes/controller-manager.conf",
    }


def test_scheduler_flags(lab_plan):
    pod = host_manifests(lab_plan["clusters"]["lab2-k8s"], "lab2-m1", SETTINGS)["kube-scheduler.yaml"]
    assert _flags(pod) == (
        "kube-scheduler",
        {
            "authentication-kubeconfig": "/etc/kubernetes/scheduler.conf",
            "authorization-kubeconfig": "/etc/kubernetes/scheduler.conf",
            "bind-address": "198.19.0.11",
            "kubeconfig": "/etc/kubernetes/scheduler.conf",
            "leader-elect": "true",
            "leader-elect-lease-duration": "15s",
            "leader-elect-renew-deadline": "10s",
            "leader-elect-retry-period": "2s",
            "profiling": "false",
            "secure-port": "10259",
        },
    )


@pytest.mark.parametrize(
    ("host", "component", "expected"),
    [
        ("lab1-m1", "kube-controller-manager", ("198.18.0.11", 10257, "/healthz")),
        ("lab1-m2", "kube-scheduler", ("198.18.0.75", 10259, "/livez")),
        ("lab2-m1", "kube-controller-manager", ("198.19.0.11", 10257, "/healthz")),
    ],
)
def test_controllers_serve_and_are_probed_on_the_masters_address(lab_plan, host, component, expected):
    """Not on loopback, where a Prometheus on another host cannot scrape their /metrics."""
    cluster = lab_plan["clusters"][host[:4] + "-k8s"]
    pod = host_manifests(cluster, host, SETTINGS)[f"{component}.yaml"]
    container = pod["spec"]["containers"][0]
    probe = container["livenessProbe"]["httpGet"]
    assert (_flags(pod)[1]["bind-address"], probe["host"]) == (expected[0], expected[0])
    assert (probe["port"], probe["path"], probe["scheme"]) == (*expected[1:], "HTTPS")


def test_every_container_has_three_probes_and_the_common_labels(lab_plan):
    cluster = lab_plan["clusters"]["lab2-k8s"]
    for file, pod in host_manifests(cluster, "lab2-m3", SETTINGS).items():
        container = pod["spec"]["containers"][0]
        assert {p for p in ("startupProbe", "livenessProbe", "readinessProbe") if p in container} == {
            "startupProbe",
            "livenessProbe",
            "readinessProbe",
        }, file
        assert pod["metadata"]["labels"]["app.kubernetes.io/managed-by"] == "cloud58"
        assert pod["metadata"]["labels"]["cloud58.io/cluster"] == "lab2-k8s"
        assert pod["metadata"]["namespace"] == "kube-system"
        assert pod["spec"]["hostNetwork"] is True
        assert pod["spec"]["priorityClassName"] == "system-node-critical"


def test_one_version_moves_every_image(lab_plan):
    settings = settings_from({"version": "v1.36.9", "image_registry": "reg.example/k8s"})
    images = {
        f: p["spec"]["containers"][0]["image"]
        for f, p in host_manifests(lab_plan["clusters"]["lab1-k8s"], "lab1-m1", settings).items()
    }
    assert images == {
        "etcd.yaml": "reg.example/k8s/etcd:v3.6.8",
        "etcd-events.yaml": "reg.example/k8s/etcd:v3.6.8",
        "kube-apiserver.yaml": "reg.example/k8s/kube-apiserver:v1.36.9",
        "kube-controller-manager.yaml": "reg.example/k8s/kube-controller-manager:v1.36.9",
        "kube-scheduler.yaml": "reg.example/k8s/kube-scheduler:v1.36.9",
    }


def test_digest_annotation_only_when_given(lab_plan):
    cluster = lab_plan["clusters"]["lab1-k8s"]
    plain = host_manifests(cluster, "lab1-m1", SETTINGS, ["etcd"])
    marked = host_manifests(cluster, "lab1-m1", SETTINGS, ["etcd"], digests={"etcd": "abc"})
    assert "annotations" not in plain["etcd.yaml"]["metadata"]
    assert marked["etcd.yaml"]["metadata"]["annotations"] == {PKI_DIGEST_ANNOTATION: "abc"}


def test_unknown_component_is_refused(lab_plan):
    with pytest.raises(ValueError, match=r"unknown components \['kube-proxy'\]"):
        host_manifests(lab_plan["clusters"]["lab1-k8s"], "lab1-m1", SETTINGS, ["kube-proxy"])


def test_component_pki_files_cover_every_pki_path_its_manifest_names(lab_plan):
    cluster = lab_plan["clusters"]["lab1-k8s"]
    for file, pod in host_manifests(cluster, "lab1-m1", SETTINGS).items():
        component = file[: -len(".yaml")]
        named = {
            value[len(PKI) + 1 :]
            for arg in pod["spec"]["containers"][0]["command"][1:]
            for value in arg.split("=", 1)[1].split(",")
            if value.startswith(PKI + "/")
        }
        named |= {
            v["hostPath"]["path"][len(PKI) + 1 :]
            for v in pod["spec"]["volumes"]
            if v["hostPath"]["path"].startswith(PKI + "/") and v["hostPath"]["type"] == "File"
        }
        if component == "kube-controller-manager":
            named |= {"controller-manager.crt", "controller-manager.key"}  # through controller-manager.conf
        assert named == set(component_pki_files(component)), component


def test_every_file_a_kubeconfig_names_is_mounted(lab_plan):
    cluster = lab_plan["clusters"]["lab1-k8s"]
    configs = host_kubeconfigs(cluster, "lab1-m1", SETTINGS)
    pods = host_manifests(cluster, "lab1-m1", SETTINGS)
    for manifest, conf in (
        ("kube-scheduler.yaml", "scheduler.conf"),
        ("kube-controller-manager.yaml", "controller-manager.conf"),
    ):
        kubeconfig = configs[conf]
        named = {
            kubeconfig["clusters"][0]["cluster"]["certificate-authority"],
            kubeconfig["users"][0]["user"]["client-certificate"],
            kubeconfig["users"][0]["user"]["client-key"],
            f"/etc/kubernetes/{conf}",
        }
        mounts = [m["mountPath"] for m in pods[manifest]["spec"]["containers"][0]["volumeMounts"]]
        unmounted = {path for path in named if not any(path == m or path.startswith(m + "/") for m in mounts)}
        assert unmounted == set(), manifest


def test_kubeconfigs_reach_the_local_apiserver_and_admin_the_endpoint(lab_plan):
    cluster = lab_plan["clusters"]["lab1-k8s"]
    configs = host_kubeconfigs(cluster, "lab1-m2", SETTINGS)
    servers = {name: c["clusters"][0]["cluster"]["server"] for name, c in configs.items()}
    assert servers == {
        "admin.conf": "https://api.lab1-k8s.lab.cloud58.test:6443",
        "controller-manager.conf": "https://198.18.0.75:6443",
        "scheduler.conf": "https://198.18.0.75:6443",
    }
    assert configs["scheduler.conf"]["users"] == [
        {
            "name": "system:kube-scheduler",
            "user": {"client-certificate": f"{PKI}/scheduler.crt", "client-key": f"{PKI}/scheduler.key"},
        }
    ]
    assert configs["admin.conf"]["current-context"] == "lab1-k8s"
    other = host_kubeconfigs(cluster, "lab1-m2", settings_from({"admin_server": "https://198.18.2.1:8443"}))
    assert other["admin.conf"]["clusters"][0]["cluster"]["server"] == "https://198.18.2.1:8443"


def test_a_host_outside_the_control_plane_is_refused(lab_plan):
    from ansible_collections.cloud58.platform.plugins.module_utils.controlplane.manifests import apiserver_pod

    with pytest.raises(ValueError, match="host 'lab1-w1' is not a master of cluster 'lab1-k8s'"):
        apiserver_pod(lab_plan["clusters"]["lab1-k8s"], "lab1-w1", SETTINGS)
