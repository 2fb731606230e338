# -*- coding: utf-8 -*-
# Copyright: cloud58 platform team
# Apache License 2.0
"""cloud58-loadannotator: write each Node's CPU and memory load of the last 1 and 5 minutes into annotations.

One pass over the Nodes (a systemd timer runs it, e.g. every 30 s; docs/monitoring.md). For
each Node it reads the node's cloud58-signals JSON (http://<InternalIP>:<port>/signals.json,
or the URL given by --endpoint), computes the annotations of module_utils/monitoring/load.py
and patches the Node only when one of them is missing or moved by more than --threshold
percentage points; the patch carries only those annotations, never any other.

  cloud58_loadannotator.py run [--kubeconfig PATH] [--context NAME] [--selector LABELS]
                               [--port 9112] [--endpoint NODE=URL ...] [--threshold 1.0]
                               [--timeout S]

Prints one JSON line per Node, {"node": ..., "patched": {annotation: value, ...}} ({} when
nothing changed). A node whose signals cannot be read or are bad is one line on stderr naming
the node, the URL and the reason; the other nodes are still done and the exit status is 1. Bad
options: one line naming the option and the value, exit status 2, before any Node is read.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import urllib.error
import urllib.request

try:
    from ansible_collections.cloud58.platform.plugins.module_utils.monitoring import load
except ImportError:  # run from a checkout: the collections directory four levels up
    sys.path.insert(0, os.path.abspath(os.path.join(os.path.dirname(__file__), *[os.pardir] * 4)))
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


def _run(args) -> int:
    threshold = load.check_threshold(args.threshold)
    endpoints = _endpoints(args.endpoint)
    if not 1 <= args.port <= 65535:
        raise load.LoadError(f"--port: {args.port!r} is not a port 1-65535")
    if not args.timeout > 0:
        raise load.LoadError(f"--timeout: {args.timeout!r} is not a number > 0")
    from kubernetes import client, config  # only `run` needs the client
    from urllib3.exceptions import HTTPError  # the client's transport: the API server unreachable

    try:
        api = client.CoreV1Api(
            config.new_client_from_config(config_file=args.kubeconfig, context=args.context)
        )
        nodes = api.list_node(label_selector=args.selector or None)
    except (config.ConfigException, OSError, HTTPError) as e:
        raise load.LoadError(f"--kubeconfig {args.kubeconfig}: {str(e).splitlines()[0]}") from None
    except client.exceptions.ApiException as e:
        raise load.LoadError(f"listing the Nodes: the API server says {e.status} {e.reason}") from None
    failed = 0
    for node in sorted(
        api.api_client.sanitize_for_serialization(nodes)["items"], key=lambda n: n["metadata"]["name"]
    ):
        name = node["metadata"]["name"]
        try:
            url = _url(node, args.port, endpoints)
            wanted = load.figures(name, _read(url, args.timeout))
            changes = load.patch(node["metadata"].get("annotations"), wanted, threshold)
            if changes:
                api.patch_node(name, {"metadata": {"annotations": changes}})
        except load.LoadError as e:
            message = str(e) if str(e).startswith(f"node {name}:") else f"node {name}: {e}"
            print(f"{PROGRAM}: {message}", file=sys.stderr, flush=True)
            failed += 1
            continue
        except client.exceptions.ApiException as e:
            print(
                f"{PROGRAM}: node {name}: the API server says {e.status} {e.reason}",
                file=sys.stderr,
                flush=True,
            )
            failed += 1
            continue
        print(json.dumps({"node": name, "patched": changes}, sort_keys=True), flush=True)
    return 1 if failed else 0


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog=PROGRAM, description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    run_p = sub.add_parser("run", help="one pass over the Nodes")
    run_p.add_argument("--kubeconfig", default="/etc/cloud58/loadannotator.kubeconfig")
    run_p.add_argument("--context", default=None)
    run_p.add_argument("--selector", default="", help="label selector of the Nodes to annotate")
    run_p.add_argument("--port", type=int, default=SIGNALS_PORT, help="cloud58-signals' port on each node")
    run_p.add_argument(
        "--endpoint", action="append", default=[], help="NODE=URL instead of the node's address"
    )
    run_p.add_argument("--threshold", type=float, default=load.DEFAULT_THRESHOLD, help="percentage points")
    run_p.add_argument("--timeout", type=float, default=5.0, help="seconds per signals request")
    args = parser.parse_args(argv)
    try:
        return _run(args)
    except load.LoadError as e:
        print(f"{PROGRAM}: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
