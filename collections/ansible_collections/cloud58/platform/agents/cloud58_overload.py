# -*- coding: utf-8 -*-
# Copyright: cloud58 platform team
# Apache License 2.0
"""cloud58-overload: taint a node cloud58.io/overloaded:NoSchedule while its load stays too high.

The node agent of host overload protection (docs/node-protection.md). The decision lives in
module_utils/node/overload.py; this program reads the load file every --interval seconds,
keeps the clock, and on a change patches the Node (taint and condition CloudFiftyEightOverloaded).

  cloud58_overload.py run --node NAME [--kubeconfig PATH] [--context NAME]
                          [--source FILE | --signals-url URL]
                          [--high X] [--low Y] [--over-seconds S] [--clear-seconds S] [--interval S]
                          [--metrics-address A] [--metrics-port P]
  cloud58_overload.py sample [--source FILE | --signals-url URL]

--source is /proc/pressure/cpu when the kernel has PSI, else /proc/loadavg; any file in either
format works (the tests write one). --signals-url reads the node's signals agent instead
(cloud58-signals' /signals.json, e.g. http://127.0.0.1:9112/signals.json: the 1-minute CPU busy
percent). --high/--low default by source: 50/25 (% pressure, some avg10), 1.5/1.0 (1-minute
load per CPU) or 90/70 (% CPU busy). On start the agent takes its state from the Node's
condition, so a restart neither clears nor re-taints. Options and the source are checked before
anything is changed: a bad one is one line naming it and the value, exit status 2. An API server
that cannot be reached at start is one line on stderr and a retry (the service keeps running).
A sample that cannot be read once running (the signals agent restarting) is one line on
stderr, the last state kept, and the next sample tried. With --metrics-port the agent serves
/metrics (Prometheus text: its state once the Node's is known, the last sample, the thresholds,
transitions and errors) on --metrics-address and logs that URL on stderr; port 0 takes a free
port. A port that cannot be bound fails at start like a bad option.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import signal
import sys
import time
import urllib.error
import urllib.request

try:
    from ansible_collections.cloud58.platform.plugins.module_utils.kube import apiclient
    from ansible_collections.cloud58.platform.plugins.module_utils.node import exposition, overload
except ImportError:  # run from a checkout: the collections directory four levels up
    sys.path.insert(0, os.path.abspath(os.path.join(os.path.dirname(__file__), *[os.pardir] * 4)))
    from ansible_collections.cloud58.platform.plugins.module_utils.kube import apiclient
    from ansible_collections.cloud58.platform.plugins.module_utils.node import exposition, overload

PROGRAM = "cloud58-overload"
PSI_FILE = "/proc/pressure/cpu"
LOADAVG_FILE = "/proc/loadavg"


def default_source() -> str:
    return PSI_FILE if os.path.exists(PSI_FILE) else LOADAVG_FILE


def read_sample(path: str) -> tuple[str, float]:
    try:
        with open(path, encoding="ascii", errors="replace") as f:
            text = f.read()
    except OSError as e:
        raise overload.OverloadError(f"{path}: cannot read: {e.strerror}") from None
    return overload.source_kind(text), overload.parse_sample(path, text, os.cpu_count() or 1)


def read_signals(url: str) -> tuple[str, float]:
    """The signals agent's 1-minute CPU busy percent (never through a proxy: it is on the node)."""
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    try:
        with opener.open(url, timeout=5) as response:
            text = response.read().decode("utf-8", errors="replace")
    except (urllib.error.URLError, OSError, ValueError) as e:
        raise overload.OverloadError(f"{url}: cannot read: {getattr(e, 'reason', e)}") from None
    return overload.SIGNALS, overload.parse_signals(url, text)


def reader(args):
    """What the agent samples (a file or the signals agent's URL) and the function reading it."""
    if args.signals_url:
        return args.signals_url, lambda: read_signals(args.signals_url)
    source = args.source or default_source()
    return source, lambda: read_sample(source)


def _now_iso() -> str:
    return datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class NodeApi:
    """The Node through the API server: read it, set our taint and condition."""

    def __init__(self, kubeconfig, context, node):
        self.node = node
        self.path = f"/api/v1/nodes/{node}"
        try:
            self.api = apiclient.Client.from_kubeconfig(kubeconfig, context)
        except (OSError, ValueError) as e:  # ValueError: apiclient.KubeconfigError too
            raise overload.OverloadError(f"--kubeconfig {kubeconfig}: {e}") from None

    def read(self) -> dict:
        try:
            return self.api.get(self.path)
        except apiclient.ApiError as e:
            raise overload.OverloadError(
                f"--node {self.node}: the API server says {e.status} {e.reason}"
            ) from None

    def publish(self, overloaded, value, kind, policy) -> None:
        """Set the taint (optimistic: the patch carries the resourceVersion read) and the condition
        (a strategic merge: the kubelet's conditions stay, ours is merged by its type)."""
        for _attempt in range(5):
            node = self.read()
            wanted = overload.taints(node.get("spec", {}).get("taints"), overloaded)
            if wanted is None:
                break
            body = {
                "metadata": {"resourceVersion": node["metadata"]["resourceVersion"]},
                "spec": {"taints": wanted},
            }
            try:
                self.api.patch(self.path, body)
                break
            except apiclient.ApiError as e:
                if e.status != 409:  # someone else changed the Node in between: read again
                    raise
        status = {"status": {"conditions": [overload.condition(overloaded, value, kind, policy, _now_iso())]}}
        self.api.patch(self.path + "/status", status)


def _run(args) -> int:
    source, read = reader(args)
    kind, value = read()
    high, low = overload.DEFAULT_THRESHOLDS[kind]
    policy = overload.check_policy(
        high if args.high is None else args.high,
        low if args.low is None else args.low,
        args.over_seconds,
        args.clear_seconds,
    )
    if not args.interval > 0:
        raise overload.OverloadError(f"--interval: {args.interval!r} is not a number > 0")
    api = NodeApi(args.kubeconfig, args.context, args.node)

    counts = overload.Counts(samples=1, last={"kind": kind, "value": value})
    state = None
    if args.metrics_port is not None:  # bound before the Node is touched: a busy port changes nothing

        def render() -> str:  # reads ``state`` as the loops below rebind it
            return overload.metrics_text(
                args.node, policy, None if state is None else state.overloaded, counts
            )

        try:
            host, bound = exposition.serve(args.metrics_address, args.metrics_port, render)
        except exposition.ListenError as e:
            raise overload.OverloadError(f"--metrics-address/--metrics-port: {e}") from None
        print(f"{PROGRAM}: metrics on http://{host}:{bound}/metrics", file=sys.stderr, flush=True)
    backoff = 1.0
    while True:  # an API server that cannot be reached yet: one line, and again later
        try:
            state = overload.State(overload.is_overloaded(api.read()))
            api.publish(state.overloaded, value, kind, policy)
            break
        except OSError as e:  # the API server unreachable (apiclient: ConnectionError for a protocol error)
            message = str(e).splitlines()[0] if str(e) else type(e).__name__
            print(
                f"{PROGRAM}: node {args.node}: --kubeconfig {args.kubeconfig}: the API server cannot be "
                f"reached: {message}; retrying in {backoff:.0f}s",
                file=sys.stderr,
                flush=True,
            )
            time.sleep(backoff)
            backoff = min(backoff * 2, 30.0)
    stop = []
    signal.signal(signal.SIGTERM, lambda *args: stop.append(True))
    unreadable = None
    while not stop:
        try:
            kind, value = read()
        except overload.OverloadError as e:
            # A sample that cannot be read once running (the signals agent restarting, a file being
            # rewritten) keeps the state and is tried again; it is reported once until it changes.
            counts.sample_errors += 1
            if str(e) != unreadable:
                line = f"{PROGRAM}: node {args.node}: {e}; keeping the last state"
                print(line, file=sys.stderr, flush=True)
            unreadable = str(e)
            time.sleep(args.interval)
            continue
        unreadable = None
        counts.samples += 1
        counts.last = {"kind": kind, "value": value}
        new = overload.decide(policy, state, time.monotonic(), value)
        if new.overloaded != state.overloaded:
            try:
                api.publish(new.overloaded, value, kind, policy)
            except (overload.OverloadError, apiclient.ApiError, OSError) as e:
                # keep the old state: the next sample tries again
                counts.publish_errors += 1
                print(f"{PROGRAM}: node {args.node}: {str(e).splitlines()[0]}", file=sys.stderr, flush=True)
                time.sleep(args.interval)
                continue
            if new.overloaded:
                counts.tainted += 1
            else:
                counts.cleared += 1
            print(
                json.dumps(
                    {"node": args.node, "overloaded": new.overloaded, "value": value, "source": source}
                ),
                flush=True,
            )
        state = new
        time.sleep(args.interval)
    return 0


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog=PROGRAM, description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    run_p = sub.add_parser("run", help="watch the load and keep the Node's taint and condition")
    run_p.add_argument("--node", required=True, help="the Node this host is")
    run_p.add_argument("--kubeconfig", default="/etc/cloud58/overload.kubeconfig")
    run_p.add_argument("--context", default=None)
    run_p.add_argument("--source", default=None, help=f"{PSI_FILE} if present, else {LOADAVG_FILE}")
    run_p.add_argument(
        "--signals-url", default=None, help="the signals agent's /signals.json instead of a file"
    )
    run_p.add_argument("--high", type=float, default=None, help="overloaded above this")
    run_p.add_argument("--low", type=float, default=None, help="clear below this")
    run_p.add_argument("--over-seconds", type=float, default=60.0, help="above --high this long: overloaded")
    run_p.add_argument("--clear-seconds", type=float, default=300.0, help="below --low this long: clear")
    run_p.add_argument("--interval", type=float, default=5.0, help="seconds between samples")
    run_p.add_argument("--metrics-address", default="127.0.0.1", help="where /metrics is served")
    run_p.add_argument(
        "--metrics-port", type=int, default=None, help="port of /metrics; 0: any free port (logged)"
    )
    sample_p = sub.add_parser("sample", help="print one reading of the source")
    sample_p.add_argument("--source", default=None)
    sample_p.add_argument("--signals-url", default=None)
    args = parser.parse_args(argv)
    if args.source and args.signals_url:
        parser.error(f"--source {args.source} and --signals-url {args.signals_url}: give one of them")
    try:
        if args.command == "sample":
            source, read = reader(args)
            kind, value = read()
            print(json.dumps({"source": source, "kind": kind, "value": value}, sort_keys=True))
            return 0
        return _run(args)
    except overload.OverloadError as e:
        print(f"{PROGRAM}: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
