"""IRQ affinity and RPS/XPS masks per NIC queue, from the CPU count."""

from __future__ import annotations

import pytest

from ansible_collections.cloud58.platform.plugins.module_utils.node import queues
from ansible_collections.cloud58.platform.plugins.module_utils.node.errors import NodePlanError


@pytest.mark.parametrize(
    ("cpus", "ncpu", "expected"),
    [
        pytest.param(set(), 1, "0", id="empty-1"),
        pytest.param({0}, 1, "1", id="one-cpu"),
        pytest.param({0, 1}, 2, "3", id="two-cpus"),
        pytest.param({1}, 8, "02", id="eight-cpus-padded"),
        pytest.param({0, 4, 8}, 12, "111", id="twelve-cpus"),
        pytest.param({31}, 32, "80000000", id="full-group"),
        pytest.param({0}, 40, "00,00000001", id="forty-cpus-two-groups"),
        pytest.param({35}, 36, "8,00000000", id="top-group-one-digit"),
        pytest.param(set(range(64)), 64, "ffffffff,ffffffff", id="all-of-64"),
        pytest.param({0, 64}, 96, "00000001,00000000,00000001", id="three-groups"),
    ],
)
def test_cpumask_matches_kernel_format(cpus, ncpu, expected):
    assert queues.cpumask(cpus, ncpu) == expected
    assert queues.parse_cpumask(expected) == set(cpus)


@pytest.mark.parametrize(
    ("cpus", "ncpu", "message"),
    [
        pytest.param({2}, 2, "CPU 2 does not exist on a host with 2 CPUs", id="cpu-out-of-range"),
        pytest.param(set(), 0, "the CPU count must be a positive integer, got 0", id="no-cpus"),
    ],
)
def test_cpumask_rejects_impossible_input(cpus, ncpu, message):
    with pytest.raises(ValueError, match=f"^{message}$"):
        queues.cpumask(cpus, ncpu)


def test_parse_cpumask_rejects_garbage():
    with pytest.raises(ValueError, match="is not a CPU mask"):
        queues.parse_cpumask("0-3")


def test_single_queue_veth_on_two_cpus_spreads_over_both():
    assert queues.queue_settings(2, {"eth0": (1, 1)}) == [
        ("/sys/class/net/eth0/queues/rx-0/rps_cpus", "3"),
        ("/sys/class/net/eth0/queues/rx-0/rps_flow_cnt", "32768"),
        ("/sys/class/net/eth0/queues/tx-0/xps_cpus", "3"),
    ]


def test_fewer_queues_than_cpus_partitions_the_cpus():
    settings = dict(queues.queue_settings(4, {"ens1": (2, 4)}))
    assert settings == {
        "/sys/class/net/ens1/queues/rx-0/rps_cpus": "5",  # CPUs 0 and 2
        "/sys/class/net/ens1/queues/rx-0/rps_flow_cnt": "16384",
        "/sys/class/net/ens1/queues/rx-1/rps_cpus": "a",  # CPUs 1 and 3
        "/sys/class/net/ens1/queues/rx-1/rps_flow_cnt": "16384",
        "/sys/class/net/ens1/queues/tx-0/xps_cpus": "1",
        "/sys/class/net/ens1/queues/tx-1/xps_cpus": "2",
        "/sys/class/net/ens1/queues/tx-2/xps_cpus": "4",
        "/sys/class/net/ens1/queues/tx-3/xps_cpus": "8",
    }


def test_rss_with_a_queue_per_cpu_turns_rps_off():
    settings = dict(queues.queue_settings(2, {"ens1": (2, 2)}))
    assert settings == {
        "/sys/class/net/ens1/queues/rx-0/rps_cpus": "0",
        "/sys/class/net/ens1/queues/rx-0/rps_flow_cnt": "0",
        "/sys/class/net/ens1/queues/rx-1/rps_cpus": "0",
        "/sys/class/net/ens1/queues/rx-1/rps_flow_cnt": "0",
        "/sys/class/net/ens1/queues/tx-0/xps_cpus": "1",
        "/sys/class/net/ens1/queues/tx-1/xps_cpus": "2",
    }


def test_one_cpu_needs_no_steering():
    assert queues.queue_settings(1, {"eth0": (1, 1)}) == [
        ("/sys/class/net/eth0/queues/rx-0/rps_cpus", "0"),
        ("/sys/class/net/eth0/queues/rx-0/rps_flow_cnt", "0"),
        ("/sys/class/net/eth0/queues/tx-0/xps_cpus", "0"),
    ]


def test_irqs_of_two_nics_go_round_robin_over_all_cpus():
    settings = queues.queue_settings(
        4, {"ens1": (4, 4), "ens2": (2, 2)}, irqs={"ens1": [40, 41, 42], "ens2": [50, 51]}
    )
    irq = [(path, mask) for path, mask in settings if path.startswith("/proc/irq/")]
    assert irq == [
        ("/proc/irq/40/smp_affinity", "1"),
        ("/proc/irq/41/smp_affinity", "2"),
        ("/proc/irq/42/smp_affinity", "4"),
        ("/proc/irq/50/smp_affinity", "8"),
        ("/proc/irq/51/smp_affinity", "1"),
    ]


def test_no_irq_settings_when_not_managed():
    settings = queues.queue_settings(4, {"ens1": (4, 4)}, irqs=None)
    assert [s[0] for s in settings if s[0].startswith("/proc/irq/")] == []
    assert len(settings) == 12


def test_queue_settings_reject_a_nic_without_queues():
    with pytest.raises(NodePlanError) as err:
        queues.queue_settings(2, {"eth9": (0, 1)}, host="n1")
    assert err.value.problems == [
        "NIC 'eth9' has 0 receive and 1 transmit queues; expected at least one each"
    ]


INTERRUPTS = """\
           CPU0       CPU1
 24:          1          0  IO-APIC   5-edge      ACPI:Ged
 40:        100          0  PCI-MSIX-0000:3b:00.0   0-edge      ens1f0-TxRx-0
 41:          0        200  PCI-MSIX-0000:3b:00.0   1-edge      ens1f0-TxRx-1
 42:          0          0  PCI-MSIX-0000:3b:00.0   2-edge      ens1f0
 43:          5          0  PCI-MSIX-0000:3b:00.1   0-edge      ens1f1-TxRx-0
 44:          0          0  PCI-MSIX-0000:5e:00.0   0-edge      mlx5_async0@pci:0000:5e:00.0
 45:          0          0  PCI-MSIX-0000:5e:00.0   1-edge      ens2-lsc
NMI:          0          0   Non-maskable interrupts
"""


def test_parse_interrupts_finds_queue_vectors_only():
    assert queues.parse_interrupts(INTERRUPTS, ["ens1f0", "ens1f1", "ens2"]) == {
        "ens1f0": [40, 41],
        "ens1f1": [43],
        "ens2": [],
    }


@pytest.mark.parametrize(
    ("names", "expected"),
    [
        pytest.param(["rx-0", "tx-0"], (1, 1), id="veth"),
        pytest.param(["tx-1", "rx-1", "rx-0", "tx-0", "tx-2"], (2, 3), id="unordered"),
    ],
)
def test_count_queues(names, expected):
    assert queues.count_queues(names, "eth0") == expected


def test_count_queues_rejects_gaps():
    with pytest.raises(ValueError, match=r"^eth0: rx queues are not numbered 0..n-1: \[0, 2\]$"):
        queues.count_queues(["rx-0", "rx-2", "tx-0"], "eth0")
