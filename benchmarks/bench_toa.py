#!/usr/bin/env python3
# -*- coding: utf-8 -*-
# Copyright: cloud58 platform team
# Apache License 2.0
"""Benchmark what TOA in eBPF costs: connections per second through the nftables full-NAT
director, with the TOA programs attached and without, in the same run.

The lab is ``cloud58_lab.toalab``, the one ``tests/network/test_toa_ebpf.py`` proves TOA in
(namespaces ``btoa-<pid>-*``: a client, the director lab1-lvs1 with the plan's VIP and
local-address range, one realserver; every address inside 198.18.0.0/15). The programs are
compiled from ``roles/toa/files/ebpf/`` by the role's loader, which also attaches them
(tc ingress on the director's client-facing interface; sock_ops and getpeername4 on the
realserver server's cgroup) and detaches them between rounds.

The workload: one client process in the client's namespace connects to the VIP, reads the
server's answer to EOF and closes, one connection after the other; the server in the
realserver's namespace (Python, unmodified: it knows nothing of TOA) accepts, answers with
the peer ``accept()`` returned and closes. A round is a fixed number of connections (full:
2,000, ci: 1,000; ``CLOUD58_BENCH_SIZE``). Rounds come in pairs, one with TOA attached and
one without, the order swapped from pair to pair (full: 20 pairs, ci: 6), after one short
warm-up round of each. Every round checks what the server saw: with TOA every answer is
the client's own address and port, without it none is (else the benchmark stops: it would
compare the wrong things).

Two rates per round. Client and server run on the same one CPU (the highest this benchmark
may use). The kernel's work for a connection (veth, the director's NAT and programs, TCP on
both ends) runs in softirq on that CPU in the context of the process that sent the packet,
and a kernel without ``CONFIG_IRQ_TIME_ACCOUNTING`` (this machine's; the benchmark prints
what it finds) counts softirq time to that process. So the CPU time of client and server
(the client's ``process_time``, the server's ``/proc/<pid>/schedstat``) is the cost of the
round, and *connections per CPU-second* moves far less than the wall clock's when other
work shares the CPU; *connections per second* (wall clock, from the client's first connect
to its last close) is what a user sees, and on a shared machine moves with the other work.
Prints:

    BENCH lvs_toa_conn_per_cpu_s_without <n>  connections per CPU-second without TOA (median, spread)
    BENCH lvs_toa_conn_per_cpu_s_with <n>     with TOA attached
    BENCH lvs_toa_conn_per_s_without <n>      connections per second (wall clock) without TOA
    BENCH lvs_toa_conn_per_s_with <n>         with TOA attached
    BENCH lvs_toa_overhead_pct <x>            (without - with) / without * 100 of the medians per
                                              CPU-second; the same per pair as its spread, and the
                                              wall clock's

The client and server are Python on the same host as the director, so a connection costs
far more than the programs' work; the figure is the share TOA adds to that, not the
programs' own nanoseconds. The load average is printed at the start and the end.
Benchmarks measure and print; they never fail on time.
"""

from __future__ import annotations

import gzip
import os
import shutil
import signal
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO / "collections"), str(REPO / "lab"), str(REPO / "benchmarks")]

from benchstats import bench_size, figure  # noqa: E402

from cloud58_lab.netlab import NetLabError, run_prefix  # noqa: E402
from cloud58_lab.toalab import CLIENT, REALSERVER, RS_PORT, VIP_ADDRESS, VIP_PORT, ToaLab  # noqa: E402

CONNECTIONS = {"full": 2_000, "ci": 1_000}
PAIRS = {"full": 20, "ci": 6}
WARMUP = 300

# An unmodified server: the peer accept() returned, then close.
SERVER = """
import os, socket, sys
os.sched_setaffinity(0, {int(sys.argv[3])})
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind((sys.argv[1], int(sys.argv[2]))); s.listen(128)
print("ready", flush=True)
while True:
    c, peer = s.accept()
    c.sendall(("%s:%d" % peer).encode())
    c.close()
"""

# argv: VIP, port, connections. Each connection ends with the client's RST (SO_LINGER 0)
# after the server's FIN, so that no TIME_WAIT socket is left on either side and the
# director's conntrack entry times out in 10 s instead of 120: every round starts from the
# same state (else the client's ports wrap after about 14,000 connections and the later
# rounds reopen TIME_WAIT entries the earlier ones left). Prints the connections per second,
# how many answers were the client's own address and port, the slowest connection in ms (a
# retransmitted SYN would show) and the CPU time the loop took in ns.
CLIENT_CODE = """
import os, socket, struct, sys, time
LINGER0 = struct.pack("ii", 1, 0)
vip, port, count = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
os.sched_setaffinity(0, {int(sys.argv[4])})
seen, slowest = 0, 0.0
cpu = time.process_time_ns()
start = time.perf_counter()
for _ in range(count):
    t0 = time.perf_counter()
    c = socket.socket()
    c.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, LINGER0)
    c.connect((vip, port))
    answer = b""
    while True:
        chunk = c.recv(64)
        if not chunk:
            break
        answer += chunk
    seen += answer.decode() == "%s:%d" % c.getsockname()
    c.close()
    slowest = max(slowest, time.perf_counter() - t0)
elapsed = time.perf_counter() - start
print(count / elapsed, seen, slowest * 1000, time.process_time_ns() - cpu)
"""


def _cpu_ns(pid):
    """The CPU time task ``pid`` has run (``/proc/<pid>/schedstat``), in ns."""
    return int(Path(f"/proc/{pid}/schedstat").read_text().split()[0])


def _round(lab, server, connections, toa, cpu):
    """One round of ``connections``: (connections per second, per CPU-second of client and
    server, the slowest connection in ms). Stops when what the server saw does not match
    ``toa`` (every answer the client itself, or none)."""
    server_cpu = _cpu_ns(server.pid)
    out = lab.net.exec(
        "client",
        "python3",
        "-c",
        CLIENT_CODE,
        VIP_ADDRESS,
        str(VIP_PORT),
        str(connections),
        str(cpu),
        timeout=600,
    ).stdout.split()
    server_cpu = _cpu_ns(server.pid) - server_cpu
    rate, seen, slowest, client_cpu = float(out[0]), int(out[1]), float(out[2]), int(out[3])
    expected = connections if toa else 0
    if seen != expected:
        state = "attached" if toa else "detached"
        raise SystemExit(
            f"bench_toa: with TOA {state}, {seen} of {connections} answers were the client's"
            f" own address, expected {expected}"
        )
    return rate, connections / ((client_cpu + server_cpu) / 1e9), slowest


def _set_toa(lab, on):
    if on:
        lab.attach()
    else:
        problems = lab.detach()
        if problems:
            raise SystemExit(f"bench_toa: detach failed: {problems}")


def _overhead(without, with_toa):
    """(without - with) / without * 100 of the two medians."""
    return (statistics.median(without) - statistics.median(with_toa)) / statistics.median(without) * 100


def _softirq_counted():
    """Whether the kernel counts softirq time to the running task, from its configuration."""
    for path, opener in (("/proc/config.gz", gzip.open), (f"/boot/config-{os.uname().release}", open)):
        try:
            with opener(path, "rt") as config:
                text = config.read()
        except OSError:
            continue
        if "CONFIG_IRQ_TIME_ACCOUNTING=y" in text:
            return f"no ({path}: CONFIG_IRQ_TIME_ACCOUNTING=y; per CPU-second leaves the kernel's work out)"
        return f"yes ({path}: no CONFIG_IRQ_TIME_ACCOUNTING)"
    return "unknown (no kernel configuration found)"


def _load():
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


def _terminate(signum, frame):
    raise SystemExit(f"bench_toa: signal {signum}")


def _measure(lab, connections, pairs):
    print(f"load average {_load()} at the start; softirq time counted to the task: {_softirq_counted()}")
    start = time.perf_counter()
    lab.build()
    print(f"programs compiled in {time.perf_counter() - start:.1f} s")
    cpu = max(os.sched_getaffinity(0))
    server = lab.start_server(SERVER, REALSERVER, str(RS_PORT), str(cpu))
    for on in (False, True):
        _set_toa(lab, on)
        _round(lab, server, WARMUP, on, cpu)
    wall, per_cpu = {False: [], True: []}, {False: [], True: []}
    for pair in range(pairs):
        for on in (False, True) if pair % 2 == 0 else (True, False):
            _set_toa(lab, on)
            rate, cpu_rate, slowest = _round(lab, server, connections, on, cpu)
            wall[on].append(rate)
            per_cpu[on].append(cpu_rate)
            print(
                f"pair {pair + 1} {'with' if on else 'without'} TOA: {cpu_rate:.0f} connections per"
                f" CPU-second, {rate:.0f} per second (slowest connection {slowest:.1f} ms)"
            )
    _set_toa(lab, False)
    print(figure("lvs_toa_conn_per_cpu_s_without", per_cpu[False], 0))
    print(figure("lvs_toa_conn_per_cpu_s_with", per_cpu[True], 0))
    print(figure("lvs_toa_conn_per_s_without", wall[False], 0))
    print(figure("lvs_toa_conn_per_s_with", wall[True], 0))
    per_pair = [_overhead([w], [t]) for w, t in zip(per_cpu[False], per_cpu[True], strict=True)]
    print(
        f"BENCH lvs_toa_overhead_pct {_overhead(per_cpu[False], per_cpu[True]):.1f}"
        "  # (without - with) / without of the medians per CPU-second; per pair:"
        f" {' '.join(f'{p:.1f}' for p in per_pair)} (min-max {min(per_pair):.1f}-{max(per_pair):.1f});"
        f" by the wall clock {_overhead(wall[False], wall[True]):.1f}"
    )
    print(f"load average {_load()} at the end")


def main() -> int:
    size = bench_size()
    connections, pairs = CONNECTIONS[size], PAIRS[size]
    print(
        f"size {size}: {pairs} pairs of rounds of {connections} connections (with TOA and without,"
        f" the order swapped each pair); client {CLIENT} -> VIP {VIP_ADDRESS}:{VIP_PORT}"
        f" -> realserver {REALSERVER}:{RS_PORT}"
    )
    signal.signal(signal.SIGTERM, _terminate)  # so that a stopped run still cleans up
    work = Path(tempfile.mkdtemp(prefix="cloud58-bench-toa-"))
    lab = ToaLab(run_prefix("btoa"), work)
    try:
        lab.start()
        _measure(lab, connections, pairs)
    except NetLabError as e:
        raise SystemExit(f"bench_toa: {e}") from None
    finally:
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        problems, left = lab.close()
        if problems or left:
            print(
                f"bench_toa: cleanup left {problems}, our programs still loaded: {left}; {work} kept",
                file=sys.stderr,
            )
        else:
            shutil.rmtree(work, ignore_errors=True)
    return 1 if problems or left else 0


if __name__ == "__main__":
    sys.exit(main())
