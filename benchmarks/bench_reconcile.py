#!/usr/bin/env python3
# -*- coding: utf-8 -*-
# Copyright: cloud58 platform team
# Apache License 2.0
"""Benchmark the GitOps reconcile as users run it, on 3 real clusters.

Starts three control planes (etcd + kube-apiserver, the pinned upstream programs), writes
one directory per cluster (a Namespace, then ConfigMaps, Deployments and Services: 1,000
objects per cluster at size ``full``, 200 at size ``ci``; ``CLOUD58_BENCH_SIZE``), and
times three contenders doing the same work, each on its own copy of the manifests (its
own namespace and owner label, so they never fight over fields):

* ``playbook``: ``ansible-playbook playbooks/reconcile.yml`` as ``make reconcile`` runs it,
  a new process each time (start-up included), with the benchmark's kubeconfig and
  clusters directory as extra variables;
* ``sequential``: ``kubectl apply --server-side -f <dir> --context <c>``, one cluster
  directory after another, as a user's script would (kubectl's discovery cache warm);
* ``parallel``: the same kubectl, one process per cluster, all started at once.

Each repetition (3 by default) first deletes the three namespaces and everything in them,
so that its initial runs start from empty clusters, then times the initial apply and a
no-op run of each contender, a no-op playbook run with a cold parse cache (a fresh CI
runner), and the merge-request job's ``--check --diff`` run after one hand edit. Every
figure is the median of the repetitions, printed with every run and the spread (min-max);
a ratio is the median of the repetitions' ratios (kubectl's time / the playbook's):

    BENCH reconcile_{initial,noop}_{playbook,sequential,parallel}_s <s>
    BENCH reconcile_{initial,noop}_speedup_vs_{sequential,parallel} <x>
    BENCH reconcile_noop_playbook_cold_cache_s <s>
    BENCH reconcile_noop_cold_cache_speedup_vs_sequential <x>
    BENCH reconcile_noop_requests_per_cluster <n>
    BENCH reconcile_drift_check_playbook_s <s>
    BENCH reconcile_initial_{playbook,sequential,parallel}_{client,servers}_cpu_s <s>
        CPU seconds of the initial runs: the client (ansible-playbook with its module, or
        kubectl) and the 3 API servers with their etcds, which share the machine

Benchmarks measure and print; they never fail on time.
"""

from __future__ import annotations

import argparse
import ipaddress
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO / "collections"), str(REPO / "lab")]

import yaml  # noqa: E402
from benchstats import bench_size, figure, upstream_bin_dir  # noqa: E402

from ansible_collections.cloud58.platform.plugins.module_utils.kube.clusters_format import dump_yaml  # noqa: E402
from ansible_collections.cloud58.platform.plugins.module_utils.kube.objects import labels_for  # noqa: E402
from ansible_collections.cloud58.platform.plugins.module_utils.render.file_names import file_name  # noqa: E402
from ansible_collections.cloud58.platform.plugins.module_utils.render.platform import identity_configmap  # noqa: E402
from cloud58_lab.controlplane import ClusterNetwork, ControlPlaneError, proc_cpu_seconds, start_clusters  # noqa: E402

CLUSTERS = ("bench1", "bench2", "bench3")
NAMESPACE = "bench"
OBJECTS = {"full": 1000, "ci": 200}  # per cluster, by CLOUD58_BENCH_SIZE
RUNS = 3


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
    """CPU seconds spent inside the ``with`` block by the client (this process and its
    children: kubectl, or ansible-playbook and its module) and by the clusters' processes
    (from /proc, by PID)."""

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


def kubectl_argv(kubectl: Path, kubeconfig: Path, directory: Path, cluster: str, *extra: str) -> list[str]:
    return [
        str(kubectl),
        "apply",
        "--server-side",
        *extra,
        "-f",
        str(directory),
        "--context",
        cluster,
        "--kubeconfig",
        str(kubeconfig),
    ]


def kubectl_apply(
    kubectl: Path, kubeconfig: Path, root: Path, env: dict, logs: Path, *, parallel: bool
) -> float:
    """``kubectl apply --server-side -f <root>/<cluster>/`` for every cluster: one after
    another, or all at once (one kubectl per cluster), as a user's script would."""
    logs.mkdir(parents=True, exist_ok=True)
    procs = []
    start = time.monotonic()
    for cluster in CLUSTERS:
        with open(logs / f"{cluster}.out", "w") as out, open(logs / f"{cluster}.err", "w") as err:
            proc = subprocess.Popen(
                kubectl_argv(kubectl, kubeconfig, root / cluster, cluster), stdout=out, stderr=err, env=env
            )
        if not parallel:
            proc.wait()
        procs.append((cluster, proc))
    for _, proc in procs:
        proc.wait()
    seconds = time.monotonic() - start
    for cluster, proc in procs:
        if proc.returncode != 0:
            raise SystemExit(
                f"kubectl apply on {cluster} failed: {(logs / f'{cluster}.err').read_text()[-2000:]}"
            )
    return seconds


class Playbook:
    """``ansible-playbook playbooks/reconcile.yml`` as ``make reconcile`` runs it: a new
    process each time (start-up included), the Makefile's environment, the benchmark's
    kubeconfig and clusters directory as extra variables. The JSON report goes to the work
    directory instead of build/; the parse cache (``$XDG_CACHE_HOME/cloud58/gitops``) to a
    directory the caller names, so that cold and warm caches are chosen, not inherited."""

    def __init__(self, root: Path, kubeconfig: Path, work: Path) -> None:
        self.root, self.kubeconfig, self.report = root, kubeconfig, work / "reconcile-report.json"
        self.playbook = REPO / "playbooks" / "reconcile.yml"

    def __call__(self, cache_home: Path, *args: str, **extra_vars) -> tuple[float, dict]:
        self.report.unlink(missing_ok=True)
        extra = {
            "clusters_dir": str(self.root),
            "kubeconfig": str(self.kubeconfig),
            "report_path": str(self.report),
            **extra_vars,
        }
        env = {
            **os.environ,
            "PATH": f"{REPO / '.venv' / 'bin'}{os.pathsep}{os.environ.get('PATH', '')}",
            "ANSIBLE_CONFIG": str(REPO / "ansible.cfg"),
            "PYTHONDONTWRITEBYTECODE": "1",
            "XDG_CACHE_HOME": str(cache_home),
        }
        argv = ["ansible-playbook", str(self.playbook), "-e", json.dumps(extra), *args]
        start = time.monotonic()
        run = subprocess.run(argv, cwd=REPO, env=env, capture_output=True, text=True, check=False)
        seconds = time.monotonic() - start
        if run.returncode != 0 or not self.report.exists():
            raise SystemExit(
                f"{' '.join(argv[:2])} failed ({run.returncode}):\n{run.stdout[-3000:]}{run.stderr[-2000:]}"
            )
        return seconds, json.loads(self.report.read_text())


def empty_namespaces(cset, namespaces: list[str]) -> None:
    """Delete the namespaces and everything in them, on every cluster at once, and wait
    until they are gone. The benchmark's clusters run no controllers: the objects are
    deleted by collection, then the namespace's finalizer is cleared as the namespace
    controller would after emptying it."""

    def missing(cluster, path: str) -> bool:
        try:
            cluster.api("GET", path)
        except ControlPlaneError as e:
            if "HTTP 404" in str(e):
                return True
            raise
        return False

    def one(cluster) -> None:
        for ns in namespaces:
            path = f"/api/v1/namespaces/{ns}"
            if missing(cluster, path):
                continue
            cluster.api("DELETE", f"{path}/configmaps", timeout=300)
            cluster.api("DELETE", f"/apis/apps/v1/namespaces/{ns}/deployments", timeout=300)
            # Services have no delete-collection: one DELETE each.
            for item in cluster.api("GET", f"{path}/services", timeout=60).get("items", []):
                cluster.api("DELETE", f"{path}/services/{item['metadata']['name']}")
            cluster.api("DELETE", path)
            if not missing(cluster, path):
                body = cluster.api("GET", path)
                body["spec"]["finalizers"] = []
                cluster.api("PUT", f"{path}/finalize", body)
                if not missing(cluster, path):
                    cluster.api("DELETE", path)
            deadline = time.monotonic() + 120
            while not missing(cluster, path):
                if time.monotonic() > deadline:
                    raise SystemExit(
                        f"{cluster.name}: namespace {ns} is still there 120 s after its deletion"
                    )
                time.sleep(0.2)

    with ThreadPoolExecutor(len(CLUSTERS)) as pool:
        list(pool.map(one, (cset[c] for c in CLUSTERS)))


def main() -> int:
    size = bench_size()
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--objects", type=int, default=OBJECTS[size], help=f"objects per cluster (default {OBJECTS[size]})"
    )
    parser.add_argument(
        "--runs", type=int, default=RUNS, help=f"repetitions of every figure (default {RUNS})"
    )
    args = parser.parse_args()
    programs = upstream_bin_dir("bench_reconcile")
    work = Path(tempfile.mkdtemp(prefix="cloud58-bench-reconcile-"))
    try:
        # Room for the Services of the three contenders (the default plan gives each cluster a /24).
        networks = {
            name: ClusterNetwork(
                service_cidr=ipaddress.IPv4Network(f"198.19.{16 + 8 * i}.0/21"),
                pod_cidr=ClusterNetwork.for_index(i).pod_cidr,
                node_cidr=ClusterNetwork.for_index(i).node_cidr,
            )
            for i, name in enumerate(CLUSTERS)
        }
        cset = start_clusters(CLUSTERS, work / "clusters-runtime", programs, networks=networks)
        try:
            return run(cset, work, programs / "kubectl", size=size, count=args.objects, runs=args.runs)
        finally:
            cset.close()
    finally:
        shutil.rmtree(work, ignore_errors=True)


def run(cset, work: Path, kubectl: Path, *, size: str, count: int, runs: int) -> int:
    root = work / "clusters"
    sequential_root, parallel_root = work / "kubectl-sequential", work / "kubectl-parallel"
    for cluster in CLUSTERS:
        identity = {"uid": f"bench-{cluster}"}
        cluster_file = {"cluster": cluster, "context": cluster, "datacenter": "bench", "identity": identity}
        write_dir(root / cluster, [identity_configmap(cluster, "bench", identity["uid"])], cluster_file)
        write_dir(sequential_root / cluster, objects(cluster, count, "kubectl-seq"))
        write_dir(parallel_root / cluster, objects(cluster, count, "kubectl-par"))
    playbook = Playbook(root, cset.kubeconfig, work)
    # The identity exists on a provisioned cluster: create it outside the timings.
    playbook(work / "cache-bootstrap", bootstrap_identity=True)
    for cluster in CLUSTERS:
        write_dir(root / cluster, objects(cluster, count, "cloud58"))
    namespaces = [f"{NAMESPACE}-{owner}" for owner in ("cloud58", "kubectl-seq", "kubectl-par")]

    env = {**os.environ, "KUBECACHEDIR": str(work / "kube-cache")}
    # kubectl as a user runs it day to day: discovery and OpenAPI already in its cache.
    namespace_file = sequential_root / CLUSTERS[0] / file_name(objects(CLUSTERS[0], 1, "kubectl-seq")[0])
    for cluster in CLUSTERS:
        subprocess.run(
            kubectl_argv(kubectl, cset.kubeconfig, namespace_file, cluster, "--dry-run=server"),
            check=True,
            capture_output=True,
            env=env,
        )

    t: dict[str, list[float]] = {}
    cpu: dict[str, list[float]] = {}
    requests: list[float] = []
    problems: list[str] = []
    drifted_name = f"app-{(count - 1) // 6:04d}"

    def timed(name: str, func) -> object:
        with CpuMeter(cset) as meter:
            start = time.monotonic()
            result = func()
            t.setdefault(name, []).append(time.monotonic() - start)
        cpu.setdefault(f"{name}_client", []).append(meter.client)
        cpu.setdefault(f"{name}_servers", []).append(meter.servers)
        return result

    for rep in range(runs):
        # Every repetition starts from empty clusters: the three contenders' namespaces
        # (and all in them) are deleted; only the identity ConfigMaps stay.
        empty_namespaces(cset, namespaces)
        warm = work / f"cache-{rep}"
        contenders = [
            ("playbook", lambda warm=warm: playbook(warm)[1]),
            (
                "sequential",
                lambda: kubectl_apply(
                    kubectl, cset.kubeconfig, sequential_root, env, work / "logs", parallel=False
                ),
            ),
            (
                "parallel",
                lambda: kubectl_apply(
                    kubectl, cset.kubeconfig, parallel_root, env, work / "logs", parallel=True
                ),
            ),
        ]
        # The order turns from one repetition to the next, so no contender always runs first.
        order = contenders[rep % 3 :] + contenders[: rep % 3]
        for name, func in order:
            result = timed(f"initial_{name}", func)
            if name == "playbook":
                created = sum(c["counts"]["created"] for c in result["clusters"].values())
                if created != len(CLUSTERS) * count:
                    problems.append(f"run {rep + 1}: the initial reconcile created {created} objects")
        for name, func in order:
            result = timed(f"noop_{name}", func)
            if name == "playbook":
                changed = sum(
                    c["counts"]["created"] + c["counts"]["updated"] for c in result["clusters"].values()
                )
                if changed:
                    problems.append(f"run {rep + 1}: the no-op reconcile changed {changed} objects")
                requests.append(max(c["requests"] for c in result["clusters"].values()))
        # A fresh CI runner has no parse cache: the same no-op run, parsing every file again.
        timed("noop_playbook_cold_cache", lambda rep=rep: playbook(work / f"cache-cold-{rep}"))
        # The merge-request job: check mode with diffs finds one hand edit.
        cset["bench2"].kubectl(
            "-n", f"{NAMESPACE}-cloud58", "scale", f"deployment/{drifted_name}", "--replicas=7"
        )
        _, report = timed("drift_check_playbook", lambda warm=warm: playbook(warm, "--check", "--diff"))
        drifted = [(name, o["name"]) for name, c in report["clusters"].items() for o in c["objects"]]
        if drifted != [("bench2", drifted_name)]:
            problems.append(f"run {rep + 1}: the drift check found {drifted}")

    total = len(CLUSTERS) * count
    print(f"# size {size}: {len(CLUSTERS)} clusters x {count} objects ({total}), {runs} runs of every figure")
    print(
        "# playbook: ansible-playbook playbooks/reconcile.yml as `make reconcile` runs it (start-up included)"
    )
    print(
        "# sequential / parallel: kubectl apply --server-side -f <dir>, cluster after cluster / all at once"
    )
    print("# initial runs start from empty clusters (the namespaces of the last run deleted)")
    for phase in ("initial", "noop"):
        for name in ("playbook", "sequential", "parallel"):
            print(figure(f"reconcile_{phase}_{name}_s", t[f"{phase}_{name}"]))
        for name in ("sequential", "parallel"):
            ratios = [b / p for b, p in zip(t[f"{phase}_{name}"], t[f"{phase}_playbook"], strict=True)]
            print(figure(f"reconcile_{phase}_speedup_vs_{name}", ratios, digits=1))
    print(figure("reconcile_noop_playbook_cold_cache_s", t["noop_playbook_cold_cache"]))
    cold = [b / p for b, p in zip(t["noop_sequential"], t["noop_playbook_cold_cache"], strict=True)]
    print(figure("reconcile_noop_cold_cache_speedup_vs_sequential", cold, digits=1))
    print(figure("reconcile_noop_requests_per_cluster", requests, digits=0))
    print(figure("reconcile_drift_check_playbook_s", t["drift_check_playbook"]))
    print("# CPU seconds of the initial runs: the client (ansible-playbook and its module / kubectl)")
    print("# and the 3 API servers with their etcds, which share the machine")
    for name in ("playbook", "sequential", "parallel"):
        for side in ("client", "servers"):
            print(figure(f"reconcile_initial_{name}_{side}_cpu_s", cpu[f"initial_{name}_{side}"]))
    if problems:
        print("bench_reconcile: the figures above do not measure what they claim:", file=sys.stderr)
        for problem in problems:
            print(f"  {problem}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
