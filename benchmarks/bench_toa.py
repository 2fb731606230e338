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
the peer ``accept()`` returned and closes. Client and server run on the same one CPU (the
highest this benchmark may use), so a connection's rate is the inverse of the CPU work it
takes, the kernel's (NAT, the programs) included, rather than of cross-CPU wake-ups. A
round is a fixed number of connections (full: 2,000, ci: 1,000; ``CLOUD58_BENCH_SIZE``),
timed inside the client from the first connect to the last close. Rounds come in pairs,
one with TOA attached and one without, the order swapped from pair to pair (full: 20
pairs, ci: 6), after one short warm-up round of each. Every round checks what the server
saw: with TOA every answer is the client's own address and port, without it none is (else
the benchmark stops: it would compare the wrong things). Prints:

    BENCH lvs_toa_conn_per_s_without <n>   connections per second without TOA (median, spread)
    BENCH lvs_toa_conn_per_s_with <n>      with TOA attached (median, spread)
    BENCH lvs_toa_overhead_pct <x>         (without - with) / without * 100 of the two medians;
                                           the same per pair as its spread

The client and server are Python on the same host as the director, so a connection costs
far more than the programs' work; the figure is the share TOA adds to that, not the
programs' own nanoseconds. On a shared machine other work lands on the same CPU: the load
average is printed at the start and the end, and the per-pair spread shows how much the
rounds moved. Benchmarks measure and print; they never fail on time.
"""

from __future__ import annotations

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
# how many answers were the client's own address and port, and the slowest connection in ms
# (a retransmitted SYN would show).
CLIENT_CODE = """
import os, socket, struct, sys, time
LINGER0 = struct.pack("ii", 1, 0)
vip, port, count = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
os.sched_setaffinity(0, {int(sys.argv[4])})
seen, slowest = 0, 0.0
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
print(count / elapsed, seen, slowest * 1000)
"""


def _round(lab, connections, toa, cpu):
    """One round of ``connections``; its connections per second. Stops when what the server
    saw does not match ``toa`` (every answer the client itself, or none)."""
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
    rate, seen, slowest = float(out[0]), int(out[1]), float(out[2])
    expected = connections if toa else 0
    if seen != expected:
        state = "attached" if toa else "detached"
        raise SystemExit(
            f"bench_toa: with TOA {state}, {seen} of {connections} answers were the client's"
            f" own address, expected {expected}"
        )
    return rate, slowest


def _set_toa(lab, on):
    if on:
        lab.attach()
    else:
        problems = lab.detach()
        if problems:
            raise SystemExit(f"bench_toa: detach failed: {problems}")


def _load():
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


def _terminate(signum, frame):
    raise SystemExit(f"bench_toa: signal {signum}")


def _measure(lab, connections, pairs):
    print(f"load average {_load()} at the start")
    start = time.perf_counter()
    lab.build()
    print(f"programs compiled in {time.perf_counter() - start:.1f} s")
    cpu = max(os.sched_getaffinity(0))
    lab.start_server(SERVER, REALSERVER, str(RS_PORT), str(cpu))
    for on in (False, True):
        _set_toa(lab, on)
        _round(lab, WARMUP, on, cpu)
    rates = {False: [], True: []}
    for pair in range(pairs):
        for on in (False, True) if pair % 2 == 0 else (True, False):
            _set_toa(lab, on)
            rate, slowest = _round(lab, connections, on, cpu)
            rates[on].append(rate)
            print(
                f"pair {pair + 1} {'with' if on else 'without'} TOA: {rate:.0f} connections/s"
                f" (slowest connection {slowest:.1f} ms)"
            )
    _set_toa(lab, False)
    without, with_toa = rates[False], rates[True]
    print(figure("lvs_toa_conn_per_s_without", without, 0))
    print(figure("lvs_toa_conn_per_s_with", with_toa, 0))
    overhead = (statistics.median(without) - statistics.median(with_toa)) / statistics.median(without) * 100
    per_pair = [(w - t) / w * 100 for w, t in zip(without, with_toa, strict=True)]
    print(
        f"BENCH lvs_toa_overhead_pct {overhead:.1f}  # (without - with) / without of the medians;"
        f" per pair: {' '.join(f'{p:.1f}' for p in per_pair)}"
        f" (median {statistics.median(per_pair):.1f}, min-max {min(per_pair):.1f}-{max(per_pair):.1f})"
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
