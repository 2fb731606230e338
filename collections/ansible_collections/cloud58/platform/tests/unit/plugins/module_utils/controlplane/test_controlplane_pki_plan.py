"""Which certificates a cluster gets, their SANs, and which files land on which host."""

from __future__ import annotations

from ansible_collections.cloud58.platform.plugins.module_utils.controlplane.pki_plan import (
    apiserver_sans,
    pki_plan,
    split_sans,
)
from ansible_collections.cloud58.platform.plugins.module_utils.controlplane.settings import settings_from


def test_apiserver_sans_cover_vip_dns_masters_and_the_service(lab_plan):
    settings = settings_from(
        {"extra_sans": ["api-lab1.example.org", "198.18.2.30"], "cluster_domain": "lab.local"}
    )
    assert apiserver_sans(lab_plan["clusters"]["lab1-k8s"], settings) == (
        [
            "kubernetes",
            "kubernetes.default",
            "kubernetes.default.svc",
            "kubernetes.default.svc.lab.local",
            "api.lab1-k8s.lab.cloud58.test",
            "localhost",
            "lab1-m1",
            "lab1-m2",
            "lab1-m3",
            "api-lab1.example.org",
        ],
        ["198.18.8.1", "198.18.2.1", "198.18.0.11", "198.18.0.75", "198.18.0.12", "127.0.0.1", "198.18.2.30"],
    )


def test_split_sans():
    assert split_sans(["a.example", "10.0.0.1", "::1", "b"]) == (["a.example", "b"], ["10.0.0.1", "::1"])


def test_plan_lists_every_certificate_once(lab_plan):
    plan = pki_plan(lab_plan["clusters"]["lab2-k8s"], settings_from({}))
    assert [ca["name"] for ca in plan["cas"]] == ["ca", "etcd/ca", "front-proxy-ca"]
    assert [c["name"] for c in plan["certs"]] == [
        "apiserver",
        "apiserver-kubelet-client",
        "apiserver-etcd-client",
        "front-proxy-client",
        "admin",
        "controller-manager",
        "scheduler",
        "prometheus",
        "prometheus-etcd-client",
        "consul-sync",
        "lvs-sync",
        "etcd/lab2-m1-server",
        "etcd/lab2-m1-peer",
        "etcd/lab2-m2-server",
        "etcd/lab2-m2-peer",
        "etcd/lab2-m3-server",
        "etcd/lab2-m3-peer",
        "etcd/lab2-m1-events-server",
        "etcd/lab2-m1-events-peer",
        "etcd/lab2-m2-events-server",
        "etcd/lab2-m2-events-peer",
        "etcd/lab2-m3-events-server",
        "etcd/lab2-m3-events-peer",
        "kubelet/lab2-m1",
        "kubelet/lab2-m2",
        "kubelet/lab2-m3",
        "kubelet/lab2-w1",
        "kubelet/lab2-w2",
        "agents/lab2-w1-netshaper",
        "agents/lab2-w1-overload",
        "agents/lab2-w1-crashkeeper",
        "agents/lab2-w1-loadannotator",
        "agents/lab2-w2-netshaper",
        "agents/lab2-w2-overload",
        "agents/lab2-w2-crashkeeper",
        "agents/lab2-w2-loadannotator",
    ]
    by_name = {c["name"]: c for c in plan["certs"]}
    assert by_name["etcd/lab2-m2-server"] == {
        "name": "etcd/lab2-m2-server",
        "ca": "etcd/ca",
        "common_name": "lab2-m2-etcd-server",
        "organizations": [],
        "dns_names": ["lab2-m2", "localhost"],
        "ip_addresses": ["198.19.0.75", "127.0.0.1"],
        "usages": ["client", "server"],
    }
    assert by_name["kubelet/lab2-w1"] == {
        "name": "kubelet/lab2-w1",
        "ca": "ca",
        "common_name": "system:node:lab2-w1",
        "organizations": ["system:nodes"],
        "dns_names": [],
        "ip_addresses": [],
        "usages": ["client"],
    }
    assert by_name["prometheus"] == {
        "name": "prometheus",
        "ca": "ca",
        "common_name": "cloud58:prometheus",
        "organizations": [],
        "dns_names": [],
        "ip_addresses": [],
        "usages": ["client"],
    }
    assert by_name["consul-sync"] == {
        "name": "consul-sync",
        "ca": "ca",
        "common_name": "cloud58:consul-sync",
        "organizations": [],
        "dns_names": [],
        "ip_addresses": [],
        "usages": ["client"],
    }
    assert by_name["lvs-sync"] == {
        "name": "lvs-sync",
        "ca": "ca",
        "common_name": "cloud58:lvs-sync",
        "organizations": [],
        "dns_names": [],
        "ip_addresses": [],
        "usages": ["client"],
    }
    assert (by_name["prometheus-etcd-client"]["ca"], by_name["prometheus-etcd-client"]["usages"]) == (
        "etcd/ca",
        ["client"],
    )
    assert by_name["agents/lab2-w2-overload"] == {
        "name": "agents/lab2-w2-overload",
        "ca": "ca",
        "common_name": "cloud58:overload:lab2-w2",
        "organizations": ["cloud58:overload"],
        "dns_names": [],
        "ip_addresses": [],
        "usages": ["client"],
    }
    assert by_name["controller-manager"]["common_name"] == "system:kube-controller-manager"
    assert by_name["admin"]["organizations"] == ["system:masters"]
    assert by_name["apiserver"]["usages"] == ["server"]
    assert plan["signing_keys"] == ["sa"]


def test_master_files(lab_plan):
    files = pki_plan(lab_plan["clusters"]["lab1-k8s"], settings_from({}))["host_files"]["lab1-m1"]
    assert [(f["src"], f["dest"], f["secret"]) for f in files] == [
        ("admin.crt", "admin.crt", False),
        ("admin.key", "admin.key", True),
        ("apiserver-etcd-client.crt", "apiserver-etcd-client.crt", False),
        ("apiserver-etcd-client.key", "apiserver-etcd-client.key", True),
        ("apiserver-kubelet-client.crt", "apiserver-kubelet-client.crt", False),
        ("apiserver-kubelet-client.key", "apiserver-kubelet-client.key", True),
        ("apiserver.crt", "apiserver.crt", False),
        ("apiserver.key", "apiserver.key", True),
        ("ca.crt", "ca.crt", False),
        ("ca.key", "ca.key", True),
        ("controller-manager.crt", "controller-manager.crt", False),
        ("controller-manager.key", "controller-manager.key", True),
        ("encryption-config.yaml", "encryption-config.yaml", True),
        ("etcd/ca.crt", "etcd/ca.crt", False),
        ("etcd/lab1-m1-events-peer.crt", "etcd/events-peer.crt", False),
        ("etcd/lab1-m1-events-peer.key", "etcd/events-peer.key", True),
        ("etcd/lab1-m1-events-server.crt", "etcd/events-server.crt", False),
        ("etcd/lab1-m1-events-server.key", "etcd/events-server.key", True),
        ("etcd/lab1-m1-peer.crt", "etcd/peer.crt", False),
        ("etcd/lab1-m1-peer.key", "etcd/peer.key", True),
        ("etcd/lab1-m1-server.crt", "etcd/server.crt", False),
        ("etcd/lab1-m1-server.key", "etcd/server.key", True),
        ("front-proxy-ca.crt", "front-proxy-ca.crt", False),
        ("front-proxy-client.crt", "front-proxy-client.crt", False),
        ("front-proxy-client.key", "front-proxy-client.key", True),
        ("kubelet/lab1-m1.crt", "kubelet-client.crt", False),
        ("kubelet/lab1-m1.key", "kubelet-client.key", True),
        ("sa.key", "sa.key", True),
        ("sa.pub", "sa.pub", False),
        ("scheduler.crt", "scheduler.crt", False),
        ("scheduler.key", "scheduler.key", True),
    ]


def test_events_only_host_gets_only_its_etcd_files(bj1_plan):
    (cluster,) = bj1_plan["clusters"].values()
    host = cluster["etcd_events"]["members"][1]["name"]
    files = pki_plan(cluster, settings_from({}))["host_files"][host]
    assert [(f["src"], f["dest"]) for f in files] == [
        ("etcd/ca.crt", "etcd/ca.crt"),
        (f"etcd/{host}-events-peer.crt", "etcd/events-peer.crt"),
        (f"etcd/{host}-events-peer.key", "etcd/events-peer.key"),
        (f"etcd/{host}-events-server.crt", "etcd/events-server.crt"),
        (f"etcd/{host}-events-server.key", "etcd/events-server.key"),
    ]
    assert sorted(pki_plan(cluster, settings_from({}))["host_files"]) == sorted(
        {*cluster["masters"], *cluster["minions"], *(m["name"] for m in cluster["etcd_events"]["members"])}
    )


def test_minion_gets_the_ca_its_kubelet_pair_and_its_agents_pairs_only(lab_plan):
    files = pki_plan(lab_plan["clusters"]["lab1-k8s"], settings_from({}))["host_files"]["lab1-w2"]
    assert [(f["src"], f["dest"], f["secret"]) for f in files] == [
        ("ca.crt", "ca.crt", False),
        ("agents/lab1-w2-crashkeeper.crt", "crashkeeper.crt", False),
        ("agents/lab1-w2-crashkeeper.key", "crashkeeper.key", True),
        ("kubelet/lab1-w2.crt", "kubelet-client.crt", False),
        ("kubelet/lab1-w2.key", "kubelet-client.key", True),
        ("agents/lab1-w2-loadannotator.crt", "loadannotator.crt", False),
        ("agents/lab1-w2-loadannotator.key", "loadannotator.key", True),
        ("agents/lab1-w2-netshaper.crt", "netshaper.crt", False),
        ("agents/lab1-w2-netshaper.key", "netshaper.key", True),
        ("agents/lab1-w2-overload.crt", "overload.crt", False),
        ("agents/lab1-w2-overload.key", "overload.key", True),
    ]
