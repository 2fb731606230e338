"""The node filters: thin adapters that turn planning problems into one AnsibleFilterError."""

from __future__ import annotations

import pytest
from ansible.errors import AnsibleFilterError

from ansible_collections.cloud58.platform.plugins.filter import node

FACTS = {
    "hostname": "container-id",
    "processor_vcpus": 2,
    "memtotal_mb": 24000,
    "kernel": "6.18.44",
    "virtualization_role": "guest",
    "virtualization_type": "podman",
    "interfaces": ["eth0", "lo"],
    "eth0": {"type": "ether"},
}
ROLE = {"kubernetes": True, "nodeport_range": "30000-32767", "nics": ["eth0"]}


def test_filters_are_registered():
    assert sorted(node.FilterModule().filters()) == [
        "node_crash_budget_problem",
        "node_kernel_profile",
        "node_kubelet_config",
        "node_label_args",
        "node_labels",
        "node_queue_settings",
        "node_sysctl_overrides",
    ]


def test_sysctl_overrides_error_names_inventory_host_and_every_problem():
    with pytest.raises(AnsibleFilterError) as err:
        node.node_sysctl_overrides({"vm.swapiness": 0}, {"net.core.somaxconn": 10}, "lab1-w1")
    assert err.value.message == (
        "host 'lab1-w1': 2 problems:\n"
        "  - kernel_tuning_overrides: unknown sysctl key 'vm.swapiness'; did you mean 'vm.swappiness'?\n"
        "  - kernel_tuning_host_overrides: net.core.somaxconn = 10: "
        "10 is outside the allowed range 128..1048576"
    )


def test_sysctl_overrides_merge_host_over_group():
    assert node.node_sysctl_overrides({"vm.swappiness": 1}, {"vm.swappiness": "0"}, "h") == {
        "vm.swappiness": "0"
    }


def test_kernel_profile_uses_inventory_name_and_container_split():
    profile = node.node_kernel_profile(
        FACTS, host="mol-kt-1", role=ROLE, host_overrides={"net.core.somaxconn": 8192}
    )
    assert profile["in_container"] is True
    assert profile["sysctl"]["net.core.somaxconn"] == "8192"
    assert "net.core.somaxconn" in profile["apply"]
    assert "vm.swappiness" in profile["written_only"]


@pytest.mark.parametrize(
    ("role", "message"),
    [
        pytest.param(
            {"nodeport_range": "32767-30000"},
            "role.nodeport_range: '32767-30000' is not an ascending range inside 1..65535",
            id="bad-nodeport-range",
        ),
        pytest.param(
            {"nodeport_range": "30000-30010,31000-31010"},
            "role.nodeport_range must be one range LOW-HIGH, got '30000-30010,31000-31010'",
            id="two-ranges",
        ),
        pytest.param("minion", "role must be a mapping, got 'minion' (str)", id="role-not-a-mapping"),
    ],
)
def test_kernel_profile_bad_role(role, message):
    with pytest.raises(AnsibleFilterError) as err:
        node.node_kernel_profile(FACTS, host="h", role=role)
    assert err.value.message == message


def test_queue_settings_from_queue_entries():
    assert node.node_queue_settings({"eth0": ["rx-0", "tx-0"]}, 2, "h") == [
        {"path": "/sys/class/net/eth0/queues/rx-0/rps_cpus", "value": "3"},
        {"path": "/sys/class/net/eth0/queues/rx-0/rps_flow_cnt", "value": "32768"},
        {"path": "/sys/class/net/eth0/queues/tx-0/xps_cpus", "value": "3"},
    ]


def test_queue_settings_from_find_results():
    results = [
        {"item": "eth0", "files": [{"path": "/sys/class/net/eth0/queues/rx-0"}, {"path": "/sys/x/tx-0"}]}
    ]
    assert node.node_queue_settings(results, 1, "h") == [
        {"path": "/sys/class/net/eth0/queues/rx-0/rps_cpus", "value": "0"},
        {"path": "/sys/class/net/eth0/queues/rx-0/rps_flow_cnt", "value": "0"},
        {"path": "/sys/class/net/eth0/queues/tx-0/xps_cpus", "value": "0"},
    ]


def test_queue_settings_reject_other_input():
    with pytest.raises(AnsibleFilterError) as err:
        node.node_queue_settings(["eth0"], 2, "h")
    assert err.value.message == (
        "node_queue_settings expects {nic: [queue names]} or the results of ansible.builtin.find "
        "looped over the NICs, got ['eth0'] (list)"
    )


def test_queue_settings_with_interrupts_manage_irqs():
    text = " 40:  1  0  PCI-MSIX  0-edge  ens1-TxRx-0\n 41:  0  1  PCI-MSIX  1-edge  ens1-TxRx-1\n"
    settings = node.node_queue_settings({"ens1": ["rx-0", "rx-1", "tx-0", "tx-1"]}, 2, "h", interrupts=text)
    assert [s for s in settings if s["path"].startswith("/proc/irq/")] == [
        {"path": "/proc/irq/40/smp_affinity", "value": "1"},
        {"path": "/proc/irq/41/smp_affinity", "value": "2"},
    ]


def test_queue_settings_error_names_host():
    with pytest.raises(AnsibleFilterError) as err:
        node.node_queue_settings({"eth0": ["rx-1", "tx-0"]}, 2, "lab1-w1")
    assert err.value.message == "host 'lab1-w1': eth0: rx queues are not numbered 0..n-1: [1]"


def test_labels_and_label_args():
    labels = node.node_labels({"function": "ingress"}, "lab1-w1", "lab1", "lab1-r1")
    assert node.node_label_args(labels) == (
        "cloud58.io/function=ingress,cloud58.io/location=lab1,cloud58.io/rack=lab1-r1,"
        "topology.kubernetes.io/region=lab1,topology.kubernetes.io/zone=lab1-r1"
    )


def test_kubelet_config_from_facts():
    config = node.node_kubelet_config(FACTS, "lab1-w1", 32, 26, cluster_dns=["198.18.8.10"])
    assert config["maxPods"] == 32
    assert config["clusterDNS"] == ["198.18.8.10"]


def test_kubelet_config_pod_pids_limit_of_the_node_function():
    limits = {"default": 4096, "ingress": 2048}
    config = node.node_kubelet_config(FACTS, "lab1-w1", 32, 26, function="ingress", pod_pids_limits=limits)
    assert config["podPidsLimit"] == 2048


def test_kubelet_config_bad_pod_pids_limit_names_host_entry_and_value():
    with pytest.raises(AnsibleFilterError) as err:
        node.node_kubelet_config(
            FACTS, "lab1-w1", 32, 26, function="online", pod_pids_limits={"online": "many"}
        )
    assert err.value.message == (
        "host 'lab1-w1': 1 problem: "
        "kubelet_pod_pids_limits.online: 'many' is not a positive integer or -1 (unlimited)"
    )


@pytest.mark.parametrize(
    ("max_pods", "block", "message"),
    [
        pytest.param(
            110,
            26,
            "host 'lab1-w1': 1 problem: maxPods 110 does not fit the node's pod block of 64 addresses; "
            "lower max_pods or give the cluster a larger pod block",
            id="block-too-small",
        ),
        pytest.param(
            32, 8, "host 'lab1-w1': pod_block_size 8 is not a prefix length 16..32", id="bad-prefix"
        ),
    ],
)
def test_kubelet_config_errors(max_pods, block, message):
    with pytest.raises(AnsibleFilterError) as err:
        node.node_kubelet_config(FACTS, "lab1-w1", max_pods, block)
    assert err.value.message == message


@pytest.mark.parametrize(
    ("disk_total", "max_sites", "max_bytes", "min_free_bytes", "expected"),
    [
        pytest.param("53687091200\n", 20, "10G", "2G", "", id="fits"),
        pytest.param(
            "10737418240",
            20,
            "10G",
            "2G",
            "host lab1-w1: node_agents_crashkeeper_max_bytes: 10737418240 plus "
            "node_agents_crashkeeper_min_free_bytes 2147483648 is larger than the disk under "
            "/var/lib/cloud58/crash (10737418240 bytes)",
            id="larger-than-the-disk",
        ),
        pytest.param(
            "53687091200",
            20,
            "10Mbit/s",
            "2G",
            "host lab1-w1: node_agents_crashkeeper_max_bytes: '10Mbit/s' is not a size in bytes "
            "(like 10G, 512M)",
            id="bad-size",
        ),
        pytest.param(
            "53687091200",
            20,
            "10G",
            "-1",
            "host lab1-w1: node_agents_crashkeeper_min_free_bytes: '-1' is not a size in bytes "
            "(like 10G, 512M)",
            id="negative-floor",
        ),
        pytest.param(
            "53687091200",
            0,
            "10G",
            "2G",
            "host lab1-w1: node_agents_crashkeeper_max_sites: 0 is not a positive integer",
            id="no-sites",
        ),
    ],
)
def test_crash_budget_problem_names_the_host_and_the_variable(
    disk_total, max_sites, max_bytes, min_free_bytes, expected
):
    assert (
        node.node_crash_budget_problem(
            disk_total, "lab1-w1", "/var/lib/cloud58/crash", max_sites, max_bytes, min_free_bytes
        )
        == expected
    )


def test_crash_budget_problem_refuses_a_disk_size_that_is_not_a_number():
    with pytest.raises(AnsibleFilterError) as err:
        node.node_crash_budget_problem("df: no such file", "lab1-w1", "/x", 20, "10G", "2G")
    assert err.value.message == (
        "host lab1-w1: node_crash_budget_problem: disk size 'df: no such file' is not a number of bytes"
    )
