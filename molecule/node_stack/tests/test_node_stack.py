"""Verify the node roles on the mini datacenter, as playbooks/nodes.yml applied them from the plan."""

from __future__ import annotations

import pytest
import testinfra
import yaml

M1 = testinfra.get_host("podman://mol-ns-m1")
W1 = testinfra.get_host("podman://mol-ns-w1")
LVS1 = testinfra.get_host("podman://mol-ns-lvs1")
NODES = [pytest.param(M1, id="m1"), pytest.param(W1, id="w1")]
ALL = [*NODES, pytest.param(LVS1, id="lvs1")]


def _labels(host):
    env = dict(
        line.split("=", 1)
        for line in host.file("/etc/kubernetes/kubelet.env").content_string.splitlines()
        if not line.startswith("#")
    )
    return dict(item.split("=", 1) for item in env["KUBELET_NODE_LABELS"].split(","))


@pytest.mark.parametrize(
    ("host", "labels"),
    [
        pytest.param(
            M1,
            {
                "cloud58.io/function": "master",
                "cloud58.io/location": "mini",
                "cloud58.io/rack": "mini-r1",
                "topology.kubernetes.io/region": "mini",
                "topology.kubernetes.io/zone": "mini-r1",
            },
            id="m1",
        ),
        pytest.param(
            W1,
            {
                "cloud58.io/function": "online",
                "cloud58.io/location": "mini",
                "cloud58.io/rack": "mini-r2",
                "cloud58.io/team": "search",
                "topology.kubernetes.io/region": "mini",
                "topology.kubernetes.io/zone": "mini-r2",
            },
            id="w1",
        ),
    ],
)
def test_labels_come_from_the_plan(host, labels):
    assert _labels(host) == labels


@pytest.mark.parametrize("host", NODES)
def test_kubelet_config_follows_the_cluster(host):
    config = yaml.safe_load(host.file("/var/lib/kubelet/config.yaml").content_string)
    assert {k: config[k] for k in ("maxPods", "clusterDNS", "cgroupDriver")} == {
        "maxPods": 32,
        "clusterDNS": ["198.18.104.10"],
        "cgroupDriver": "systemd",
    }
    # containerd and the kubelet agree on the cgroup driver.
    assert "SystemdCgroup = true" in host.check_output("containerd config dump")


@pytest.mark.parametrize("host", NODES)
def test_runtime_and_kubelet_run(host):
    for unit in ("containerd.service", "kubelet.service"):
        assert host.service(unit).is_enabled
        assert host.service(unit).is_running
    healthz = host.check_output(
        "python3 -c 'import urllib.request as u; print(u.urlopen(\"http://127.0.0.1:10248/healthz\").read().decode())'"
    )
    assert healthz == "ok"


def test_lvs_director_gets_kernel_tuning_only():
    modules = LVS1.file("/etc/modules-load.d/cloud58.conf").content_string.splitlines()
    assert [m for m in modules if not m.startswith("#")] == [
        "overlay",
        "br_netfilter",
        "nf_conntrack",
        "ip_vs",
        "ip_vs_rr",
        "ip_vs_wrr",
        "ip_vs_wlc",
        "ip_vs_sh",
    ]
    assert not LVS1.file("/usr/local/bin/kubelet").exists
    assert not LVS1.package("containerd").is_installed


@pytest.mark.parametrize("host", ALL)
def test_namespaced_sysctls_are_live(host):
    for key, value in (
        ("net.ipv4.ip_forward", "1"),
        ("net.ipv4.conf.all.rp_filter", "0"),
        ("net.ipv4.conf.eth0.rp_filter", "0"),
        ("net.ipv4.fib_multipath_hash_policy", "1"),
        ("net.ipv4.ip_local_port_range", "10240 65535"),
    ):
        assert " ".join(host.file("/proc/sys/" + key.replace(".", "/")).content_string.split()) == value


@pytest.mark.parametrize("host", NODES)
def test_kubernetes_nodes_reserve_the_nodeports(host):
    assert (
        host.file("/proc/sys/net/ipv4/ip_local_reserved_ports").content_string.strip()
        == "10248-10259,30000-32767"
    )


@pytest.mark.parametrize("host", ALL)
def test_no_unit_failed(host):
    assert host.check_output("systemctl --failed --no-legend --plain") == ""
