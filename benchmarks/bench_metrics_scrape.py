#!/usr/bin/env python3
# -*- coding: utf-8 -*-
# Copyright: cloud58 platform team
# Apache License 2.0
"""Benchmark the scrapes of a node set (issue 17 item 7): ``BENCH metrics_scrape_p99_ms``.

A node set of NODES nodes, each with the two exporters the monitoring stage scrapes on every
node: Debian's ``prometheus-node-exporter`` (its default collectors) and ``cloud58-signals``
(``agents/cloud58_signals.py run``, from the source tree, under /usr/bin/python3 as the role
runs it), all on 127.0.0.1, each node on ports of its own. One real Prometheus (Debian's, the
version the prometheus role installs) scrapes them with the jobs ``node`` and ``signals`` as
``monitoring/scrape.py`` writes them for the lab's plan (node every 15 s, signals every 1 s;
their targets moved to the benchmark's ports, each labelled with its node), for WINDOW
seconds. Prometheus records each scrape's own time as ``scrape_duration_seconds``: the
benchmark reads every sample of the window back through the query API.

The contender is what a user would otherwise run for second-level figures: node-exporter
itself scraped every second (one job, the same exporters, the same window, run after ours).
Both phases also count the samples Prometheus ingests per second and the CPU the scraper and
the exporters use (user+sys of their processes over the window, /proc/<pid>/stat; the signals
agents, stopped before the contender's phase, count in ours only). Prints:

    BENCH metrics_scrape_p99_ms <ms>           p99 of every scrape of the node set (both jobs)
    BENCH metrics_scrape_node_p99_ms <ms>      p99 of the node job's scrapes (every 15 s)
    BENCH metrics_scrape_signals_p99_ms <ms>   p99 of the signals job's scrapes (every 1 s)
                                               (each p99 the median of the p99s of three equal
                                               parts of the window, with each and the spread)
    BENCH metrics_scrape_{node,signals}_median_ms  the median of each node's median, with every
                                               node's and the spread
    BENCH metrics_scrape_samples_per_s <n>     samples ingested per second, our jobs
    BENCH metrics_scrape_cores <c>             CPU of Prometheus and the exporters, our jobs
    BENCH node_exporter_1s_scrape_p99_ms <ms>  the contender's p99
    BENCH node_exporter_1s_scrape_median_ms    the median of each node's median
    BENCH node_exporter_1s_scrape_samples_per_s <n>  its samples per second
    BENCH node_exporter_1s_scrape_cores <c>    its CPU
    BENCH metrics_scrape_samples_ratio <x>     contender samples/s / ours
    BENCH metrics_scrape_cores_ratio <x>       contender cores / ours

Sizes (CLOUD58_BENCH_SIZE): full = 16 nodes, a 300 s window per phase; ci = 4 nodes, 60 s.
Benchmarks measure and print; they never fail on time.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.parse
import urllib.request
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO / "collections"), str(REPO / "benchmarks")]

from benchstats import bench_size, figure, percentile  # noqa: E402

from ansible_collections.cloud58.platform.plugins.module_utils.monitoring import (  # noqa: E402
    config_text,
    scrape_config,
)
from ansible_collections.cloud58.platform.plugins.module_utils.topology import (  # noqa: E402
    build_plan,
    load_inventory,
)

BENCH = "bench_metrics_scrape"
SIZES = {"full": (16, 300), "ci": (4, 60)}
NODE_EXPORTER = "/usr/bin/prometheus-node-exporter"
PROMETHEUS = "/usr/bin/prometheus"
SIGNALS = REPO / "collections/ansible_collections/cloud58/platform/agents/cloud58_signals.py"
CLK_TCK = os.sysconf("SC_CLK_TCK")
# Scrapes start at an offset of their own within the interval: the first 15 s are left out.
SETTLE_S = 20
# Each p99 is taken in this many equal parts of the window: their median, with the spread.
PARTS = 3


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _cpu_s(pids) -> float:
    total = 0
    for pid in pids:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        total += int(fields[11]) + int(fields[12])  # utime, stime
    return total / CLK_TCK


def _get(url: str, timeout: float = 10.0) -> bytes:
    with urllib.request.urlopen(url, timeout=timeout) as r:
        return r.read()


def _wait_http(url: str, what: str, proc, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"{BENCH}: {what} exited {proc.returncode} before serving {url}")
        try:
            _get(url, timeout=2)
            return
        except OSError:
            time.sleep(0.2)
    raise SystemExit(f"{BENCH}: {what} did not serve {url} within {timeout} s")


def _jobs(nodes: list[dict], contender: bool) -> list[dict]:
    """The product's node and signals jobs (the lab plan's lab1), their targets moved to the
    benchmark's nodes; the contender: the node job every second, its timeout the same."""
    plan = build_plan(load_inventory(str(REPO / "inventories/lab"))).as_dict()
    product = {
        job["job_name"].split("/")[0]: job
        for job in scrape_config(plan, "lab1", {"jobs": ["node", "signals"]})["scrape_configs"]
    }
    roles = ["node"] if contender else ["node", "signals"]
    jobs = []
    for role in roles:
        job = {k: v for k, v in product[role].items() if k not in ("static_configs", "relabel_configs")}
        job["job_name"] = role
        if contender:
            job["scrape_interval"] = job["scrape_timeout"] = product["signals"]["scrape_interval"]
        job["static_configs"] = [
            {"targets": [f"127.0.0.1:{n[role]}"], "labels": {"host": n["name"]}} for n in nodes
        ]
        jobs.append(job)
    return jobs


def _phase(work: Path, nodes: list[dict], exporters: list, contender: bool, window: int) -> dict:
    """One Prometheus over the node set for ``window`` seconds after it settled: the scrape
    durations per job and host, samples per second, and the CPU of it and the exporters."""
    name = "contender" if contender else "ours"
    port = _free_port()
    config = {
        "global": {"scrape_interval": "15s", "evaluation_interval": "15s"},
        "scrape_configs": _jobs(nodes, contender),
    }
    (work / f"{name}.yml").write_text(config_text(config))
    data = work / f"{name}-data"
    log = (work / f"{name}.log").open("w")
    proc = subprocess.Popen(
        [
            PROMETHEUS,
            f"--config.file={work / f'{name}.yml'}",
            f"--storage.tsdb.path={data}",
            f"--web.listen-address=127.0.0.1:{port}",
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        _wait_http(f"{base}/-/ready", "prometheus", proc)
        time.sleep(SETTLE_S)
        pids = [proc.pid, *(p.pid for p in exporters)]
        cpu0, t0 = _cpu_s(pids), time.monotonic()
        time.sleep(window)
        cpu1, t1 = _cpu_s(pids), time.monotonic()
        query = urllib.parse.urlencode({"query": f"scrape_duration_seconds[{window}s]"})
        result = json.loads(_get(f"{base}/api/v1/query?{query}"))["data"]["result"]
        durations: dict = {}
        for series in result:
            job, host = series["metric"]["job"], series["metric"]["host"]
            durations.setdefault(job, {})[host] = [(float(t), float(v) * 1000) for t, v in series["values"]]
        query = urllib.parse.urlencode({"query": f"sum(sum_over_time(scrape_samples_scraped[{window}s]))"})
        samples = float(json.loads(_get(f"{base}/api/v1/query?{query}"))["data"]["result"][0]["value"][1])
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()
    return {"durations": durations, "samples_per_s": samples / window, "cores": (cpu1 - cpu0) / (t1 - t0)}


def _start_nodes(work: Path, count: int) -> tuple[list[dict], list]:
    nodes, procs = [], []
    for i in range(1, count + 1):
        node = {"name": f"bench-n{i}", "node": _free_port(), "signals": _free_port()}
        logs = (work / f"{node['name']}-node-exporter.log").open("w")
        procs.append(
            subprocess.Popen(
                [NODE_EXPORTER, f"--web.listen-address=127.0.0.1:{node['node']}"],
                stdout=logs,
                stderr=subprocess.STDOUT,
            )
        )
        logs = (work / f"{node['name']}-signals.log").open("w")
        procs.append(
            subprocess.Popen(
                [
                    "/usr/bin/python3",
                    str(SIGNALS),
                    "run",
                    "--node",
                    node["name"],
                    "--listen",
                    f"127.0.0.1:{node['signals']}",
                ],
                stdout=logs,
                stderr=subprocess.STDOUT,
            )
        )
        nodes.append(node)
    for i, node in enumerate(nodes):
        exporter, agent = procs[2 * i], procs[2 * i + 1]
        _wait_http(f"http://127.0.0.1:{node['node']}/metrics", f"node-exporter of {node['name']}", exporter)
        _wait_http(f"http://127.0.0.1:{node['signals']}/metrics", f"cloud58-signals of {node['name']}", agent)
    return nodes, procs


def _p99_of_parts(name: str, scrapes: list) -> str:
    """The p99 of each of PARTS equal parts of the window (by the scrapes' timestamps), as a
    figure: their median, every part's and the spread."""
    low, high = min(t for t, _d in scrapes), max(t for t, _d in scrapes)
    width = (high - low) / PARTS or 1.0
    parts: list = [[] for _ in range(PARTS)]
    for t, d in scrapes:
        parts[min(PARTS - 1, int((t - low) / width))].append(d)
    line = figure(name, [percentile(part, 0.99) for part in parts if part])
    return f"{line}; {len(scrapes)} scrapes in {PARTS} parts of the window"


def _print_phase(prefix: str, phase: dict, jobs: tuple) -> None:
    every = [s for job in jobs for per_host in phase["durations"].get(job, {}).values() for s in per_host]
    if not every:
        raise SystemExit(f"{BENCH}: {prefix}: Prometheus recorded no scrape")
    print(_p99_of_parts(f"{prefix}_p99_ms", every))
    for job in jobs:
        per_host = phase["durations"].get(job, {})
        label = f"{prefix}_{job}" if len(jobs) > 1 else prefix
        if len(jobs) > 1:
            print(_p99_of_parts(f"{label}_p99_ms", [s for values in per_host.values() for s in values]))
        print(
            figure(
                f"{label}_median_ms",
                [statistics.median(d for _t, d in values) for _h, values in sorted(per_host.items())],
            )
        )
    print(f"BENCH {prefix}_samples_per_s {phase['samples_per_s']:.0f}")
    print(f"BENCH {prefix}_cores {phase['cores']:.4f}  # Prometheus and the exporters")


def main() -> int:
    size = bench_size()
    count, window = SIZES[size]
    for program in (NODE_EXPORTER, PROMETHEUS):
        if not os.access(program, os.X_OK):
            raise SystemExit(
                f"{BENCH}: {program} is missing; run make setup (scripts/setup/apt-packages.txt)"
            )
    print(f"{BENCH}: size {size}: {count} nodes, a {window} s window per phase")
    work = Path(tempfile.mkdtemp(prefix="c58-bench-scrape-"))
    procs: list = []
    try:
        nodes, procs = _start_nodes(work, count)
        ours = _phase(work, nodes, procs, contender=False, window=window)
        # the contender has no signals agents: they stop, and their CPU is not its
        node_exporters, agents = procs[::2], procs[1::2]
        for agent in agents:
            agent.terminate()
            agent.wait(timeout=10)
        theirs = _phase(work, nodes, node_exporters, contender=True, window=window)
        _print_phase("metrics_scrape", ours, ("node", "signals"))
        _print_phase("node_exporter_1s_scrape", theirs, ("node",))
        print(
            f"BENCH metrics_scrape_samples_ratio {theirs['samples_per_s'] / ours['samples_per_s']:.1f}"
            "  # node-exporter every 1 s / our jobs, samples per second"
        )
        print(
            f"BENCH metrics_scrape_cores_ratio {theirs['cores'] / ours['cores']:.1f}"
            "  # node-exporter every 1 s / our jobs, CPU of Prometheus and the exporters"
        )
    finally:
        for proc in procs:
            proc.terminate()
        for proc in procs:
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
