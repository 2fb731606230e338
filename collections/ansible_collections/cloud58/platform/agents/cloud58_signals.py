# -*- coding: utf-8 -*-
# Copyright: cloud58 platform team
# Apache License 2.0
"""cloud58-signals: the node's CPU, load, memory and per-pod network and CPU, sampled every second.

The second-level signals of docs/monitoring.md. The parsing, the ring and both exports live in
module_utils/monitoring/signals.py; this program samples every --interval seconds into a ring
of --keep-seconds and serves, on --listen:

  GET /metrics       the newest sample, Prometheus text (the scrape job `signals`, 1 s)
  GET /signals.json  the newest sample and the 1-minute and 5-minute averages (JSON)

  cloud58_signals.py run [--node NAME] [--listen HOST:PORT] [--interval S] [--keep-seconds S]
                         [--proc DIR] [--net DIR] [--cgroup DIR] [--veth-prefix cali,veth]
  cloud58_signals.py sample [--proc DIR] [--net DIR] [--cgroup DIR] [--veth-prefix ...]

On start it prints one JSON line {"listening": "HOST:PORT"} (port 0 picks a free one). Options
and the first sample are checked before it listens: a bad one is one line naming it and the
value, exit status 2. SIGTERM stops it (status 0).
"""

from __future__ import annotations

import argparse
import http.server
import json
import os
import signal
import socket
import sys
import threading
import time

try:
    from ansible_collections.cloud58.platform.plugins.module_utils.monitoring import signals
except ImportError:  # run from a checkout: the collections directory four levels up
    sys.path.insert(0, os.path.abspath(os.path.join(os.path.dirname(__file__), *[os.pardir] * 4)))
    from ansible_collections.cloud58.platform.plugins.module_utils.monitoring import signals

PROGRAM = "cloud58-signals"
DEFAULT_PORT = 9112


def _listen(value: str) -> tuple:
    host, sep, port = value.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise signals.SignalsError(f"--listen: {value!r} is not HOST:PORT (port 0-65535)")
    return host.strip("[]"), int(port)


def _positive(name: str, value: float) -> float:
    if not value > 0:
        raise signals.SignalsError(f"{name}: {value!r} is not a number > 0")
    return value


class _Handler(http.server.BaseHTTPRequestHandler):
    server_version = PROGRAM

    def do_GET(self):
        with self.server.lock:
            if self.path == "/metrics":
                body, kind = signals.prometheus_text(self.server.ring), "text/plain; version=0.0.4"
            elif self.path == "/signals.json":
                body = json.dumps(signals.document(self.server.ring, self.server.node), sort_keys=True)
                kind = "application/json"
            else:
                body, kind = None, None
        if body is None:
            self.send_error(404, "Not Found", "known paths: /metrics, /signals.json")
            return
        data = body.encode()
        self.send_response(200)
        self.send_header("Content-Type", kind)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args):
        pass  # one request a second: no access log


class _Server(http.server.ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, address, ring, node):
        self.address_family = socket.AF_INET6 if ":" in address[0] else socket.AF_INET
        self.ring, self.node, self.lock = ring, node, threading.Lock()
        super().__init__(address, _Handler)


def _read(args, roots):
    return signals.read_sample(time.monotonic(), *roots, args.prefixes)


def _run(args, roots) -> int:
    address = _listen(args.listen)
    interval = _positive("--interval", args.interval)
    keep = _positive("--keep-seconds", args.keep_seconds)
    ring = signals.Ring(keep)
    ring.add(_read(args, roots))  # a bad root fails here, before the port opens
    try:
        server = _Server(address, ring, args.node)
    except OSError as e:
        raise signals.SignalsError(f"--listen {args.listen}: {e.strerror}") from None
    host, port = server.server_address[:2]
    print(json.dumps({"listening": f"{host}:{port}"}), flush=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    next_at = time.monotonic() + interval
    while not stop.wait(max(0.0, next_at - time.monotonic())):
        next_at += interval
        try:
            sample = _read(args, roots)
        except signals.SignalsError as e:  # keep serving the ring; the next second tries again
            print(f"{PROGRAM}: {e}", file=sys.stderr, flush=True)
            continue
        with server.lock:
            ring.add(sample)
    server.shutdown()
    return 0


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog=PROGRAM, description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    run_p = sub.add_parser("run", help="sample every second and serve /metrics and /signals.json")
    run_p.add_argument("--node", default=socket.gethostname(), help="the node's name, in the JSON")
    run_p.add_argument("--listen", default=f"0.0.0.0:{DEFAULT_PORT}", help="HOST:PORT to serve on")
    run_p.add_argument("--interval", type=float, default=1.0, help="seconds between samples")
    run_p.add_argument("--keep-seconds", type=float, default=330.0, help="the ring's length")
    sample_p = sub.add_parser("sample", help="print one sample as JSON")
    for p in (run_p, sample_p):
        p.add_argument("--proc", default="/proc")
        p.add_argument("--net", default="/sys/class/net")
        p.add_argument("--cgroup", default="/sys/fs/cgroup")
        p.add_argument("--veth-prefix", default=",".join(signals.DEFAULT_PREFIXES))
    args = parser.parse_args(argv)
    roots = (args.proc, args.net, args.cgroup)
    try:
        args.prefixes = signals.check_prefixes(args.veth_prefix)
        if args.command == "sample":
            sample = _read(args, roots)
            print(json.dumps({k: v for k, v in vars(sample).items() if k != "time"}, sort_keys=True))
            return 0
        return _run(args, roots)
    except signals.SignalsError as e:
        print(f"{PROGRAM}: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
