#!/usr/bin/env python3
# -*- coding: utf-8 -*-
# Copyright: cloud58 platform team
# Apache License 2.0
"""Benchmark the ingress gateway's convergence: a Consul catalog change -> HAProxy routes to it.

One Consul 1.14.11 server (the pinned build) on 127.0.0.1 with ports of its own, and the real
haproxy (Debian's 2.6) on the haproxy.cfg the role renders (filter haproxy_gateway_config,
module_utils/gateway/haproxy.py) with the role's defaults, but: the frontend on 127.0.0.1, the
resolver on Consul's DNS port, no rate limit, and ``resolve_hold_obsolete`` 1s so that a removed
instance frees its slot quickly (that setting concerns removals only, not what is measured).
Two instances serve all along; two clients keep sending requests through the frontend, each on
a new connection (lab/cloud58_lab/gatewaylab.py).

Each change registers a new instance (an HTTP server on a loopback address of its own) through
the agent's API; its latency runs from just before that PUT to the first request the new
instance serves through HAProxy. The instance is then deregistered and its slot emptied before
the next change, which waits a random 0-1 s so that changes land anywhere in HAProxy's resolve
cycle. Changes: 40 at size ``full``, 10 at ``ci`` (``CLOUD58_BENCH_SIZE``). Prints:

    BENCH haproxy_converge_ms <ms>        median of the changes, every run and the spread
    BENCH haproxy_converge_p50_ms <ms>
    BENCH haproxy_converge_p99_ms <ms>

The role has one path from Consul to HAProxy, DNS SRV (``server-template`` through
``resolvers``, re-resolved every ``timeout resolve`` 1s); there is no runtime-API path to
compare it with. Benchmarks measure and print; they never fail on time.
"""

from __future__ import annotations

import contextlib
import random
import shutil
import sys
import tempfile
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO / "collections"), str(REPO / "lab"), str(REPO / "benchmarks")]

from benchstats import bench_size, figure, percentile  # noqa: E402

from ansible_collections.cloud58.platform.plugins.module_utils.gateway import haproxy_config  # noqa: E402
from cloud58_lab import gatewaylab, programs  # noqa: E402

CHANGES = {"full": 40, "ci": 10}
SERVICE = "web"


def main() -> int:
    size = bench_size()
    changes = CHANGES[size]
    print(f"size {size}: {changes} registrations of a new instance, 2 instances serving")
    programs.require("consul", "haproxy")
    work = Path(tempfile.mkdtemp(prefix="cloud58-bench-haproxy-converge-"))
    consul = gateway = None
    backends: list[gatewaylab.Backend] = []
    stop = threading.Event()
    clients: list[threading.Thread] = []
    try:
        consul = gatewaylab.Consul(work / "consul", "hgwb-consul")
        port = gatewaylab.free_ports(1)[0]
        (work / "server-state").write_text("1\n")
        settings = {
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
        service = {"name": SERVICE, "port": port, "check_path": "/healthz"}
        config.write_text(haproxy_config([service], settings))
        gateway = gatewaylab.Gateway(config, work / "admin.sock")
        for n in range(2):
            backends.append(gatewaylab.Backend(f"base{n}", f"127.0.1.{n + 1}"))
            consul.register(SERVICE, backends[-1].name, backends[-1].address, backends[-1].port)
        base = {b.port for b in backends}
        gatewaylab.wait_for(lambda: set(gateway.servers(SERVICE)) == base, "the two serving instances")

        def client():
            while not stop.is_set():
                # a failed request (none seen so far) changes nothing measured
                with contextlib.suppress(OSError):
                    gatewaylab.get(port)

        clients = [threading.Thread(target=client, daemon=True) for _ in range(2)]
        for thread in clients:
            thread.start()
        latencies = []
        for n in range(changes):
            time.sleep(random.uniform(0, 1))
            new = gatewaylab.Backend(f"new{n}", f"127.0.2.{n + 1}")
            backends.append(new)
            start = time.monotonic()
            consul.register(SERVICE, new.name, new.address, new.port)
            gatewaylab.wait_for(lambda new=new: new.first_hit, f"a request at {new.name}", interval=0.005)
            latencies.append((new.first_hit - start) * 1000)
            consul.deregister(new.name)
            gatewaylab.wait_for(
                lambda: set(gateway.servers(SERVICE)) == base, f"{new.name} to leave the runtime API"
            )
        print(figure("haproxy_converge_ms", latencies, 0))
        print(f"BENCH haproxy_converge_p50_ms {percentile(latencies, 0.50):.0f}  # of {changes} changes")
        print(f"BENCH haproxy_converge_p99_ms {percentile(latencies, 0.99):.0f}  # of {changes} changes")
        return 0
    except Exception:
        if consul is not None:
            print(f"consul's log (tail):\n{consul.log()[-3000:]}", file=sys.stderr)
        if gateway is not None:
            print(f"haproxy's log (tail):\n{gateway.log()[-3000:]}", file=sys.stderr)
        raise
    finally:
        stop.set()
        for thread in clients:
            thread.join()
        if gateway is not None:
            gateway.stop()
        for backend in backends:
            backend.stop()
        if consul is not None:
            consul.stop()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
