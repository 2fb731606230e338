#!/usr/bin/env python3
# -*- coding: utf-8 -*-
# Copyright: cloud58 platform team
# Apache License 2.0
"""Benchmark the GitOps reconcile on 3 real clusters x 1,000 objects each.

Starts three control planes (etcd + kube-apiserver, the pinned upstream programs), writes
one cluster directory per cluster (a Namespace, then ConfigMaps, Deployments and Services:
1,000 objects), and compares in the same run:

* the baseline a user would otherwise run: ``kubectl apply --server-side -f clusters/<c>/
  --context <c>``, cluster after cluster (on a copy of the same manifests labelled for a
  different owner, so the two never fight over fields);
* ``reconcile`` (the engine behind ``playbooks/reconcile.yml``): clusters in parallel,
  one LIST per kind, writes only for what differs.

Both run twice: the initial apply into empty clusters, then a no-op run. Prints:

    BENCH reconcile_initial_baseline_s <s>    kubectl, 3 clusters one after another
    BENCH reconcile_initial_s <s>             reconcile, 3 clusters
    BENCH reconcile_initial_speedup <x>       target >= 2
    BENCH reconcile_noop_baseline_s <s>
    BENCH reconcile_noop_s <s>
    BENCH reconcile_noop_speedup <x>          target >= 10
    BENCH reconcile_noop_cold_cache_s <s>     the same without the parse cache (a fresh CI runner)
    BENCH reconcile_noop_cold_cache_speedup <x>
    BENCH reconcile_noop_requests <n>         API requests of the no-op run, per cluster
    BENCH reconcile_drift_check_s <s>         check mode finding one hand edit among 3,000 objects
    BENCH reconcile_initial_{baseline_,}{client,servers}_cpu_s <s>
                                              CPU seconds of the initial runs: the client
                                              (kubectl / this process) and the 3 API servers
                                              with their etcds, which share the machine

Benchmarks measure and print; they never fail on time.
"""

from __future__ import annotations

import argparse
import ipaddress
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO / "collections"), str(REPO / "lab")]

import yaml  # noqa: E402

from ansible_collections.cloud58.platform.plugins.module_utils.gitops.runner import run_reconcile  # noqa: E402
from ansible_collections.cloud58.platform.plugins.module_utils.render.dump import dump_yaml, file_name  # noqa: E402
from ansible_collections.cloud58.platform.plugins.module_utils.render.platform import (  # noqa: E402
    identity_configmap,
    labels_for,
)
from cloud58_lab.controlplane import ClusterNetwork, proc_cpu_seconds, start_clusters  # noqa: E402

CLUSTERS = ("bench1", "bench2", "bench3")
NAMESPACE = "bench"


def objects(cluster: str, count: int, owner_label: str) -> list[dict]:
    """A Namespace and (count - 1) ConfigMaps, Deployments and Services in equal parts."""
    labels = labels_for(cluster) if owner_label == "cloud58" else {"bench.cloud58.io/owner": owner_label}
    ns = f"{NAMESPACE}-{owner_label}"
    out = [{"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns, "labels": dict(labels)}}]
    for i in range(count - 1):
        name = f"app-{i // 3:04d}"
        kind = i % 3
        meta = {"name": name, "namespace": ns, "labels": dict(labels)}
        if kind == 0:
            out.append(
                {"apiVersion": "v1", "kind": "ConfigMap", "metadata": meta, "data": {"app.conf": f"id={i}\n"}}
            )
        elif kind == 1:
            out.append(
                {
                    "apiVersion": "apps/v1",
                    "kind": "Deployment",
                    "metadata": meta,
                    "spec": {
                        "replicas": 2,
                        "selector": {"matchLabels": {"app": name}},
                        "template": {
                            "metadata": {"labels": {"app": name}},
                            "spec": {
                                "containers": [
                                    {
                                        "name": "app",
                                        "image": "registry.example/bench/app:1.0.0",
                                        "ports": [{"name": "http", "containerPort": 8080}],
                                        "resources": {"requests": {"cpu": "100m", "memory": "128Mi"}},
                                    }
                                ]
                            },
                        },
                    },
                }
            )
        else:
            out.append(
                {
                    "apiVersion": "v1",
                    "kind": "Service",
                    "metadata": meta,
                    "spec": {
                        "selector": {"app": name},
                        "ports": [{"name": "http", "port": 80, "targetPort": "http"}],
                    },
                }
            )
    return out


def write_dir(directory: Path, objs: list[dict], cluster_file: dict | None = None) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    if cluster_file is not None:
        (directory / "cluster.yml").write_text(yaml.safe_dump(cluster_file))
    for obj in objs:
        (directory / file_name(obj)).write_text(dump_yaml(obj))


class CpuMeter:
    """CPU seconds spent between start() and stop() by the client (this process and its
    children, i.e. kubectl) and by the clusters' processes (from /proc, by PID)."""

    def __init__(self, cset) -> None:
        self.cset = cset
        self.client = self.servers = 0.0

    def _now(self) -> tuple[float, float]:
        me = resource.getrusage(resource.RUSAGE_SELF)
        kids = resource.getrusage(resource.RUSAGE_CHILDREN)
        client = me.ru_utime + me.ru_stime + kids.ru_utime + kids.ru_stime
        servers = sum(proc_cpu_seconds(pid) for pids in self.cset.pids().values() for pid in pids.values())
        return client, servers

    def __enter__(self) -> CpuMeter:
        self._start = self._now()
        return self

    def __exit__(self, *exc) -> None:
        client, servers = self._now()
        self.client, self.servers = client - self._start[0], servers - self._start[1]


def kubectl_apply_all(
    kubectl: Path, kubeconfig: Path, baseline_root: Path, env: dict, *extra: str, files: str = ""
) -> float:
    """``kubectl apply --server-side -f <dir or one file of it>``, cluster after cluster."""
    start = time.monotonic()
    for cluster in CLUSTERS:
        run = subprocess.run(
            [
                str(kubectl),
                "apply",
                "--server-side",
                *extra,
                "-f",
                str(baseline_root / cluster / files),
                "--context",
                cluster,
                "--kubeconfig",
                str(kubeconfig),
            ],
            check=False,
            capture_output=True,
            text=True,
            env=env,
        )
        if run.returncode != 0:
            raise SystemExit(f"kubectl apply on {cluster} failed: {run.stderr[-2000:]}")
    return time.monotonic() - start


def reconcile(root: Path, kubeconfig: Path, *, check_mode: bool = False, **params) -> tuple[float, dict]:
    start = time.monotonic()
    result = run_reconcile(
        {"clusters_dir": str(root), "kubeconfig": str(kubeconfig), **params}, check_mode=check_mode
    )
    seconds = time.monotonic() - start
    if result["failed_clusters"]:
        raise SystemExit("reconcile failed:\n" + "\n".join(result["summary"]))
    return seconds, result


def bin_dir() -> Path:
    out = subprocess.run(
        [str(REPO / "scripts/setup/upstream-bin-dir")], capture_output=True, text=True, check=False
    )
    if out.returncode != 0:
        raise SystemExit(f"bench_reconcile: the pinned upstream programs are missing: {out.stderr.strip()}")
    return Path(out.stdout.strip())


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--objects", type=int, default=1000, help="objects per cluster (default 1000)")
    args = parser.parse_args()
    programs = bin_dir()
    work = Path(tempfile.mkdtemp(prefix="cloud58-bench-reconcile-"))
    try:
        # Room for the Services of both runs (the default plan gives each cluster a /24).
        networks = {
            name: ClusterNetwork(
                service_cidr=ipaddress.IPv4Network(f"198.19.{16 + 4 * i}.0/22"),
                pod_cidr=ClusterNetwork.for_index(i).pod_cidr,
                node_cidr=ClusterNetwork.for_index(i).node_cidr,
            )
            for i, name in enumerate(CLUSTERS)
        }
        cset = start_clusters(CLUSTERS, work / "clusters-runtime", programs, networks=networks)
        try:
            return run(cset, work, programs / "kubectl", args.objects)
        finally:
            cset.close()
    finally:
        shutil.rmtree(work, ignore_errors=True)


def run(cset, work: Path, kubectl: Path, count: int) -> int:
    root = work / "clusters"
    baseline = work / "baseline"
    for cluster in CLUSTERS:
        identity = {"uid": f"bench-{cluster}"}
        cluster_file = {"cluster": cluster, "context": cluster, "datacenter": "bench", "identity": identity}
        write_dir(root / cluster, [identity_configmap(cluster, "bench", identity["uid"])], cluster_file)
        write_dir(baseline / cluster, objects(cluster, count, "kubectl"))
    # The identity exists on a provisioned cluster: create it outside the timings.
    reconcile(root, cset.kubeconfig, bootstrap_identity=True)
    for cluster in CLUSTERS:
        write_dir(root / cluster, objects(cluster, count, "cloud58"))

    env = {**os.environ, "KUBECACHEDIR": str(work / "kube-cache")}
    # kubectl as a user runs it day to day: discovery and OpenAPI already in its cache.
    namespace_file = file_name(objects(CLUSTERS[0], 1, "kubectl")[0])
    kubectl_apply_all(kubectl, cset.kubeconfig, baseline, env, "--dry-run=server", files=namespace_file)
    with CpuMeter(cset) as baseline_cpu:
        initial_baseline = kubectl_apply_all(kubectl, cset.kubeconfig, baseline, env)
    cache = str(work / "parse-cache")
    with CpuMeter(cset) as reconcile_cpu:
        initial, first = reconcile(root, cset.kubeconfig, cache_dir=cache)
    created = sum(c["counts"]["created"] for c in first["clusters"].values())
    noop_baseline = kubectl_apply_all(kubectl, cset.kubeconfig, baseline, env)
    noop, second = reconcile(root, cset.kubeconfig, cache_dir=cache)
    changed = sum(c["counts"]["created"] + c["counts"]["updated"] for c in second["clusters"].values())
    requests = max(c["requests"] for c in second["clusters"].values())
    # A fresh CI runner has no parse cache: the same no-op run, parsing every file again.
    noop_cold, _ = reconcile(root, cset.kubeconfig, cache_dir=str(work / "cold-cache"))

    cset["bench2"].kubectl("-n", f"{NAMESPACE}-cloud58", "scale", "deployment/app-0100", "--replicas=7")
    drift_check, third = reconcile(root, cset.kubeconfig, check_mode=True, cache_dir=cache)
    drifted = [(name, o["name"]) for name, c in third["clusters"].items() for o in c["objects"]]

    print(f"# {len(CLUSTERS)} clusters x {count} objects; created {created}, no-op run changed {changed}")
    print(f"# drift check found {drifted}")
    print(f"BENCH reconcile_initial_baseline_s {initial_baseline:.2f}")
    print(f"BENCH reconcile_initial_s {initial:.2f}")
    print(f"BENCH reconcile_initial_speedup {initial_baseline / initial:.1f}")
    print(f"BENCH reconcile_noop_baseline_s {noop_baseline:.2f}")
    print(f"BENCH reconcile_noop_s {noop:.2f}")
    print(f"BENCH reconcile_noop_speedup {noop_baseline / noop:.1f}")
    print(f"BENCH reconcile_noop_cold_cache_s {noop_cold:.2f}")
    print(f"BENCH reconcile_noop_cold_cache_speedup {noop_baseline / noop_cold:.1f}")
    print(f"BENCH reconcile_noop_requests {requests}")
    print(f"BENCH reconcile_drift_check_s {drift_check:.2f}")
    print(f"BENCH reconcile_initial_baseline_client_cpu_s {baseline_cpu.client:.2f}")
    print(f"BENCH reconcile_initial_client_cpu_s {reconcile_cpu.client:.2f}")
    print(f"BENCH reconcile_initial_baseline_servers_cpu_s {baseline_cpu.servers:.2f}")
    print(f"BENCH reconcile_initial_servers_cpu_s {reconcile_cpu.servers:.2f}")
    if created != len(CLUSTERS) * count or changed or drifted != [("bench2", "app-0100")]:
        print(
            "bench_reconcile: unexpected counts; the figures above do not measure what they claim",
            file=sys.stderr,
        )
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
