#!/usr/bin/env python3
# -*- coding: utf-8 -*-
# Copyright: cloud58 platform team
# Apache License 2.0
"""Benchmark cloud58-consul-sync: an EndpointSlice change -> visible in Consul's catalog.

One real control plane (etcd + kube-apiserver, the pinned upstream programs) holds Services
registered in Consul (annotation ``consul.cloud58.io/service``) with one EndpointSlice each
of 25 ready endpoints: 200 Services and 5,000 endpoints at size ``full``, 20 and 500 at ``ci``
(``CLOUD58_BENCH_SIZE``). One Consul 1.14.11 server runs on 127.0.0.1 with ports of its own and
ACLs default-deny (the benchmark bootstraps them; the sync's token is in a file of mode 0600).
The program runs from the source tree on the host. Each change flips the readiness of one
endpoint of one Service; its latency runs from just before the API write to the answer of a
blocking query (``/v1/health/service/<name>?index=<before>``) that shows the new health.

The contender is consul-k8s' pattern: on a change of a Service's endpoints, register every
instance of that Service again with one ``PUT /v1/catalog/register`` each (the service and
its check), given the change for free (no watch, no API), on a node of its own; its figure is
a lower bound. Both write the first full registration too (the sync: from its start to its
first log line of a written catalog; the contender: one PUT per instance). Prints:

    BENCH consul_sync_initial_s <s>               the sync's first full registration
    BENCH consul_sync_naive_initial_s <s>         one PUT per instance, the same instances
    BENCH consul_sync_p99_ms <ms>                 p99 of the changes (full: 100, ci: 30)
    BENCH consul_sync_median_ms <ms>              their median, with spread
    BENCH consul_sync_requests_per_change <n>     HTTP requests to Consul per change (the sync's /metrics)
    BENCH consul_sync_naive_median_ms <ms>        per-instance registration per change (full: 20, ci: 10)
    BENCH consul_sync_naive_requests_per_change <n>
    BENCH consul_sync_speedup <x>                 naive median / sync median (same run)

Benchmarks measure and print; they never fail on time. The issue's goal: p99 < 1,000 ms.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO / "collections"), str(REPO / "lab"), str(REPO / "benchmarks")]

from benchstats import bench_size, figure, speedup, upstream_bin_dir  # noqa: E402
from kubernetes import client, config  # noqa: E402

from cloud58_lab import programs  # noqa: E402
from cloud58_lab.consulapi import single_server_config  # noqa: E402
from cloud58_lab.controlplane import start_clusters  # noqa: E402
from cloud58_lab.netlab import free_ports, logged_metrics  # noqa: E402

PROGRAM = (
    REPO / "collections/ansible_collections/cloud58/platform/roles/consul_sync/files/cloud58-consul-sync"
)
CLUSTER = "c1"
NAMESPACE = "bench-consul-sync"
PER_SERVICE = 25
SERVICES = {"full": 200, "ci": 20}
CHANGES = {"full": 100, "ci": 30}
NAIVE_CHANGES = {"full": 20, "ci": 10}
SYNC_RULES = 'node_prefix "k8s-" { policy = "write" }\nservice_prefix "" { policy = "write" }\n'


def _p(values, fraction):
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(fraction * (len(ordered) - 1)))]


class Consul:
    def __init__(self, port):
        self.address = f"http://127.0.0.1:{port}"
        self.token = ""
        self.requests = 0

    def request(self, method, path, body=None, token=None):
        req = urllib.request.Request(
            self.address + path, data=json.dumps(body).encode() if body is not None else None, method=method
        )
        token = self.token if token is None else token
        if token:
            req.add_header("X-Consul-Token", token)
        self.requests += 1
        try:
            with urllib.request.urlopen(req, timeout=120) as resp:
                status, headers, raw = resp.status, resp.headers, resp.read()
        except urllib.error.HTTPError as e:
            status, headers, raw = e.code, e.headers, e.read()
        return status, headers, json.loads(raw) if raw else None


def address(service, n):
    return f"198.19.{service // 8}.{(service % 8) * 32 + n + 1}"


def endpoint_slice(service, not_ready=None):
    return {
        "apiVersion": "discovery.k8s.io/v1",
        "kind": "EndpointSlice",
        "metadata": {
            "name": f"svc-{service:03d}-1",
            "labels": {"kubernetes.io/service-name": f"svc-{service:03d}"},
        },
        "addressType": "IPv4",
        "endpoints": [
            {"addresses": [address(service, n)], "conditions": {"ready": n != not_ready}}
            for n in range(PER_SERVICE)
        ],
        "ports": [{"name": "http", "port": 8080, "protocol": "TCP"}],
    }


def naive_register(consul, service, not_ready=None):
    """consul-k8s' way: one PUT /v1/catalog/register per instance of the Service."""
    for n in range(PER_SERVICE):
        ident = f"naive-{service:03d}-{address(service, n)}-8080"
        status, _, body = consul.request(
            "PUT",
            "/v1/catalog/register",
            {
                "Node": "k8s-naive",
                "Address": "127.0.0.1",
                "SkipNodeUpdate": True,
                "Service": {
                    "ID": ident,
                    "Service": f"naive-{service:03d}",
                    "Address": address(service, n),
                    "Port": 8080,
                    "Tags": [f"cluster={CLUSTER}", "datacenter=bj1"],
                    "Meta": {"external-source": "kubernetes"},
                },
                "Check": {
                    "CheckID": f"service:{ident}",
                    "Name": "Kubernetes readiness",
                    "ServiceID": ident,
                    "Status": "critical" if n == not_ready else "passing",
                },
            },
        )
        if status != 200:
            raise SystemExit(f"bench_consul_sync: naive register: {status} {body}")


def metrics(log):
    text = logged_metrics(log)
    if text is None:
        raise SystemExit(f"bench_consul_sync: the sync announced no /metrics in {log}")
    return {k: int(v) for k, v in re.findall(r"^cloud58_consul_sync_(\w+)\{[^}]*\} (\d+)$", text, re.M)}


def wait_for_log(path, text, proc, timeout=600.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if text in path.read_text():
            return
        if proc.poll() is not None:
            break
        time.sleep(0.01)
    raise SystemExit(f"bench_consul_sync: never saw {text!r}; the sync's log:\n{path.read_text()[-3000:]}")


def health_index(consul, name):
    status, headers, body = consul.request("GET", f"/v1/health/service/{name}")
    if status != 200:
        raise SystemExit(f"bench_consul_sync: GET health of {name}: {status} {body}")
    return int(headers["X-Consul-Index"])


def wait_for_health(consul, name, index, ident, wanted):
    """Blocking queries from ``index`` until instance ``ident`` shows ``wanted``."""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        status, headers, entries = consul.request("GET", f"/v1/health/service/{name}?index={index}&wait=10s")
        if status != 200:
            raise SystemExit(f"bench_consul_sync: blocking query on {name}: {status} {entries}")
        for e in entries:
            if e["Service"]["ID"] == ident and e["Checks"][0]["Status"] == wanted:
                return time.perf_counter()
        index = int(headers["X-Consul-Index"])
    raise SystemExit(f"bench_consul_sync: {ident} never became {wanted}")


def main() -> int:
    size = bench_size()
    services, changes, naive_changes = SERVICES[size], CHANGES[size], NAIVE_CHANGES[size]
    print(f"size {size}: {services} Services, {services * PER_SERVICE} endpoints")
    work = Path(tempfile.mkdtemp(prefix="cloud58-bench-consul-sync-"))
    cset = sync = agent = None
    try:
        http, serf, server = free_ports(3)
        consul = Consul(http)
        (work / "data").mkdir()
        (work / "consul.json").write_text(
            json.dumps(
                single_server_config(
                    "c58csb-s1",
                    "bj1",
                    work / "data",
                    {"http": http, "serf_lan": serf, "server": server},
                    acl=True,
                )
            )
        )
        with (work / "consul.log").open("w") as out:
            agent = subprocess.Popen(
                [programs.path("consul"), "agent", f"-config-file={work / 'consul.json'}"],
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        cset = start_clusters([CLUSTER], work / "clusters", upstream_bin_dir("bench_consul_sync"))
        deadline = time.monotonic() + 120
        while True:
            try:
                status, _, body = consul.request("PUT", "/v1/acl/bootstrap", token="")
                if status == 200:
                    consul.token = body["SecretID"]
                    break
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise SystemExit(f"bench_consul_sync: no ACL bootstrap:\n{(work / 'consul.log').read_text()}")
            time.sleep(0.2)
        _, _, policy = consul.request("PUT", "/v1/acl/policy", {"Name": "cloud58-sync", "Rules": SYNC_RULES})
        _, _, token = consul.request("PUT", "/v1/acl/token", {"Policies": [{"ID": policy["ID"]}]})
        fd = os.open(work / "token", os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as out:
            out.write(token["SecretID"])

        api = config.new_client_from_config(config_file=str(cset.kubeconfig), context=CLUSTER)
        core, discovery = client.CoreV1Api(api), client.DiscoveryV1Api(api)
        core.create_namespace({"metadata": {"name": NAMESPACE}})
        for i in range(services):
            core.create_namespaced_service(
                NAMESPACE,
                {
                    "metadata": {
                        "name": f"svc-{i:03d}",
                        "annotations": {"consul.cloud58.io/service": f"svc-{i:03d}"},
                    },
                    "spec": {"clusterIP": "None", "ports": [{"name": "http", "port": 80, "protocol": "TCP"}]},
                },
            )
            discovery.create_namespaced_endpoint_slice(NAMESPACE, endpoint_slice(i))
        cfg = work / "consul-sync.json"
        cfg.write_text(
            json.dumps(
                {
                    "cluster": CLUSTER,
                    "datacenter": "bj1",
                    "kubeconfig": str(cset.kubeconfig),
                    "context": CLUSTER,
                    "consul_address": consul.address,
                    "token_file": str(work / "token"),
                    "metrics_port": 0,
                }
            )
        )
        log = work / "sync.log"
        env = dict(os.environ, PYTHONPATH=str(REPO / "collections"))
        start = time.perf_counter()
        with log.open("w") as out:
            sync = subprocess.Popen(
                [sys.executable, str(PROGRAM), "--config", str(cfg)],
                stdout=out,
                stderr=subprocess.STDOUT,
                env=env,
            )
        wait_for_log(log, "catalog updated", sync)
        initial = time.perf_counter() - start
        wait_for_log(log, "metrics on http://", sync)
        print(f"first write: {log.read_text().split('catalog updated', 1)[1].splitlines()[0].strip()}")

        t0 = time.perf_counter()
        for i in range(services):
            naive_register(consul, i)
        naive_initial = time.perf_counter() - t0

        # ---- the sync: one endpoint's readiness flipped per change ----------------------
        before = metrics(log)
        not_ready = {}
        latencies = []
        for n in range(changes):
            svc = (n * 7) % services
            flip = None if not_ready.get(svc) is not None else n % PER_SERVICE
            ident = f"svc-{svc:03d}-{address(svc, not_ready.get(svc) if flip is None else flip)}-8080"
            wanted = "passing" if flip is None else "critical"
            index = health_index(consul, f"svc-{svc:03d}")
            t0 = time.perf_counter()
            discovery.replace_namespaced_endpoint_slice(
                f"svc-{svc:03d}-1", NAMESPACE, endpoint_slice(svc, not_ready=flip)
            )
            stamp = wait_for_health(consul, f"svc-{svc:03d}", index, ident, wanted)
            not_ready[svc] = flip
            latencies.append((stamp - t0) * 1000)
        after = metrics(log)
        requests = (after["requests_total"] - before["requests_total"]) / changes

        # ---- consul-k8s' way: every instance of the Service registered again ----------------
        naive = []
        consul.requests = 0
        for n in range(naive_changes):
            svc = (n * 7) % services
            t0 = time.perf_counter()
            naive_register(consul, svc, not_ready=n % PER_SERVICE)
            naive.append((time.perf_counter() - t0) * 1000)
        naive_requests = consul.requests / naive_changes

        sync_median = statistics.median(latencies)
        endpoints = services * PER_SERVICE
        print(f"BENCH consul_sync_initial_s {initial:.2f}  # {endpoints} instances, from the sync's start")
        print(
            f"BENCH consul_sync_naive_initial_s {naive_initial:.2f}  # {endpoints} PUT /v1/catalog/register"
        )
        print(
            f"BENCH consul_sync_p99_ms {_p(latencies, 0.99):.1f}  # p99 of {changes} changes at {services} "
            f"Services / {endpoints} endpoints (p50 {sync_median:.1f}, max {max(latencies):.1f})"
        )
        print(figure("consul_sync_median_ms", latencies, 1))
        print(f"BENCH consul_sync_requests_per_change {requests:.2f}  # HTTP requests to Consul (/metrics)")
        print(figure("consul_sync_naive_median_ms", naive, 1))
        print(f"BENCH consul_sync_naive_requests_per_change {naive_requests:.2f}")
        print(speedup("consul_sync_speedup", naive, latencies, "naive", "sync"))
        return 0
    except SystemExit:
        log = work / "sync.log"
        if log.exists():
            print(f"the sync's log (tail):\n{log.read_text()[-3000:]}", file=sys.stderr)
        raise
    finally:
        if sync is not None and sync.poll() is None:
            sync.terminate()
            sync.wait(timeout=30)
        if agent is not None and agent.poll() is None:
            os.kill(agent.pid, signal.SIGTERM)
            try:
                agent.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.kill(agent.pid, signal.SIGKILL)
                agent.wait()
        if cset is not None:
            cset.close()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
