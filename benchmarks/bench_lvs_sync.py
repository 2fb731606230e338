#!/usr/bin/env python3
# -*- coding: utf-8 -*-
# Copyright: cloud58 platform team
# Apache License 2.0
"""Benchmark cloud58-lvs-sync: an EndpointSlice change -> the director's nftables map updated.

One real control plane (etcd + kube-apiserver, the pinned upstream programs) holds headless
Services claiming VIPs (annotation ``lvs.cloud58.io/vip``) and one EndpointSlice each with
25 ready endpoints: 200 VIPs and 5,000 endpoints at size ``full``, 20 VIPs and 500 endpoints
at ``ci`` (``CLOUD58_BENCH_SIZE``); 256 slots per VIP port (51,200 map elements at ``full``).
The program runs from the source tree on the host and applies its transactions with ``nft``
in a network namespace the benchmark creates (the director). The sync logs one line per
transaction right after ``nft -f`` returned (the transaction is committed); the benchmark
reads the log every 2 ms. (``nft monitor`` cannot serve: with tens of thousands of
elements it falls seconds behind.) Each change takes one
endpoint out of (or back into) one VIP's EndpointSlice; its latency runs from just before
the API write to the sync's log line of the transaction naming that VIP.

The naive contender is what a user would script: render the whole table from the same
realservers (``fullnat.director_state`` + ``render_ruleset``) and replace it with one
``nft -f`` (``delete table`` + the table) per change, in a second namespace; it is given
its realservers for free (no watch, no API), so its figure is a lower bound. Prints:

    BENCH lvs_sync_p99_ms <ms>              p99 of the sync's changes (full: 100, ci: 30)
    BENCH lvs_sync_median_ms <ms>           their median, with spread
    BENCH lvs_sync_naive_median_ms <ms>     the naive replace per change (full: 20, ci: 10), with spread
    BENCH lvs_sync_speedup <x>              naive median / sync median (same run)

Benchmarks measure and print; they never fail on time. The issue's goal: p99 < 1,000 ms.
"""

from __future__ import annotations

import ipaddress
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO / "collections"), str(REPO / "lab"), str(REPO / "benchmarks")]

from benchstats import LogTail, bench_size, figure, speedup, upstream_bin_dir  # noqa: E402
from kubernetes import client, config  # noqa: E402

from ansible_collections.cloud58.platform.plugins.module_utils.lvs.fullnat import (  # noqa: E402
    TABLE,
    director_state,
    render_ruleset,
)
from cloud58_lab import programs  # noqa: E402
from cloud58_lab.controlplane import start_clusters  # noqa: E402
from cloud58_lab.netlab import NetLab, run_prefix  # noqa: E402

PROGRAM = REPO / "collections/ansible_collections/cloud58/platform/roles/lvs_director/files/cloud58-lvs-sync"
VIPS = {"full": 200, "ci": 20}
CHANGES = {"full": 100, "ci": 30}
NAIVE_CHANGES = {"full": 20, "ci": 10}
PER_VIP = 25
SLOTS = 256
DIRECTOR = "bench-lvs1"
NAMESPACE = "lvs-bench"
CLUSTER = "lvsbench"
VIP_BASE = ipaddress.IPv4Address("198.18.128.0")
RS_BASE = ipaddress.IPv4Address("198.19.0.0")


def plan_lvs(vips):
    """A plan's lvs section: one director with ``vips`` VIPs (port 80) and 8 local addresses."""
    names = [f"vip-{i:03d}" for i in range(vips)]
    return {
        "directors": {
            DIRECTOR: {
                "name": DIRECTOR,
                "vips": names,
                "local_addresses": {
                    "cidr": "198.18.1.0/29",
                    "first": "198.18.1.0",
                    "last": "198.18.1.7",
                    "count": 8,
                },
            }
        },
        "vips": {
            name: {
                "name": name,
                "address": str(VIP_BASE + i),
                "ports": [80],
                "directors": [DIRECTOR],
                "real_servers": [],
            }
            for i, name in enumerate(names)
        },
    }


def endpoints(vip, count):
    return [str(RS_BASE + vip * 32 + j) for j in range(count)]


def endpoint_slice(vip, count):
    return {
        "apiVersion": "discovery.k8s.io/v1",
        "kind": "EndpointSlice",
        "metadata": {
            "name": f"vip-{vip:03d}-1",
            "labels": {
                "kubernetes.io/service-name": f"vip-{vip:03d}",
                "endpointslice.kubernetes.io/managed-by": "bench",
            },
        },
        "addressType": "IPv4",
        "endpoints": [{"addresses": [a], "conditions": {"ready": True}} for a in endpoints(vip, count)],
        "ports": [{"name": "http", "port": 8080, "protocol": "TCP"}],
    }


def _p(values, fraction):
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(fraction * (len(ordered) - 1)))]


def wait_for_log(path, text, proc, timeout=300.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if text in path.read_text():
            return
        if proc.poll() is not None:
            break
        time.sleep(0.2)
    raise SystemExit(f"bench_lvs_sync: never saw {text!r}; the sync's log:\n{path.read_text()[-3000:]}")


def main() -> int:
    size = bench_size()
    vips, changes, naive_changes = VIPS[size], CHANGES[size], NAIVE_CHANGES[size]
    print(f"size {size}: {vips} VIPs, {vips * PER_VIP} endpoints, {vips * SLOTS} map elements")
    work = Path(tempfile.mkdtemp(prefix="cloud58-bench-lvs-sync-"))
    net = NetLab(prefix=run_prefix("c58lvsb"))
    cset = sync = monitor = None
    try:
        net.add_namespace("director")
        net.add_namespace("naive")
        cset = start_clusters([CLUSTER], work / "clusters", upstream_bin_dir("bench_lvs_sync"))
        api = config.new_client_from_config(config_file=str(cset.kubeconfig), context=CLUSTER)
        core, discovery = client.CoreV1Api(api), client.DiscoveryV1Api(api)
        core.create_namespace({"metadata": {"name": NAMESPACE}})
        lvs = plan_lvs(vips)
        for i in range(vips):
            core.create_namespaced_service(
                NAMESPACE,
                {
                    "metadata": {
                        "name": f"vip-{i:03d}",
                        "annotations": {"lvs.cloud58.io/vip": str(VIP_BASE + i)},
                    },
                    "spec": {"clusterIP": "None", "ports": [{"name": "http", "port": 80, "protocol": "TCP"}]},
                },
            )
            discovery.create_namespaced_endpoint_slice(NAMESPACE, endpoint_slice(i, PER_VIP))
        cfg = work / "lvs-sync.json"
        cfg.write_text(
            json.dumps(
                {
                    "director": DIRECTOR,
                    "lvs": lvs,
                    "kubeconfig": str(cset.kubeconfig),
                    "context": CLUSTER,
                    "slots": SLOTS,
                    "nft": programs.argv("ip", "netns", "exec", net.ns("director"), programs.path("nft")),
                    "metrics_port": None,  # no /metrics server: nothing else to bind
                }
            )
        )
        log = work / "sync.log"
        env = dict(os.environ, PYTHONPATH=str(REPO / "collections"))
        with log.open("w") as out:
            sync = subprocess.Popen(
                [sys.executable, str(PROGRAM), "--config", str(cfg)],
                stdout=out,
                stderr=subprocess.STDOUT,
                env=env,
            )
        start = time.perf_counter()
        wait_for_log(log, f"table ip {TABLE} created from the full list", sync)
        print(f"initial full list and table: {time.perf_counter() - start:.2f} s")
        monitor = LogTail(log, "bench_lvs_sync")

        # ---- the sync: one endpoint out of / back into one VIP per change --------------
        counts = {i: PER_VIP for i in range(vips)}
        latencies = []
        for n in range(changes):
            vip = (n * 7) % vips
            counts[vip] = PER_VIP - 1 if counts[vip] == PER_VIP else PER_VIP
            t0 = time.perf_counter()
            discovery.replace_namespaced_endpoint_slice(
                f"vip-{vip:03d}-1", NAMESPACE, endpoint_slice(vip, counts[vip])
            )
            stamp = monitor.wait_for(f"(VIPs vip-{vip:03d})")
            latencies.append((stamp - t0) * 1000)

        # ---- the naive way: render the whole table and replace it per change -----------
        overrides = {
            f"vip-{i:03d}": [{"address": a, "port": 8080, "vip_port": 80} for a in endpoints(i, counts[i])]
            for i in range(vips)
        }
        naive_nft = programs.argv("ip", "netns", "exec", net.ns("naive"), programs.path("nft"), "-f", "-")
        first = render_ruleset(director_state(lvs, DIRECTOR, overrides, "rr", SLOTS))
        subprocess.run(naive_nft, input=first, text=True, check=True, capture_output=True)
        naive = []
        for n in range(naive_changes):
            vip = (n * 7) % vips
            counts[vip] = PER_VIP - 1 if counts[vip] == PER_VIP else PER_VIP
            name = f"vip-{vip:03d}"
            overrides[name] = [
                {"address": a, "port": 8080, "vip_port": 80} for a in endpoints(vip, counts[vip])
            ]
            t0 = time.perf_counter()
            text = f"delete table ip {TABLE}\n" + render_ruleset(
                director_state(lvs, DIRECTOR, overrides, "rr", SLOTS)
            )
            done = subprocess.run(naive_nft, input=text, text=True, capture_output=True, check=False)
            naive.append((time.perf_counter() - t0) * 1000)
            if done.returncode != 0:
                raise SystemExit(f"bench_lvs_sync: naive nft -f failed: {done.stderr.strip()[:500]}")

        sync_median = statistics.median(latencies)
        print(
            f"BENCH lvs_sync_p99_ms {_p(latencies, 0.99):.1f}  # p99 of {changes} changes at {vips} VIPs / "
            f"{vips * PER_VIP} endpoints (p50 {sync_median:.1f}, max {max(latencies):.1f})"
        )
        print(figure("lvs_sync_median_ms", latencies, 1))
        print(figure("lvs_sync_naive_median_ms", naive, 1))
        print(speedup("lvs_sync_speedup", naive, latencies, "naive", "sync"))
        return 0
    except SystemExit:
        log = work / "sync.log"
        if log.exists():
            print(f"the sync's log (tail):\n{log.read_text()[-3000:]}", file=sys.stderr)
        raise
    finally:
        if monitor is not None:
            monitor.close()
        if sync is not None and sync.poll() is None:
            sync.terminate()
            sync.wait(timeout=10)
        if cset is not None:
            cset.close()
        problems = net.close()
        shutil.rmtree(work, ignore_errors=True)
        if problems:
            print(f"bench_lvs_sync: cleanup left {problems}", file=sys.stderr)


if __name__ == "__main__":
    sys.exit(main())
