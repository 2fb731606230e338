# -*- coding: utf-8 -*-
# Copyright: cloud58 platform team
# Apache License 2.0
"""cloud58-loadannotator: write each Node's CPU and memory load of the last 1 and 5 minutes into annotations.

A pass over the Nodes (all, those of --selector, or the one of --node). For each Node it reads
the node's cloud58-signals JSON (http://<InternalIP>:<port>/signals.json, or the URL given by
--endpoint), computes the annotations of module_utils/monitoring/load.py and patches the Node
only when one of them is missing or moved by more than --threshold percentage points; the patch
carries only those annotations, never any other. With --every SECONDS it makes a pass every
SECONDS until stopped (the role node_agents runs it so on each minion, for its own Node, reading
its own agent on loopback; docs/monitoring.md); without, one pass.

  cloud58_loadannotator.py run [--kubeconfig PATH] [--context NAME] [--selector LABELS | --node NAME]
                               [--port 9112] [--endpoint NODE=URL ...] [--threshold 1.0]
                               [--timeout S] [--every S]

Prints one JSON line per Node and pass, {"node": ..., "patched": {annotation: value, ...}} ({}
when nothing changed). A node whose signals cannot be read or are bad is one line on stderr
naming the node, the URL and the reason; the other nodes are still done and the exit status of
a single pass is 1 (a repeating run goes on). Bad options: one line naming the option and the
value, exit status 2, before any Node is read. It talks to the API server through the
collection's small client (module_utils/kube/apiclient.py: the standard library and PyYAML).
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import time
import urllib.error
import urllib.parse
import urllib.request

try:
    from ansible_collections.cloud58.platform.plugins.module_utils.kube import apiclient
    from ansible_collections.cloud58.platform.plugins.module_utils.monitoring import load
except ImportError:  # run from a checkout: the collections directory four levels up
    sys.path.insert(0, os.path.abspath(os.path.join(os.path.dirname(__file__), *[os.pardir] * 4)))
    from ansible_collections.cloud58.platform.plugins.module_utils.kube import apiclient
    from ansible_collections.cloud58.platform.plugins.module_utils.monitoring import load

PROGRAM = "cloud58-loadannotator"
SIGNALS_PORT = 9112  # cloud58-signals' default --listen port
# The signals agents are reached directly (node addresses), never through an HTTP proxy.
_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def _endpoints(values) -> dict:
    found = {}
    for value in values:
        node, sep, url = value.partition("=")
        if not sep or not node or not url.startswith(("http://", "https://")):
            raise load.LoadError(f"--endpoint: {value!r} is not NODE=http://HOST:PORT/signals.json")
        found[node] = url
    return found


def _url(node: dict, port: int, endpoints: dict):
    name = node["metadata"]["name"]
    if name in endpoints:
        return endpoints[name]
    for address in (node.get("status") or {}).get("addresses") or []:
        if address.get("type") == "InternalIP":
            host = address["address"]
            return (
                f"http://[{host}]:{port}/signals.json"
                if ":" in host
                else f"http://{host}:{port}/signals.json"
            )
    raise load.LoadError(f"node {name}: no InternalIP address and no --endpoint")


def _read(url: str, timeout: float):
    try:
        with _OPENER.open(url, timeout=timeout) as response:
            return json.loads(response.read().decode())
    except urllib.error.HTTPError as e:
        raise load.LoadError(f"{url}: HTTP {e.code} {e.reason}") from None
    except urllib.error.URLError as e:
        reason = e.reason.strerror if isinstance(e.reason, OSError) and e.reason.strerror else e.reason
        raise load.LoadError(f"{url}: {reason}") from None
    except (OSError, ValueError) as e:
        raise load.LoadError(f"{url}: {e}") from None


def _check(args) -> tuple:
    """The options, checked before any Node is read: (threshold, endpoints)."""
    threshold = load.check_threshold(args.threshold)
    endpoints = _endpoints(args.endpoint)
    if not 1 <= args.port <= 65535:
        raise load.LoadError(f"--port: {args.port!r} is not a port 1-65535")
    if not args.timeout > 0:
        raise load.LoadError(f"--timeout: {args.timeout!r} is not a number > 0")
    if not args.every >= 0:
        raise load.LoadError(f"--every: {args.every!r} is not a number of seconds >= 0 (0: one pass)")
    if args.node and args.selector:
        raise load.LoadError(f"--node {args.node} and --selector {args.selector}: give one of them")
    return threshold, endpoints


def _nodes(api, args) -> list:
    """The Nodes of this pass, by name."""
    try:
        if args.node:
            return [api.get(f"/api/v1/nodes/{urllib.parse.quote(args.node, safe='')}")]
        found = api.get("/api/v1/nodes", {"labelSelector": args.selector} if args.selector else None)
    except apiclient.ApiError as e:
        raise load.LoadError(f"reading the Nodes: the API server says {e.status} {e.reason}") from None
    except OSError as e:
        raise load.LoadError(f"reading the Nodes: {e}") from None
    return sorted(found.get("items") or [], key=lambda n: n["metadata"]["name"])


def _pass(api, args, threshold, endpoints) -> int:
    """One pass over the Nodes; the number of Nodes that failed."""
    failed = 0
    for node in _nodes(api, args):
        name = node["metadata"]["name"]
        try:
            url = _url(node, args.port, endpoints)
            wanted = load.figures(name, _read(url, args.timeout))
            changes = load.patch(node["metadata"].get("annotations"), wanted, threshold)
            if changes:
                api.patch(
                    f"/api/v1/nodes/{urllib.parse.quote(name, safe='')}",
                    {"metadata": {"annotations": changes}},
                    apiclient.MERGE,
                )
        except load.LoadError as e:
            message = str(e) if str(e).startswith(f"node {name}:") else f"node {name}: {e}"
            print(f"{PROGRAM}: {message}", file=sys.stderr, flush=True)
            failed += 1
            continue
        except apiclient.ApiError as e:
            print(
                f"{PROGRAM}: node {name}: the API server says {e.status} {e.reason}",
                file=sys.stderr,
                flush=True,
            )
            failed += 1
            continue
        except OSError as e:
            print(f"{PROGRAM}: node {name}: patching it: {e}", file=sys.stderr, flush=True)
            failed += 1
            continue
        print(json.dumps({"node": name, "patched": changes}, sort_keys=True), flush=True)
    return failed


def _run(args) -> int:
    threshold, endpoints = _check(args)
    try:
        api = apiclient.Client.from_kubeconfig(args.kubeconfig, args.context)
    except (OSError, ValueError) as e:  # ValueError: apiclient.KubeconfigError too
        raise load.LoadError(f"--kubeconfig {args.kubeconfig}: {e}") from None
    if not args.every:
        return 1 if _pass(api, args, threshold, endpoints) else 0
    # Stopped by systemd (SIGTERM): a clean exit, wherever the pass is.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    while True:
        started = time.monotonic()
        try:
            _pass(api, args, threshold, endpoints)
        except load.LoadError as e:  # the API server unreachable or refusing: the next pass again
            print(f"{PROGRAM}: {e}", file=sys.stderr, flush=True)
        time.sleep(max(0.0, args.every - (time.monotonic() - started)))


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog=PROGRAM, description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    run_p = sub.add_parser("run", help="a pass over the Nodes, or one every --every seconds")
    run_p.add_argument("--kubeconfig", default="/etc/cloud58/loadannotator.kubeconfig")
    run_p.add_argument("--context", default=None)
    run_p.add_argument("--selector", default="", help="label selector of the Nodes to annotate")
    run_p.add_argument("--node", default="", help="annotate this Node only")
    run_p.add_argument("--port", type=int, default=SIGNALS_PORT, help="cloud58-signals' port on each node")
    run_p.add_argument(
        "--endpoint", action="append", default=[], help="NODE=URL instead of the node's address"
    )
    run_p.add_argument("--threshold", type=float, default=load.DEFAULT_THRESHOLD, help="percentage points")
    run_p.add_argument("--timeout", type=float, default=5.0, help="seconds per signals request")
    run_p.add_argument("--every", type=float, default=0.0, help="seconds between passes; 0: one pass")
    args = parser.parse_args(argv)
    try:
        return _run(args)
    except load.LoadError as e:
        print(f"{PROGRAM}: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
