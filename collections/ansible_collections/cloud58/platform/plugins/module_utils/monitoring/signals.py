# -*- coding: utf-8 -*-
# Copyright: cloud58 platform team
# Apache License 2.0
"""Second-level node signals (the node agent cloud58-signals): samples, the ring, the exports.

One **sample** holds what the kernel counts at one moment:

* ``/proc/stat``, line ``cpu``: busy and total jiffies of the node (busy = total - idle - iowait;
  total = user + nice + system + idle + iowait + irq + softirq + steal, guest being inside user);
* ``/proc/loadavg``: the 1, 5 and 15 minute load averages;
* ``/proc/meminfo``: ``MemTotal`` and ``MemAvailable`` (bytes);
* ``/sys/class/net/<if>/statistics/{rx,tx}_{bytes,packets}`` of every interface whose name
  starts with one of the pod prefixes (``cali``, ``veth``): the host side of each pod's veth
  pair, so *receive* is what the pod sent and *transmit* what it received;
* the CPU time of every pod cgroup under ``kubepods`` (nanoseconds): cgroup v1
  ``cpuacct.usage`` (``<root>/cpuacct/`` or ``<root>/cpu,cpuacct/``), else cgroup v2
  ``cpu.stat`` ``usage_usec`` (``<root>/`` or, on a hybrid host, ``<root>/unified/``). Pod
  directories are ``pod<uid>`` (cgroupfs driver) or ``kubepods-<qos>-pod<uid_with_underscores>.slice``
  (systemd driver), at most two levels below ``kubepods``.

The **ring** keeps the samples of the last few minutes; ``averages`` turns the samples of a
window (60 s, 300 s) into figures: CPU utilisation from the jiffies at both ends (a window in
which the kernel counted no jiffies has none: ``None``), the mean of load1 and of memory, rates
of the counters. ``prometheus_text`` exposes the newest sample (counters as counters);
``document`` is the JSON endpoint's body.

``read_sample`` is the only part that reads files (under roots the caller names, so tests read
fixture directories); the rest is pure.
"""

from __future__ import annotations

import collections
import os
import re
from dataclasses import dataclass, field

DEFAULT_PREFIXES = ("cali", "veth")
NET_COUNTERS = ("rx_bytes", "tx_bytes", "rx_packets", "tx_packets")
WINDOWS = {"1m": 60.0, "5m": 300.0}
_POD_DIR = re.compile(r"(?:^|-)pod([0-9a-fA-F_-]{36})(?:\.slice)?$")


class SignalsError(ValueError):
    """A file that cannot be read or does not hold what it should; the message names it."""


@dataclass(frozen=True)
class Sample:
    """What the kernel counted at ``time`` (seconds, monotonic)."""

    time: float
    cpu_busy: int
    cpu_total: int
    load: tuple
    memory_total: int
    memory_available: int
    interfaces: dict = field(default_factory=dict)  # name -> (rx_bytes, tx_bytes, rx_packets, tx_packets)
    pods: dict = field(default_factory=dict)  # pod uid -> CPU nanoseconds


# ---- parsing (pure) ---------------------------------------------------------------------------


def parse_stat(path: str, text: str) -> tuple:
    """(busy, total) jiffies of the ``cpu`` line of /proc/stat."""
    for line in text.splitlines():
        parts = line.split()
        if parts and parts[0] == "cpu":
            try:
                values = [int(v) for v in parts[1:9]]
            except ValueError:
                break
            if len(values) < 4:
                break
            values += [0] * (8 - len(values))
            total = sum(values)
            return total - values[3] - values[4], total
            # guest and guest_nice (fields 9, 10) are already counted in user and nice
    raise SignalsError(f"{path}: no line 'cpu <user> <nice> <system> <idle> ...' in {text[:60]!r}")


def parse_loadavg(path: str, text: str) -> tuple:
    """(load1, load5, load15) of /proc/loadavg."""
    parts = text.split()[:3]
    try:
        values = tuple(float(v) for v in parts)
    except ValueError:
        values = ()
    if len(values) != 3 or any(not 0 <= v < float("inf") for v in values):
        raise SignalsError(
            f"{path}: {text.strip()[:60]!r} is not a load average '<load1> <load5> <load15> ...'"
        )
    return values


def parse_meminfo(path: str, text: str) -> tuple:
    """(MemTotal, MemAvailable) of /proc/meminfo, in bytes."""
    found = {}
    for line in text.splitlines():
        name, _colon, rest = line.partition(":")
        if name in ("MemTotal", "MemAvailable"):
            parts = rest.split()
            try:
                found[name] = int(parts[0]) * (1024 if parts[1:] == ["kB"] else 1)
            except (IndexError, ValueError):
                raise SignalsError(f"{path}: {line.strip()!r} is not '{name}: <number> kB'") from None
    for name in ("MemTotal", "MemAvailable"):
        if name not in found:
            raise SignalsError(f"{path}: no {name} line (MemAvailable needs Linux 3.14 or later)")
    if found["MemTotal"] <= 0:
        raise SignalsError(f"{path}: MemTotal {found['MemTotal']} is not above 0")
    return found["MemTotal"], found["MemAvailable"]


def pod_uid(dirname: str):
    """The pod UID of a pod cgroup directory name, else None."""
    match = _POD_DIR.search(dirname)
    return match.group(1).replace("_", "-") if match else None


def parse_cpu_usage(path: str, text: str) -> int:
    """CPU nanoseconds of a cgroup: ``cpuacct.usage`` (v1, ns) or ``cpu.stat`` ``usage_usec`` (v2)."""
    try:
        if os.path.basename(path) == "cpu.stat":
            fields = dict(line.split(None, 1) for line in text.splitlines() if line.strip())
            return int(fields["usage_usec"]) * 1000
        return int(text.strip())
    except (KeyError, ValueError):
        raise SignalsError(f"{path}: {text.strip()[:60]!r} holds no CPU usage") from None


def check_prefixes(value) -> tuple:
    """The interface prefixes of ``--veth-prefix`` (comma separated), or SignalsError."""
    prefixes = tuple(p for p in str(value).split(",") if p)
    if not prefixes or any(not re.fullmatch(r"[A-Za-z0-9_.-]{1,15}", p) for p in prefixes):
        raise SignalsError(
            f"--veth-prefix: {value!r} is not a comma-separated list of interface name prefixes"
        )
    return prefixes


# ---- reading (the only I/O) -------------------------------------------------------------------


def _read(path: str) -> str:
    try:
        with open(path, encoding="ascii", errors="replace") as f:
            return f.read()
    except OSError as e:
        raise SignalsError(f"{path}: cannot read: {e.strerror}") from None


def _pod_cgroups(cgroup_root: str):
    """(usage file name, [kubepods directories]) of the first hierarchy that has one."""
    for sub, usage in (
        ("cpuacct", "cpuacct.usage"),
        ("cpu,cpuacct", "cpuacct.usage"),
        ("", "cpu.stat"),
        ("unified", "cpu.stat"),
    ):
        base = os.path.join(cgroup_root, sub) if sub else cgroup_root
        try:
            names = sorted(n for n in os.listdir(base) if n.startswith("kubepods"))
        except OSError:
            continue
        dirs = [os.path.join(base, n) for n in names if os.path.isdir(os.path.join(base, n))]
        if dirs:
            return usage, dirs
    return None, []


def read_pods(cgroup_root: str) -> dict:
    """CPU nanoseconds of every pod cgroup at most two levels below ``kubepods``."""
    usage, roots = _pod_cgroups(cgroup_root)
    pods = {}
    todo = [(d, 0) for d in roots]
    while todo:
        directory, depth = todo.pop(0)
        try:
            names = sorted(os.listdir(directory))
        except OSError:
            continue  # a pod that went away between two reads
        for name in names:
            path = os.path.join(directory, name)
            if not os.path.isdir(path):
                continue
            uid = pod_uid(name)
            if uid:
                try:
                    pods[uid] = parse_cpu_usage(os.path.join(path, usage), _read(os.path.join(path, usage)))
                except SignalsError:
                    continue  # the pod went away
            elif depth < 1:
                todo.append((path, depth + 1))
    return pods


def read_interfaces(net_root: str, prefixes) -> dict:
    """The counters of every interface under ``net_root`` whose name starts with a prefix."""
    found = {}
    try:
        names = sorted(os.listdir(net_root))
    except OSError as e:
        raise SignalsError(f"{net_root}: cannot list: {e.strerror}") from None
    for name in names:
        if not name.startswith(tuple(prefixes)):
            continue
        try:
            found[name] = tuple(
                int(_read(os.path.join(net_root, name, "statistics", c)).strip()) for c in NET_COUNTERS
            )
        except (SignalsError, ValueError):
            continue  # the interface went away
    return found


def read_sample(now: float, proc_root: str, net_root: str, cgroup_root: str, prefixes) -> Sample:
    """One sample from the files under the three roots (``/proc``, ``/sys/class/net``, ``/sys/fs/cgroup``)."""
    stat = os.path.join(proc_root, "stat")
    loadavg = os.path.join(proc_root, "loadavg")
    meminfo = os.path.join(proc_root, "meminfo")
    busy, total = parse_stat(stat, _read(stat))
    memory_total, memory_available = parse_meminfo(meminfo, _read(meminfo))
    return Sample(
        time=now,
        cpu_busy=busy,
        cpu_total=total,
        load=parse_loadavg(loadavg, _read(loadavg)),
        memory_total=memory_total,
        memory_available=memory_available,
        interfaces=read_interfaces(net_root, prefixes),
        pods=read_pods(cgroup_root),
    )


# ---- the ring and its figures (pure) ------------------------------------------------------------


class Ring:
    """The samples of the last ``seconds`` (one older sample kept: the start of the longest window)."""

    def __init__(self, seconds: float = 300.0) -> None:
        self.seconds = seconds
        self.samples = collections.deque()

    def add(self, sample: Sample) -> None:
        self.samples.append(sample)
        while len(self.samples) > 2 and sample.time - self.samples[1].time >= self.seconds:
            self.samples.popleft()

    def window(self, seconds: float) -> list:
        """The samples taken at most ``seconds`` before the newest, oldest first."""
        if not self.samples:
            return []
        newest = self.samples[-1].time
        return [s for s in self.samples if newest - s.time <= seconds]


def _rate(delta, seconds):
    return None if delta < 0 or seconds <= 0 else round(delta / seconds, 3)


def cpu_percent(first: Sample, last: Sample):
    """Busy share of the node's CPU time between two samples (0..100), None when no jiffy passed."""
    total = last.cpu_total - first.cpu_total
    if total <= 0:
        return None
    return round(100.0 * (last.cpu_busy - first.cpu_busy) / total, 3)


def memory_percent(sample: Sample) -> float:
    """Share of the node's memory not available (0..100)."""
    return 100.0 * (sample.memory_total - sample.memory_available) / sample.memory_total


def averages(samples: list) -> dict | None:
    """The figures of a window (its samples, oldest first); None without a sample."""
    if not samples:
        return None
    first, last = samples[0], samples[-1]
    seconds = last.time - first.time
    interfaces = {}
    for name, end in sorted(last.interfaces.items()):
        start = first.interfaces.get(name)
        if start is not None:
            interfaces[name] = {
                f"{counter}_per_second": _rate(end[i] - start[i], seconds)
                for i, counter in enumerate(NET_COUNTERS)
            }
    pods = {
        uid: {
            "cpu_cores": None
            if seconds <= 0 or end < first.pods[uid]
            else round((end - first.pods[uid]) / 1e9 / seconds, 3)
        }
        for uid, end in sorted(last.pods.items())
        if uid in first.pods
    }
    return {
        "seconds": round(seconds, 3),
        "samples": len(samples),
        "cpu_percent": cpu_percent(first, last),
        "load1": round(sum(s.load[0] for s in samples) / len(samples), 3),
        "memory_available_bytes": round(sum(s.memory_available for s in samples) / len(samples)),
        "memory_percent": round(sum(memory_percent(s) for s in samples) / len(samples), 3),
        "interfaces": interfaces,
        "pods": pods,
    }


def document(ring: Ring, node: str) -> dict:
    """The JSON endpoint's body: the newest sample and the averages of each window."""
    latest = None
    if ring.samples:
        last = ring.samples[-1]
        previous = ring.samples[-2] if len(ring.samples) > 1 else None
        latest = {
            "cpu_percent": cpu_percent(previous, last) if previous else None,
            "load": list(last.load),
            "memory_total_bytes": last.memory_total,
            "memory_available_bytes": last.memory_available,
            "memory_percent": round(memory_percent(last), 3),
        }
    return {
        "node": node,
        "samples": len(ring.samples),
        "latest": latest,
        "averages": {name: averages(ring.window(seconds)) for name, seconds in WINDOWS.items()},
    }


def _label(value: str) -> str:
    return str(value).replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


_METRICS = (
    (
        "cloud58_signals_cpu_busy_ratio",
        "gauge",
        "Busy share of the node's CPU time over the last sample interval.",
    ),
    ("cloud58_signals_load1", "gauge", "1-minute load average."),
    ("cloud58_signals_load5", "gauge", "5-minute load average."),
    ("cloud58_signals_load15", "gauge", "15-minute load average."),
    ("cloud58_signals_memory_total_bytes", "gauge", "MemTotal of /proc/meminfo."),
    ("cloud58_signals_memory_available_bytes", "gauge", "MemAvailable of /proc/meminfo."),
    (
        "cloud58_signals_interface_receive_bytes_total",
        "counter",
        "Bytes received by the host side of a pod's veth (sent by the pod).",
    ),
    (
        "cloud58_signals_interface_transmit_bytes_total",
        "counter",
        "Bytes sent by the host side of a pod's veth (received by the pod).",
    ),
    (
        "cloud58_signals_interface_receive_packets_total",
        "counter",
        "Packets received by the host side of a pod's veth.",
    ),
    (
        "cloud58_signals_interface_transmit_packets_total",
        "counter",
        "Packets sent by the host side of a pod's veth.",
    ),
    ("cloud58_signals_pod_cpu_seconds_total", "counter", "CPU time of a pod's cgroup."),
)


def prometheus_text(ring: Ring) -> str:
    """The newest sample in the Prometheus text format (version 0.0.4); empty before the first."""
    if not ring.samples:
        return ""
    last = ring.samples[-1]
    previous = ring.samples[-2] if len(ring.samples) > 1 else None
    busy = cpu_percent(previous, last) if previous else None
    values = {
        "cloud58_signals_cpu_busy_ratio": [("", None if busy is None else round(busy / 100, 5))],
        "cloud58_signals_load1": [("", last.load[0])],
        "cloud58_signals_load5": [("", last.load[1])],
        "cloud58_signals_load15": [("", last.load[2])],
        "cloud58_signals_memory_total_bytes": [("", last.memory_total)],
        "cloud58_signals_memory_available_bytes": [("", last.memory_available)],
        "cloud58_signals_pod_cpu_seconds_total": [
            (f'{{pod_uid="{_label(uid)}"}}', ns / 1e9) for uid, ns in sorted(last.pods.items())
        ],
    }
    for index, metric in enumerate(
        (
            "cloud58_signals_interface_receive_bytes_total",
            "cloud58_signals_interface_transmit_bytes_total",
            "cloud58_signals_interface_receive_packets_total",
            "cloud58_signals_interface_transmit_packets_total",
        )
    ):
        values[metric] = [
            (f'{{interface="{_label(n)}"}}', c[index]) for n, c in sorted(last.interfaces.items())
        ]
    lines = []
    for name, kind, help_text in _METRICS:
        series = [(labels, v) for labels, v in values[name] if v is not None]
        if not series:
            continue
        lines += [f"# HELP {name} {help_text}", f"# TYPE {name} {kind}"]
        lines += [
            f"{name}{labels} {value!r}" if isinstance(value, float) else f"{name}{labels} {value}"
            for labels, value in series
        ]
    return "\n".join(lines) + "\n"
