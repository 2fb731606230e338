"""The pods of a node as cloud58-netshaper watch sees them: veth, PID limit, cgroup, metrics."""

from __future__ import annotations

import json

import pytest

from ansible_collections.cloud58.platform.plugins.module_utils.node import podwatch
from ansible_collections.cloud58.platform.plugins.module_utils.node.shaper import ShaperError

UID = "8d3e5a4c-1f2b-4c5d-9e8f-0a1b2c3d4e5f"


def _pod(annotations=None, **spec_status):
    return {
        "metadata": {"namespace": "lab-demo", "name": "echo-0", "uid": UID, "annotations": annotations},
        "spec": spec_status.get("spec", {}),
        "status": spec_status.get("status", {"qosClass": "Burstable", "phase": "Running"}),
    }


def _being_deleted(pod: dict) -> dict:
    """The pod as the API server has it once its deletion was asked for (the kubelet tears it down)."""
    return {**pod, "metadata": {**pod["metadata"], "deletionTimestamp": "2026-12-06T17:00:00Z"}}


def test_calico_veth_is_cali_and_11_hex_digits_of_sha1_namespace_dot_name():
    # sha1("lab-demo.echo-0") = 2f15f2fa83d...
    assert podwatch.calico_veth("lab-demo", "echo-0") == "cali2f15f2fa83d"
    assert podwatch.calico_veth("lab-demo", "echo-0", prefix="tap") == "tap2f15f2fa83d"


@pytest.mark.parametrize(
    ("annotations", "expected"),
    [
        pytest.param(None, None, id="none"),
        pytest.param({"cloud58.io/pids-limit": "512"}, 512, id="string"),
        pytest.param({"cloud58.io/pids-limit": " 1 "}, 1, id="smallest"),
        pytest.param({"cloud58.io/pids-limit": "4194304"}, 4194304, id="pid-max"),
    ],
)
def test_pids_limit_from_annotations(annotations, expected):
    assert podwatch.pids_limit_from_annotations("lab-demo/echo-0", annotations) == expected


@pytest.mark.parametrize(
    ("value", "message"),
    [
        pytest.param("-1", "'-1' is not a whole number of processes", id="negative"),
        pytest.param("1k", "'1k' is not a whole number of processes", id="quantity"),
        pytest.param("0", "'0' is not between 1 and 4194304", id="zero"),
        pytest.param("4194305", "'4194305' is not between 1 and 4194304", id="above-pid-max"),
    ],
)
def test_bad_pids_limit_names_pod_annotation_and_value(value, message):
    with pytest.raises(ShaperError) as e:
        podwatch.pids_limit_from_annotations("lab-demo/echo-0", {"cloud58.io/pids-limit": value})
    assert str(e.value) == f"pod lab-demo/echo-0: annotation cloud58.io/pids-limit: {message}"


@pytest.mark.parametrize(
    ("qos", "driver", "path"),
    [
        pytest.param("BestEffort", "cgroupfs", f"kubepods/besteffort/pod{UID}", id="cgroupfs-besteffort"),
        pytest.param("Burstable", "cgroupfs", f"kubepods/burstable/pod{UID}", id="cgroupfs-burstable"),
        pytest.param("Guaranteed", "cgroupfs", f"kubepods/pod{UID}", id="cgroupfs-guaranteed"),
        pytest.param(
            "Burstable",
            "systemd",
            "kubepods.slice/kubepods-burstable.slice/"
            "kubepods-burstable-pod8d3e5a4c_1f2b_4c5d_9e8f_0a1b2c3d4e5f.slice",
            id="systemd-burstable",
        ),
        pytest.param(
            "Guaranteed",
            "systemd",
            "kubepods.slice/kubepods-pod8d3e5a4c_1f2b_4c5d_9e8f_0a1b2c3d4e5f.slice",
            id="systemd-guaranteed",
        ),
    ],
)
def test_pod_cgroup_as_the_kubelet_names_it(qos, driver, path):
    assert podwatch.pod_cgroup(UID, qos, driver) == path
    assert (
        podwatch.pids_max_path("/sys/fs/cgroup/pids", UID, qos, driver)
        == f"/sys/fs/cgroup/pids/{path}/pids.max"
    )


@pytest.mark.parametrize(
    ("qos", "driver", "message"),
    [
        pytest.param(
            "BestEffort", "docker", "--cgroup-driver: 'docker' is not one of cgroupfs, systemd", id="driver"
        ),
        pytest.param(
            "Bursty",
            "cgroupfs",
            f"pod uid {UID}: QoS class 'Bursty' is not one of Guaranteed, Burstable, BestEffort",
            id="qos",
        ),
    ],
)
def test_pod_cgroup_refuses_unknown_driver_and_qos(qos, driver, message):
    with pytest.raises(ShaperError) as e:
        podwatch.pod_cgroup(UID, qos, driver)
    assert str(e.value) == message


def test_view_of_a_pod_with_limits():
    pod = _pod({"kubernetes.io/ingress-bandwidth": "20M", "cloud58.io/pids-limit": "64"})
    assert podwatch.view(pod) == podwatch.PodView(
        key="lab-demo/echo-0",
        uid=UID,
        veth="cali2f15f2fa83d",
        limits={"ingress": 20_000_000, "egress": None},
        pids_limit=64,
        qos="Burstable",
    )


def test_view_carries_the_pods_address():
    pod = _pod(status={"qosClass": "BestEffort", "phase": "Running", "podIP": "198.18.96.7"})
    assert podwatch.view(pod).address == "198.18.96.7"


# `ip -j addr show` in two pod namespaces (trimmed to the fields the lookup reads, as iproute2
# 6.1 prints them): each pod's eth0 is ifindex 2 with its peer at link_index 559 / 560 here.
def _addrs(address, peer):
    return json.dumps(
        [
            {"ifindex": 1, "ifname": "lo", "addr_info": [{"family": "inet", "local": "127.0.0.1"}]},
            {
                "ifindex": 2,
                "link_index": peer,
                "ifname": "eth0",
                "link_netnsid": 0,
                "addr_info": [
                    {"family": "inet", "local": address, "prefixlen": 24},
                    {"family": "inet6", "local": f"fe80::{peer}", "prefixlen": 64},
                ],
            },
        ]
    )


NAMESPACES = {
    "/run/netns/cni-0b6f": _addrs("198.18.96.7", 559),
    "/proc/4242/ns/net": _addrs("198.18.96.8", 560),
}
HOST_LINKS = json.dumps(
    [
        {"ifindex": 1, "ifname": "lo"},
        {"ifindex": 3, "ifname": "cni0"},
        {"ifindex": 559, "link_index": 2, "ifname": "veth5e2c1a07", "link_netnsid": 7},
        {"ifindex": 560, "link_index": 2, "ifname": "veth0d41b9f3", "link_netnsid": 8},
        # an ifindex 2 recurs in every namespace: a host link that names 559 but is not its peer
        {"ifindex": 561, "link_index": 559, "ifname": "vxlan.calico"},
    ]
)


@pytest.mark.parametrize(
    ("namespaces", "host_links", "found"),
    [
        pytest.param(
            NAMESPACES,
            HOST_LINKS,
            {
                "198.18.96.7": "veth5e2c1a07",
                "fe80::559": "veth5e2c1a07",
                "198.18.96.8": "veth0d41b9f3",
                "fe80::560": "veth0d41b9f3",
            },
            id="two-pods",
        ),
        pytest.param(NAMESPACES, "[]", {}, id="peers-not-here"),
        pytest.param(
            NAMESPACES,
            json.dumps([{"ifindex": 559, "link_index": 9, "ifname": "other"}]),
            {},
            id="ifindex-recurs-but-not-paired",
        ),
        pytest.param({"/run/netns/cni-gone": ""}, HOST_LINKS, {}, id="empty-output"),
    ],
)
def test_veths_by_address_are_the_host_ends_of_the_pods_links(namespaces, host_links, found):
    assert podwatch.veths_by_address(namespaces, host_links) == found


@pytest.mark.parametrize(
    "pod",
    [
        pytest.param(_pod(spec={"hostNetwork": True}), id="host-network"),
        pytest.param(_pod(status={"phase": "Succeeded"}), id="succeeded"),
        pytest.param(_pod(status={"phase": "Failed"}), id="failed"),
        pytest.param(_being_deleted(_pod({"kubernetes.io/egress-bandwidth": "10M"})), id="being-deleted"),
    ],
)
def test_view_skips_pods_without_a_veth_of_their_own(pod):
    assert podwatch.view(pod) is None


def test_view_of_a_bad_rate_names_the_pod():
    with pytest.raises(ShaperError) as e:
        podwatch.view(_pod({"kubernetes.io/egress-bandwidth": "-1"}))
    assert str(e.value) == (
        "pod lab-demo/echo-0: annotation kubernetes.io/egress-bandwidth: '-1' is below 1k (1 kbit/s), "
        "the smallest rate the kubelet accepts"
    )


def test_metrics_text():
    pods = {
        "b/two": {
            "veth": "cali2",
            "applied": {"ingress": None, "egress": None},
            "drops": {},
            "pids_max": None,
        },
        "a/one": {
            "veth": "cali1",
            "applied": {"ingress": 20_000_000, "egress": 1_000},
            "drops": {"ingress": 3, "egress": 0},
            "pids_max": 64,
        },
    }
    assert podwatch.metrics_text("n1", pods) == (
        "# HELP cloud58_netshaper_rate_bits Bandwidth limit on the pod's veth pair, bits per second.\n"
        "# TYPE cloud58_netshaper_rate_bits gauge\n"
        'cloud58_netshaper_rate_bits{node="n1",pod="a/one",veth="cali1",direction="ingress"} 20000000\n'
        'cloud58_netshaper_rate_bits{node="n1",pod="a/one",veth="cali1",direction="egress"} 1000\n'
        "# HELP cloud58_netshaper_drops_total Packets dropped by the shaping qdiscs of the pod's veth pair.\n"
        "# TYPE cloud58_netshaper_drops_total counter\n"
        'cloud58_netshaper_drops_total{node="n1",pod="a/one",veth="cali1",direction="ingress"} 3\n'
        'cloud58_netshaper_drops_total{node="n1",pod="a/one",veth="cali1",direction="egress"} 0\n'
        'cloud58_netshaper_drops_total{node="n1",pod="b/two",veth="cali2",direction="ingress"} 0\n'
        'cloud58_netshaper_drops_total{node="n1",pod="b/two",veth="cali2",direction="egress"} 0\n'
        "# HELP cloud58_netshaper_pids_max pids.max the agent wrote into the pod's cgroup.\n"
        "# TYPE cloud58_netshaper_pids_max gauge\n"
        'cloud58_netshaper_pids_max{node="n1",pod="a/one"} 64\n'
    )
