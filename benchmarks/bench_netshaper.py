#!/usr/bin/env python3
# -*- coding: utf-8 -*-
# Copyright: cloud58 platform team
# Apache License 2.0
"""Benchmark cloud58-netshaper's apply path: a pod's limits change -> tc applied on its veth pair.

Two namespaces joined by a veth pair (addresses inside 198.18.0.0/15) stand for a node and a
pod, shaped in both directions from the start. Inside the host namespace (the way the agent
runs on a node) each change sets new ingress and egress rates with ``shaper.apply``: read the
tc state (3 ``tc -j`` calls), run only what differs (2 ``tc qdisc replace``). Prints:

    BENCH netshaper_apply_ms <ms>           p99 of the changes (CLOUD58_BENCH_SIZE=full: 200, ci: 40)
    BENCH netshaper_apply_p50_ms <ms>       their median
    BENCH netshaper_naive_ms <ms>           p99 of the naive way per change: `tc qdisc del` + `tc qdisc add`
                                            on both devices (4 calls, no reads; it drops the queued packets
                                            and leaves the pod unshaped between the two calls)
    BENCH netshaper_apply_vs_naive_ratio <r>  apply p99 / naive p99

Every figure includes starting tc, as the agent does; the goal of the issue is a change
applied within a second.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path[:0] = [
    os.path.join(REPO, "collections"),
    os.path.join(REPO, "benchmarks"),
    os.path.join(REPO, "lab"),
]

from benchstats import bench_size  # noqa: E402

from ansible_collections.cloud58.platform.plugins.module_utils.node import shaper  # noqa: E402

CHANGES = {"full": 200, "ci": 40}
VETH = "h0"
RATES = [10_000_000 * (1 + i % 20) for i in range(40)]  # 10M..200M, each change differs from the last


def _run(argv):
    done = subprocess.run(argv, capture_output=True, text=True, check=False)
    return done.returncode, done.stdout, done.stderr


def _must(argv):
    rc, _out, err = _run(argv)
    if rc != 0:
        raise SystemExit(f"bench_netshaper: {' '.join(argv)}: {err.strip()}")


def _p(values, fraction):
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(fraction * (len(ordered) - 1)))]


def inner(changes: int) -> None:
    """In the host namespace: time ``changes`` applies, then as many naive changes."""
    shaper.apply(VETH, {"ingress": 5_000_000, "egress": 5_000_000}, _run)
    ifb = shaper.ifb_name(VETH)
    applied = []
    for i in range(changes):
        limits = {"ingress": RATES[i % len(RATES)], "egress": RATES[(i + 7) % len(RATES)]}
        start = time.perf_counter()
        result = shaper.apply(VETH, limits, _run)
        applied.append((time.perf_counter() - start) * 1000)
        if len(result["commands"]) != 2:
            raise SystemExit(f"bench_netshaper: change {i} ran {result['commands']}, expected two replaces")
    naive = []
    for i in range(changes):
        start = time.perf_counter()
        for dev, bits in ((VETH, RATES[i % len(RATES)]), (ifb, RATES[(i + 7) % len(RATES)])):
            _must(["tc", "qdisc", "del", "dev", dev, "root"])
            _must(["tc", "qdisc", "add", "dev", dev, "root", *shaper.tbf_for(bits).args()])
        naive.append((time.perf_counter() - start) * 1000)
    print(f"BENCH netshaper_apply_ms {_p(applied, 0.99):.2f}  # p99 of {changes} changes")
    print(f"BENCH netshaper_apply_p50_ms {_p(applied, 0.5):.2f}")
    print(f"BENCH netshaper_naive_ms {_p(naive, 0.99):.2f}  # p99 of {changes} del+add changes")
    print(f"BENCH netshaper_apply_vs_naive_ratio {_p(applied, 0.99) / _p(naive, 0.99):.2f}")


def main() -> int:
    if len(sys.argv) == 3 and sys.argv[1] == "--inner":
        inner(int(sys.argv[2]))
        return 0
    from cloud58_lab import programs
    from cloud58_lab.netlab import NetLab, run_prefix

    size = bench_size()
    print(f"size {size}: {CHANGES[size]} changes")
    with NetLab(prefix=run_prefix("c58nb")) as net:
        host = net.add_namespace("host")
        pod = net.add_namespace("pod")
        _must(
            programs.argv("ip", "-n", host, "link", "add", VETH, "type", "veth", "peer", "eth0", "netns", pod)
        )
        net.exec("host", "ip", "address", "add", "198.18.211.1/30", "dev", VETH)
        net.exec("host", "ip", "link", "set", VETH, "up")
        net.exec("pod", "ip", "address", "add", "198.18.211.2/30", "dev", "eth0")
        net.exec("pod", "ip", "link", "set", "eth0", "up")
        done = subprocess.run(
            programs.argv(
                "ip", "netns", "exec", host, programs.path("python3"), __file__, "--inner", CHANGES[size]
            ),
            check=False,
        )
        return done.returncode


if __name__ == "__main__":
    sys.exit(main())
