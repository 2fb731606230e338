#!/usr/bin/env python3
# -*- coding: utf-8 -*-
# Copyright: cloud58 platform team
# Apache License 2.0
"""Benchmark the ingress gateway's convergence: a Consul catalog change -> HAProxy routes to it,
by its two paths from Consul, DNS SRV and the runtime API, in the same run.

One Consul 1.14.11 server (the pinned build) on 127.0.0.1 with ports of its own, and two real
haproxy processes (Debian's 2.6) on haproxy.cfg files the role's renderer writes (filter
haproxy_gateway_config, module_utils/gateway/haproxy.py) with the role's defaults, but: the
frontend on 127.0.0.1, no rate limit, and:

* ``dns``: the role's path: ``server-template`` through ``resolvers`` on Consul's DNS port,
  re-resolved every ``timeout resolve`` 1s; ``resolve_hold_obsolete`` 1s so that a removed
  instance frees its slot quickly (that setting concerns removals only, not what is measured);
* ``runtime``: ``backend_source: runtime`` (slots no resolver fills) and the program
  ``roles/haproxy_gateway/files/cloud58-gateway-sync`` watching Consul with blocking queries
  and setting the slots over the stats socket (module_utils/gateway/runtime.py).

Each gateway's backend follows a Consul service of its own (``web-dns``, ``web-rt``) so that a
new instance's first request is the gateway's under test. Two instances of each serve all along;
two clients per gateway (four in all, running through both paths' changes) keep sending
requests through its frontend, each on a new connection (lab/cloud58_lab/gatewaylab.py).

Each change registers a new instance (an HTTP server on a loopback address of its own) through
the agent's API; its latency runs from just before that PUT to the first request the new
instance serves through HAProxy. The instance is then deregistered and its slot emptied before
the next change, which waits a random 0-1 s so that changes land anywhere in HAProxy's resolve
cycle. A run is ``changes`` changes of one path then as many of the other (the order alternates
from run to run); 3 runs. Changes per path and run: 40 at size ``full``, 10 at ``ci``
(``CLOUD58_BENCH_SIZE``). Prints, for ``dns`` under the old names and for ``runtime``:

    BENCH haproxy_converge_ms <ms>             median of the runs' medians, every run and the spread
    BENCH haproxy_converge_p50_ms <ms>         over every change of every run
    BENCH haproxy_converge_p99_ms <ms>
    BENCH haproxy_converge_runtime_ms <ms>     the same for the runtime API
    BENCH haproxy_converge_runtime_p50_ms <ms>
    BENCH haproxy_converge_runtime_p99_ms <ms>
    BENCH haproxy_converge_ratio <x>           each run's dns median / runtime median: median, spread

Benchmarks measure and print; they never fail on time.
"""

from __future__ import annotations

import contextlib
import json
import random
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO / "collections"), str(REPO / "lab"), str(REPO / "benchmarks")]

from benchstats import bench_size, figure, percentile  # noqa: E402

from ansible_collections.cloud58.platform.plugins.module_utils.gateway import haproxy_config  # noqa: E402
from ansible_collections.cloud58.platform.plugins.module_utils.gateway.runtime import (  # noqa: E402
    parse_servers_state,
)
from cloud58_lab import gatewaylab, programs  # noqa: E402

CHANGES = {"full": 40, "ci": 10}
RUNS = 3
BACKEND = "web"
SYNC = gatewaylab.GATEWAY_SYNC


class GatewayPath:
    """One gateway (haproxy) and the way its backend is filled from Consul."""

    def __init__(self, name: str, work: Path, consul: gatewaylab.Consul, backend_source: str) -> None:
        self.name, self.work, self.consul = name, work, consul
        self.service = {"dns": "web-dns", "runtime": "web-rt"}[name]
        work.mkdir()
        self.port = gatewaylab.free_ports(1)[0]
        (work / "server-state").write_text("1\n")
        settings = {
            "backend_source": backend_source,
            "bind_address": "127.0.0.1",
            "resolver_port": consul.dns_port,
            "resolve_hold_obsolete": "1s",
            "rate_limit": 10_000_000,
            "maxconn": 1000,
            "stats_socket": str(work / "admin.sock"),
            "server_state_file": str(work / "server-state"),
            # no exporter frontend: it would bind 0.0.0.0:8405 on this machine, and nothing reads it here
            "metrics_port": 0,
        }
        config = work / "haproxy.cfg"
        service = {
            "name": BACKEND,
            "consul_service": self.service,
            "port": self.port,
            "check_path": "/healthz",
        }
        config.write_text(haproxy_config([service], settings))
        self.gateway = gatewaylab.Gateway(config, work / "admin.sock")
        self.sync = None
        if backend_source == "runtime":
            sync_config = work / "sync.json"
            sync_config.write_text(
                json.dumps(
                    {
                        "consul_address": consul.address,
                        "stats_socket": str(work / "admin.sock"),
                        "services": [{"backend": BACKEND, "consul_service": self.service}],
                    }
                )
            )
            with (work / "sync.log").open("w") as log:
                self.sync = subprocess.Popen(
                    [sys.executable, str(SYNC), "--config", str(sync_config)],
                    stdin=subprocess.DEVNULL,
                    stdout=subprocess.DEVNULL,
                    stderr=log,
                    env=gatewaylab.gateway_sync_env(),
                )

    def listed(self) -> set[tuple[str, int]]:
        """The (address, port) of the backend's servers in service."""
        if self.sync is not None and self.sync.poll() is not None:
            raise RuntimeError(f"cloud58-gateway-sync exited:\n{(self.work / 'sync.log').read_text()}")
        if self.sync is None:
            rows = [
                line.split()
                for line in self.gateway.admin(f"show servers state {BACKEND}").splitlines()[2:]
                if line
            ]
            # srv_addr (4), srv_admin_state (6) without RMAINT (0x20: no address from DNS), srv_port (18)
            return {(row[4], int(row[18])) for row in rows if row[4] != "-" and int(row[6]) & 0x20 == 0}
        slots = parse_servers_state(self.gateway.admin(f"show servers state {BACKEND}"), BACKEND)
        return {(s.address, s.port) for s in slots if s.in_service}

    def logs(self) -> str:
        text = f"haproxy {self.name} (tail):\n{self.gateway.log()[-3000:]}"
        if self.sync is not None:
            text += f"\nsync (tail):\n{(self.work / 'sync.log').read_text()[-3000:]}"
        return text

    def stop(self) -> None:
        if self.sync is not None and self.sync.poll() is None:
            self.sync.terminate()
            self.sync.wait(timeout=30)
        self.gateway.stop()


def change(path: GatewayPath, n: int, base: set, backends: list) -> float:
    """One registration through ``path``; ms from the PUT to the new instance's first request."""
    time.sleep(random.uniform(0, 1))
    new = gatewaylab.Backend(f"new{n}", f"127.2.{n // 250}.{n % 250 + 1}")
    backends.append(new)
    start = time.monotonic()
    path.consul.register(path.service, new.name, new.address, new.port)
    gatewaylab.wait_for(lambda: new.first_hit, f"a request at {new.name} through {path.name}", interval=0.005)
    latency = (new.first_hit - start) * 1000
    path.consul.deregister(new.name)
    gatewaylab.wait_for(lambda: path.listed() == base, f"{new.name} to leave {path.name}'s servers")
    new.stop()
    backends.remove(new)
    return latency


def main() -> int:
    size = bench_size()
    changes = CHANGES[size]
    print(
        f"size {size}: {RUNS} runs of {changes} registrations of a new instance per path (dns, runtime), "
        "2 instances serving on each"
    )
    programs.require("consul", "haproxy")
    work = Path(tempfile.mkdtemp(prefix="cloud58-bench-haproxy-converge-"))
    consul = None
    paths: dict[str, GatewayPath] = {}
    backends: list[gatewaylab.Backend] = []
    stop = threading.Event()
    clients: list[threading.Thread] = []
    try:
        consul = gatewaylab.Consul(work / "consul", "hgwb-consul")
        paths["dns"] = GatewayPath("dns", work / "dns", consul, "dns")
        paths["runtime"] = GatewayPath("runtime", work / "runtime", consul, "runtime")
        bases = {}
        for p, (name, path) in enumerate(paths.items()):
            for n in range(2):
                backends.append(gatewaylab.Backend(f"{name}-base{n}", f"127.0.{p + 1}.{n + 1}"))
                consul.register(path.service, backends[-1].name, backends[-1].address, backends[-1].port)
            bases[name] = {(b.address, b.port) for b in backends[-2:]}
            gatewaylab.wait_for(
                lambda path=path, name=name: path.listed() == bases[name], f"{name}'s two instances"
            )

        def client(port):
            while not stop.is_set():
                # a failed request (none seen so far) changes nothing measured
                with contextlib.suppress(OSError):
                    gatewaylab.get(port)

        clients = [
            threading.Thread(target=client, args=(p.port,), daemon=True)
            for p in paths.values()
            for _ in range(2)
        ]
        for thread in clients:
            thread.start()
        latencies = {name: [] for name in paths}
        medians = {name: [] for name in paths}
        n = 0
        for run in range(RUNS):
            order = list(paths) if run % 2 == 0 else list(reversed(paths))
            for name in order:
                run_latencies = []
                for _ in range(changes):
                    run_latencies.append(change(paths[name], n, bases[name], backends))
                    n += 1
                latencies[name] += run_latencies
                medians[name].append(percentile(run_latencies, 0.5))
                print(
                    f"run {run + 1} {name}: median {medians[name][-1]:.0f} ms, max {max(run_latencies):.0f}"
                )
        for name, prefix in (("dns", "haproxy_converge"), ("runtime", "haproxy_converge_runtime")):
            values, count = latencies[name], len(latencies[name])
            print(figure(f"{prefix}_ms", medians[name], 0))
            print(f"BENCH {prefix}_p50_ms {percentile(values, 0.50):.0f}  # of {count} changes")
            print(f"BENCH {prefix}_p99_ms {percentile(values, 0.99):.0f}  # of {count} changes")
        ratios = [d / r for d, r in zip(medians["dns"], medians["runtime"], strict=True)]
        print(figure("haproxy_converge_ratio", ratios, 1) + "  (dns / runtime, per run)")
        return 0
    except Exception:
        if consul is not None:
            print(f"consul's log (tail):\n{consul.log()[-3000:]}", file=sys.stderr)
        for path in paths.values():
            print(path.logs(), file=sys.stderr)
        raise
    finally:
        stop.set()
        for thread in clients:
            thread.join()
        for path in paths.values():
            path.stop()
        for backend in backends:
            backend.stop()
        if consul is not None:
            consul.stop()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
