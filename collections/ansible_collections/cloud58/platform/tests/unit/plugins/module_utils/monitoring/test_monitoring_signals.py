"""Second-level node signals: parsing /proc and cgroup files, the ring's windows, both exports."""

from __future__ import annotations

import pytest

from ansible_collections.cloud58.platform.plugins.module_utils.monitoring import signals
from ansible_collections.cloud58.platform.plugins.module_utils.monitoring.signals import (
    Ring,
    Sample,
    SignalsError,
)

STAT = "cpu  100 5 50 800 20 3 2 0 10 0\ncpu0 50 2 25 400 10 1 1 0 5 0\nintr 12345 0 0\n"
MEMINFO = "MemTotal:        8000000 kB\nMemFree:         1000000 kB\nMemAvailable:    2000000 kB\n"
UID_A = "6b3e2f1a-0c1d-4e5f-8a9b-0c1d2e3f4a5b"
UID_B = "0f9e8d7c-6b5a-4f3e-9d2c-1b0a9f8e7d6c"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        pytest.param(STAT, (160, 980), id="ten-fields-guest-not-counted-twice"),
        pytest.param("cpu 10 0 10 80\n", (20, 100), id="old-kernel-four-fields"),
    ],
)
def test_parse_stat(text, expected):
    assert signals.parse_stat("/proc/stat", text) == expected


@pytest.mark.parametrize(
    ("call", "text", "message"),
    [
        pytest.param(
            signals.parse_stat,
            "cpu0 1 2 3 4\n",
            "/x: no line 'cpu <user> <nice> <system> <idle> ...' in 'cpu0 1 2 3 4\\n'",
            id="stat-no-cpu-line",
        ),
        pytest.param(
            signals.parse_stat,
            "cpu 1 x 3 4\n",
            "/x: no line 'cpu <user> <nice> <system> <idle> ...' in 'cpu 1 x 3 4\\n'",
            id="stat-not-numbers",
        ),
        pytest.param(
            signals.parse_loadavg,
            "0.5 1\n",
            "/x: '0.5 1' is not a load average '<load1> <load5> <load15> ...'",
            id="loadavg-short",
        ),
        pytest.param(
            signals.parse_loadavg,
            "0.5 nan 1\n",
            "/x: '0.5 nan 1' is not a load average '<load1> <load5> <load15> ...'",
            id="loadavg-nan",
        ),
        pytest.param(
            signals.parse_meminfo,
            "MemTotal: 100 kB\n",
            "/x: no MemAvailable line (MemAvailable needs Linux 3.14 or later)",
            id="meminfo-no-available",
        ),
        pytest.param(
            signals.parse_meminfo,
            "MemTotal: lots kB\nMemAvailable: 1 kB\n",
            "/x: 'MemTotal: lots kB' is not 'MemTotal: <number> kB'",
            id="meminfo-not-a-number",
        ),
        pytest.param(
            signals.parse_meminfo,
            "MemTotal: 0 kB\nMemAvailable: 0 kB\n",
            "/x: MemTotal 0 is not above 0",
            id="meminfo-zero",
        ),
        pytest.param(signals.parse_cpu_usage, "", "/x: '' holds no CPU usage", id="cpuacct-empty"),
    ],
)
def test_bad_files_are_refused_naming_them(call, text, message):
    with pytest.raises(SignalsError) as e:
        call("/x", text)
    assert str(e.value) == message


def test_parse_loadavg_and_meminfo():
    assert signals.parse_loadavg("/proc/loadavg", "0.52 1.25 2.00 3/412 9999\n") == (0.52, 1.25, 2.0)
    assert signals.parse_meminfo("/proc/meminfo", MEMINFO) == (8192000000, 2048000000)


@pytest.mark.parametrize(
    ("name", "uid"),
    [
        pytest.param(f"pod{UID_A}", UID_A, id="cgroupfs"),
        pytest.param(f"kubepods-burstable-pod{UID_A.replace('-', '_')}.slice", UID_A, id="systemd"),
        pytest.param(f"kubepods-pod{UID_B.replace('-', '_')}.slice", UID_B, id="systemd-guaranteed"),
        pytest.param("burstable", None, id="qos-class"),
        pytest.param("kubepods-besteffort.slice", None, id="systemd-qos-class"),
        pytest.param("cri-containerd-0123abcd.scope", None, id="container"),
        pytest.param("pod1234", None, id="short-uid"),
    ],
)
def test_pod_uid(name, uid):
    assert signals.pod_uid(name) == uid


def _tree(root, files: dict):
    for path, text in files.items():
        (root / path).parent.mkdir(parents=True, exist_ok=True)
        (root / path).write_text(text)


@pytest.mark.parametrize(
    ("files", "pods"),
    [
        pytest.param(
            {
                f"cpuacct/kubepods/pod{UID_A}/cpuacct.usage": "2500000000\n",
                f"cpuacct/kubepods/pod{UID_A}/abc123/cpuacct.usage": "2400000000\n",
                f"cpuacct/kubepods/besteffort/pod{UID_B}/cpuacct.usage": "7\n",
                "cpuacct/kubepods/besteffort/cpuacct.usage": "9\n",
                "unified/kubepods/cpu.stat": "usage_usec 1\n",
            },
            {UID_A: 2500000000, UID_B: 7},
            id="v1-cgroupfs-before-unified",
        ),
        pytest.param(
            {
                "cpu,cpuacct/kubepods.slice/"
                f"kubepods-pod{UID_A.replace('-', '_')}.slice/cpuacct.usage": "5\n",
            },
            {UID_A: 5},
            id="v1-systemd-joined-controllers",
        ),
        pytest.param(
            {
                "kubepods.slice/kubepods-burstable.slice/"
                f"kubepods-burstable-pod{UID_B.replace('-', '_')}.slice/cpu.stat": (
                    "usage_usec 1500\nuser_usec 1000\nsystem_usec 500\n"
                ),
                "system.slice/cpu.stat": "usage_usec 99\n",
            },
            {UID_B: 1500000},
            id="v2-systemd",
        ),
        pytest.param(
            {f"unified/kubepods/burstable/pod{UID_A}/cpu.stat": "usage_usec 3\n"},
            {UID_A: 3000},
            id="v2-hybrid-unified",
        ),
        pytest.param({"cpuacct/system.slice/cpuacct.usage": "1\n"}, {}, id="no-kubepods"),
    ],
)
def test_read_pods_from_cgroup_files(tmp_path, files, pods):
    _tree(tmp_path, files)
    assert signals.read_pods(str(tmp_path)) == pods


def test_read_sample_from_fixture_files(tmp_path):
    counters = dict(zip(signals.NET_COUNTERS, ("1000", "2000", "10", "20"), strict=True))
    _tree(
        tmp_path,
        {
            "proc/stat": STAT,
            "proc/loadavg": "0.52 1.25 2.00 3/412 9999\n",
            "proc/meminfo": MEMINFO,
            **{f"net/cali0a1b2c3d4e5/statistics/{c}": f"{v}\n" for c, v in counters.items()},
            **{f"net/eth0/statistics/{c}": "5\n" for c in signals.NET_COUNTERS},
            **{f"net/veth9/statistics/{c}": "1\n" for c in signals.NET_COUNTERS},
            f"cgroup/cpuacct/kubepods/pod{UID_A}/cpuacct.usage": "42\n",
        },
    )
    sample = signals.read_sample(
        7.5, str(tmp_path / "proc"), str(tmp_path / "net"), str(tmp_path / "cgroup"), ("cali",)
    )
    assert sample == Sample(
        time=7.5,
        cpu_busy=160,
        cpu_total=980,
        load=(0.52, 1.25, 2.0),
        memory_total=8192000000,
        memory_available=2048000000,
        interfaces={"cali0a1b2c3d4e5": (1000, 2000, 10, 20)},
        pods={UID_A: 42},
    )


def test_read_sample_names_the_missing_file(tmp_path):
    with pytest.raises(SignalsError) as e:
        signals.read_sample(0, str(tmp_path), str(tmp_path), str(tmp_path), ("veth",))
    assert str(e.value) == f"{tmp_path}/stat: cannot read: No such file or directory"


@pytest.mark.parametrize(
    ("value", "expected"),
    [pytest.param("cali,veth", ("cali", "veth"), id="two"), pytest.param("c58s", ("c58s",), id="one")],
)
def test_check_prefixes(value, expected):
    assert signals.check_prefixes(value) == expected


@pytest.mark.parametrize("value", [pytest.param("", id="empty"), pytest.param("ca li", id="space")])
def test_bad_prefixes_are_refused(value):
    with pytest.raises(SignalsError) as e:
        signals.check_prefixes(value)
    assert (
        str(e.value) == f"--veth-prefix: {value!r} is not a comma-separated list of interface name prefixes"
    )


def _sample(t, busy, total, *, load1=1.0, available=2000, interfaces=None, pods=None):
    return Sample(t, busy, total, (load1, 0.5, 0.25), 8000, available, interfaces or {}, pods or {})


def _ring(*samples, seconds=300.0):
    ring = Ring(seconds)
    for s in samples:
        ring.add(s)
    return ring


def test_averages_over_a_window():
    ring = _ring(
        _sample(0.0, 100, 1000, interfaces={"cali1": (0, 0, 0, 0)}, pods={UID_A: 0}),
        _sample(
            1.0,
            150,
            1100,
            load1=2.0,
            available=4000,
            interfaces={"cali1": (1000, 500, 10, 5), "cali2": (0, 0, 0, 0)},
            pods={UID_A: 10**9},
        ),
        _sample(
            2.0,
            400,
            1200,
            load1=3.0,
            available=6000,
            interfaces={"cali1": (4000, 1000, 40, 10), "cali2": (5, 5, 5, 5)},
            pods={UID_A: 3 * 10**9},
        ),
    )
    assert signals.averages(ring.window(60)) == {
        "seconds": 2.0,
        "samples": 3,
        "cpu_percent": 150.0,  # busy 300 of total 200: the fixture's figures, taken as they come
        "load1": 2.0,
        "memory_available_bytes": 4000,
        "memory_percent": 50.0,
        "interfaces": {
            "cali1": {
                "rx_bytes_per_second": 2000.0,
                "tx_bytes_per_second": 500.0,
                "rx_packets_per_second": 20.0,
                "tx_packets_per_second": 5.0,
            }
        },
        "pods": {UID_A: {"cpu_cores": 1.5}},
    }
    assert signals.averages(ring.window(1)) == {
        "seconds": 1.0,
        "samples": 2,
        "cpu_percent": 250.0,
        "load1": 2.5,
        "memory_available_bytes": 5000,
        "memory_percent": 37.5,
        "interfaces": {
            "cali1": {
                "rx_bytes_per_second": 3000.0,
                "tx_bytes_per_second": 500.0,
                "rx_packets_per_second": 30.0,
                "tx_packets_per_second": 5.0,
            },
            "cali2": {
                "rx_bytes_per_second": 5.0,
                "tx_bytes_per_second": 5.0,
                "rx_packets_per_second": 5.0,
                "tx_packets_per_second": 5.0,
            },
        },
        "pods": {UID_A: {"cpu_cores": 2.0}},
    }


def test_cpu_of_a_window_without_jiffies_is_none_and_a_counter_reset_has_no_rate():
    ring = _ring(
        _sample(0.0, 30, 100, interfaces={"cali1": (100, 100, 100, 100)}, pods={UID_A: 5}),
        _sample(1.0, 30, 100, interfaces={"cali1": (50, 100, 100, 100)}, pods={UID_A: 4}),
    )
    figures = signals.averages(ring.window(60))
    assert (figures["cpu_percent"], figures["interfaces"], figures["pods"]) == (
        None,
        {
            "cali1": {
                "rx_bytes_per_second": None,
                "tx_bytes_per_second": 0.0,
                "rx_packets_per_second": 0.0,
                "tx_packets_per_second": 0.0,
            }
        },
        {UID_A: {"cpu_cores": None}},
    )


def test_one_changed_stat_gives_the_exact_utilisation_of_every_window_holding_it():
    """The integration tests' fixture agents: the stat file changes once, later samples add no jiffy."""
    ring = _ring(
        _sample(0.0, 0, 1000), _sample(1.0, 375, 2000), _sample(2.0, 375, 2000), _sample(3.0, 375, 2000)
    )
    assert [signals.averages(ring.window(w))["cpu_percent"] for w in (60, 300, 2)] == [37.5, 37.5, None]


def test_ring_keeps_one_sample_older_than_its_length():
    ring = _ring(*(_sample(float(t), t, t) for t in range(10)), seconds=3.0)
    assert [s.time for s in ring.samples] == [6.0, 7.0, 8.0, 9.0]
    assert [s.time for s in ring.window(2)] == [7.0, 8.0, 9.0]
    assert Ring().window(60) == []
    assert signals.averages([]) is None


def test_document():
    ring = _ring(_sample(0.0, 0, 100, available=2000), _sample(1.0, 25, 200, available=6000))
    assert signals.document(ring, "lab1-w1") == {
        "node": "lab1-w1",
        "samples": 2,
        "latest": {
            "cpu_percent": 25.0,
            "load": [1.0, 0.5, 0.25],
            "memory_total_bytes": 8000,
            "memory_available_bytes": 6000,
            "memory_percent": 25.0,
        },
        "averages": {
            name: {
                "seconds": 1.0,
                "samples": 2,
                "cpu_percent": 25.0,
                "load1": 1.0,
                "memory_available_bytes": 4000,
                "memory_percent": 50.0,
                "interfaces": {},
                "pods": {},
            }
            for name in ("1m", "5m")
        },
    }
    assert signals.document(Ring(), "lab1-w1") == {
        "node": "lab1-w1",
        "samples": 0,
        "latest": None,
        "averages": {"1m": None, "5m": None},
    }


def test_prometheus_text_of_the_newest_sample():
    ring = _ring(
        _sample(0.0, 0, 100),
        _sample(
            1.0,
            25,
            200,
            load1=0.75,
            available=6000,
            interfaces={"cali1": (1, 2, 3, 4)},
            pods={UID_A: 1_500_000_000},
        ),
    )
    assert signals.prometheus_text(ring) == (
        "# HELP cloud58_signals_cpu_busy_ratio Busy share of the node's CPU time over the last sample "
        "interval.\n"
        "# TYPE cloud58_signals_cpu_busy_ratio gauge\n"
        "cloud58_signals_cpu_busy_ratio 0.25\n"
        "# HELP cloud58_signals_load1 1-minute load average.\n"
        "# TYPE cloud58_signals_load1 gauge\n"
        "cloud58_signals_load1 0.75\n"
        "# HELP cloud58_signals_load5 5-minute load average.\n"
        "# TYPE cloud58_signals_load5 gauge\n"
        "cloud58_signals_load5 0.5\n"
        "# HELP cloud58_signals_load15 15-minute load average.\n"
        "# TYPE cloud58_signals_load15 gauge\n"
        "cloud58_signals_load15 0.25\n"
        "# HELP cloud58_signals_memory_total_bytes MemTotal of /proc/meminfo.\n"
        "# TYPE cloud58_signals_memory_total_bytes gauge\n"
        "cloud58_signals_memory_total_bytes 8000\n"
        "# HELP cloud58_signals_memory_available_bytes MemAvailable of /proc/meminfo.\n"
        "# TYPE cloud58_signals_memory_available_bytes gauge\n"
        "cloud58_signals_memory_available_bytes 6000\n"
        "# HELP cloud58_signals_interface_receive_bytes_total Bytes received by the host side of a pod's "
        "veth (sent by the pod).\n"
        "# TYPE cloud58_signals_interface_receive_bytes_total counter\n"
        'cloud58_signals_interface_receive_bytes_total{interface="cali1"} 1\n'
        "# HELP cloud58_signals_interface_transmit_bytes_total Bytes sent by the host side of a pod's veth "
        "(received by the pod).\n"
        "# TYPE cloud58_signals_interface_transmit_bytes_total counter\n"
        'cloud58_signals_interface_transmit_bytes_total{interface="cali1"} 2\n'
        "# HELP cloud58_signals_interface_receive_packets_total Packets received by the host side of a "
        "pod's veth.\n"
        "# TYPE cloud58_signals_interface_receive_packets_total counter\n"
        'cloud58_signals_interface_receive_packets_total{interface="cali1"} 3\n'
        "# HELP cloud58_signals_interface_transmit_packets_total Packets sent by the host side of a "
        "pod's veth.\n"
        "# TYPE cloud58_signals_interface_transmit_packets_total counter\n"
        'cloud58_signals_interface_transmit_packets_total{interface="cali1"} 4\n'
        "# HELP cloud58_signals_pod_cpu_seconds_total CPU time of a pod's cgroup.\n"
        "# TYPE cloud58_signals_pod_cpu_seconds_total counter\n"
        f'cloud58_signals_pod_cpu_seconds_total{{pod_uid="{UID_A}"}} 1.5\n'
    )


def test_prometheus_text_of_a_first_sample_has_no_cpu_ratio_and_empty_ring_nothing():
    text = signals.prometheus_text(_ring(_sample(0.0, 0, 100)))
    assert (text.splitlines()[:3], "cpu_busy_ratio" in text) == (
        [
            "# HELP cloud58_signals_load1 1-minute load average.",
            "# TYPE cloud58_signals_load1 gauge",
            "cloud58_signals_load1 1.0",
        ],
        False,
    )
    assert signals.prometheus_text(Ring()) == ""
