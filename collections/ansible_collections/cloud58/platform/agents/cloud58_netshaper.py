# -*- coding: utf-8 -*-
# Copyright: cloud58 platform team
# Apache License 2.0
"""cloud58-netshaper: apply a pod's bandwidth limits to its veth pair on a running pod.

The node agent of per-pod bandwidth and PID limits (docs/node-protection.md). The logic lives
in module_utils/node/shaper.py (tc) and podwatch.py (pods, cgroups, metrics); this program
parses its arguments, runs tc, writes pids.max and talks to the API server.

  cloud58_netshaper.py watch --node NAME [--kubeconfig PATH] [--context NAME] [--netns NS]
                             [--veth-lookup calico|address|auto] [--netns-dir DIR]
                             [--cgroup-root DIR] [--cgroup-driver cgroupfs|systemd]
                             [--metrics-address A] [--metrics-port P] [--resync-seconds S]
  cloud58_netshaper.py apply --pod NS/NAME --veth VETH [--ingress RATE] [--egress RATE]
  cloud58_netshaper.py apply --pod NS/NAME --veth VETH --annotations JSON
  cloud58_netshaper.py show --veth VETH

``watch`` lists the pods of its node (field selector spec.nodeName) and watches them from the
list's resourceVersion (a 410 Gone lists again): every added or changed pod is applied at once
- its bandwidth annotations to its host-side veth and its ``cloud58.io/pids-limit`` to its
cgroup's pids.max; every --resync-seconds all pods are applied again (veths that appeared
since). A pod being deleted is left to the kubelet's teardown. After a list, a deleted pod and
each resync, the ifbs of ours whose veth is gone are deleted. --veth-lookup says how the veth
is found: ``calico``, Calico's name (``cali`` + sha1 of
namespace.name); ``address``, the peer of the interface that holds the pod's status.podIP in
one of the host's network namespaces (those under --netns-dir and those of its processes: a
pod's sandbox), for any CNI plugin's veth; ``auto`` (the default), Calico's name if that link
exists, else the address. It serves the applied rates, the drops and the PID limits on
/metrics (Prometheus text). An API server that cannot be reached, or a kubeconfig that cannot
be read, is one line on stderr and a retry; the agent keeps running. A pod with a bad annotation
is one line naming the pod, the annotation and the value, and is skipped.

--annotations takes the pod's annotations as a JSON object, as the API server returns them.

A direction without a rate is unlimited (its shaping is removed). ``apply`` and ``show`` print
one JSON object; exit status 0, or 2 with one line naming the pod, the field and the bad value.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import subprocess
import sys
import threading
import time

try:
    from ansible_collections.cloud58.platform.plugins.module_utils.kube import apiclient
    from ansible_collections.cloud58.platform.plugins.module_utils.node import exposition, podwatch, shaper
except ImportError:  # run from a checkout: the collections directory four levels up
    sys.path.insert(0, os.path.abspath(os.path.join(os.path.dirname(__file__), *[os.pardir] * 4)))
    from ansible_collections.cloud58.platform.plugins.module_utils.kube import apiclient
    from ansible_collections.cloud58.platform.plugins.module_utils.node import exposition, podwatch, shaper

PROGRAM = "cloud58-netshaper"


def run(argv: list[str]) -> tuple[int, str, str]:
    done = subprocess.run(argv, capture_output=True, text=True, check=False)
    return done.returncode, done.stdout, done.stderr


def runner_in(netns: str | None):
    """``run`` inside the named network namespace (``ip netns exec``); the agent's own without one."""
    if not netns:
        return run
    return lambda argv: run(["ip", "netns", "exec", netns, *argv])


def show(veth: str, run_) -> dict:
    """The limits and drops applied on a veth (and its ifb)."""
    state = shaper.current_state(veth, run_)
    ifb = state.redirect_to if state.ifb_exists else None
    outputs = [run_(c)[1] for c in shaper.show_commands(veth, ifb)]
    return {
        "applied": shaper.applied(state),
        "drops": shaper.drops(outputs[0], outputs[2] if ifb else None),
    }


def _log(message: str) -> None:
    print(f"{PROGRAM}: {message}", file=sys.stderr, flush=True)


class Agent:
    """The pods of one node: apply each pod's limits, remember them for /metrics."""

    def __init__(self, args, run_):
        self.args = args
        self.run = run_
        self.objects = {}  # pod key -> the pod as the API server last sent it
        self.entries = {}  # pod key -> {"veth", "pids_max"} of what was applied
        self.said = {}  # pod key -> the last problem logged for it (logged once until it changes)
        self.by_address = {}  # pod address -> host-side veth, from the last look at the namespaces
        self.lock = threading.Lock()

    def _problem(self, key: str, message: str | None) -> None:
        if message is not None and self.said.get(key) != message:
            _log(message)
        self.said[key] = message

    def forget(self, key: str) -> None:
        with self.lock:
            self.objects.pop(key, None)
            self.entries.pop(key, None)
            self.said.pop(key, None)

    def _exists(self, device: str) -> bool:
        return self.run(["ip", "link", "show", "dev", device])[0] == 0

    def _namespaces(self) -> dict:
        """``ip -j addr show`` in every network namespace this host has: the named ones under
        --netns-dir and each one a process is in (``/proc/<pid>/ns/net``: every pod's sandbox).
        The processes matter: the agent's unit has a mount namespace of its own (PrivateTmp),
        which does not see the namespaces containerd mounts under /run/netns after it started."""
        paths = []
        with contextlib.suppress(OSError):
            paths += [os.path.join(self.args.netns_dir, n) for n in sorted(os.listdir(self.args.netns_dir))]
        paths += [
            f"/proc/{pid}/ns/net" for pid in sorted((p for p in os.listdir("/proc") if p.isdigit()), key=int)
        ]
        seen, namespaces = set(), {}
        for path in paths:
            try:
                st = os.stat(path)
            except OSError:  # a process that exited, a namespace removed meanwhile
                continue
            if (st.st_dev, st.st_ino) in seen:
                continue
            seen.add((st.st_dev, st.st_ino))
            code, out, _err = run(["nsenter", f"--net={path}", "ip", "-j", "addr", "show"])
            if code == 0:  # not a file under --netns-dir that is no namespace (any more)
                namespaces[path] = out
        return namespaces

    def _veth(self, view) -> str:
        """The pod's host-side veth by --veth-lookup; ShaperError while it has none."""
        lookup = self.args.veth_lookup
        if lookup == "calico" or (lookup == "auto" and self._exists(view.veth)):
            return view.veth
        if not view.address:
            raise shaper.ShaperError("no status.podIP yet, so no veth to find by address")
        veth = self.by_address.get(view.address)
        if veth is None or not self._exists(veth):
            # one look at every namespace finds the veths of every pod (a restart, many pods)
            code, links, err = self.run(["ip", "-j", "link", "show"])
            if code != 0:
                raise shaper.ShaperError(f"ip link show: {err.strip()}")
            self.by_address = podwatch.veths_by_address(self._namespaces(), links)
            veth = self.by_address.get(view.address)
        if veth is None:
            raise shaper.ShaperError(
                f"no network namespace holds {view.address} on a veth whose peer is here"
            )
        return veth

    def sync(self, pod: dict) -> None:
        key = podwatch.pod_key(pod)
        self.objects[key] = pod
        try:
            view = podwatch.view(pod, self.args.veth_prefix)
        except shaper.ShaperError as e:
            self._problem(key, str(e))
            return
        if view is None:
            with self.lock:
                self.entries.pop(key, None)
            return
        problems, veth = [], None
        try:
            veth = self._veth(view)
            result = shaper.apply(veth, view.limits, self.run)
            if result["changed"]:
                print(json.dumps({"pod": key, "veth": veth, **result}, sort_keys=True), flush=True)
        except shaper.ShaperError as e:  # no veth (yet) on this node, or tc refused
            problems.append(f"pod {key}: veth {veth}: {e}" if veth else f"pod {key}: {e}")
        pids_max = self._pids(view, problems) if view.pids_limit is not None else None
        with self.lock:
            self.entries[key] = {"veth": veth or view.veth, "pids_max": pids_max}
        self._problem(key, "; ".join(problems) or None)

    def _pids(self, view, problems) -> int | None:
        path = podwatch.pids_max_path(self.args.cgroup_root, view.uid, view.qos, self.args.cgroup_driver)
        try:
            with open(path, encoding="ascii") as f:
                current = f.read().strip()
            if current != str(view.pids_limit):
                with open(path, "w", encoding="ascii") as f:
                    f.write(f"{view.pids_limit}\n")
                print(json.dumps({"pod": view.key, "pids.max": view.pids_limit, "file": path}), flush=True)
        except OSError as e:  # no cgroup (yet): the pod's containers are not started
            problems.append(f"pod {view.key}: {path}: {e.strerror}")
            return None
        return view.pids_limit

    def resync(self) -> None:
        for pod in list(self.objects.values()):
            self.sync(pod)
        self.remove_orphans()

    def remove_orphans(self) -> None:
        """Delete the ifbs of ours whose veth is gone (a pod deleted while we shaped its egress)."""
        code, links, err = self.run(["ip", "-j", "-d", "link", "show"])
        if code != 0:
            _log(f"ip -j -d link show: {err.strip()}")
            return
        for ifb in shaper.orphan_ifbs(links):
            code, _out, err = self.run(["ip", "link", "del", "dev", ifb])
            if code == 0:
                print(json.dumps({"removed": ifb, "why": "its veth is gone"}), flush=True)
            else:  # gone meanwhile, or the kernel refused: said once per try
                _log(f"ip link del dev {ifb}: {err.strip()}")

    def metrics(self) -> str:
        with self.lock:
            entries = {key: dict(entry) for key, entry in self.entries.items()}
        for entry in entries.values():
            with contextlib.suppress(shaper.ShaperError):  # the veth went away: no series
                entry.update(show(entry["veth"], self.run))
        return podwatch.metrics_text(self.args.node, entries)


def _watch(args) -> int:
    podwatch.pod_cgroup("uid", "BestEffort", args.cgroup_driver)  # checks --cgroup-driver
    if not args.resync_seconds > 0:
        raise shaper.ShaperError(f"--resync-seconds: {args.resync_seconds!r} is not a number > 0")
    agent = Agent(args, runner_in(args.netns))
    if args.metrics_port is not None:
        try:
            host, bound = exposition.serve(args.metrics_address, args.metrics_port, agent.metrics)
        except exposition.ListenError as e:
            raise shaper.ShaperError(f"--metrics-address/--metrics-port: {e}") from None
        _log(f"metrics on http://{host}:{bound}/metrics")
    query = {"fieldSelector": f"spec.nodeName={args.node}"}
    api, version, backoff = None, None, 1.0
    while True:
        try:
            if api is None:
                try:
                    api = apiclient.Client.from_kubeconfig(args.kubeconfig, args.context)
                except (OSError, ValueError) as e:  # ValueError: apiclient.KubeconfigError too
                    raise shaper.ShaperError(f"--kubeconfig {args.kubeconfig}: {e}") from None
            if version is None:
                data = api.get("/api/v1/pods", query)
                version = data["metadata"]["resourceVersion"]
                listed = {podwatch.pod_key(pod): pod for pod in data.get("items") or []}
                for key in set(agent.objects) - set(listed):
                    agent.forget(key)
                for pod in listed.values():
                    agent.sync(pod)
                agent.remove_orphans()
                _log(f"node {args.node}: listed {len(listed)} pod(s) at resourceVersion {version}")
            else:
                agent.resync()
            backoff = 1.0
            events = api.watch(
                "/api/v1/pods",
                {**query, "resourceVersion": version, "allowWatchBookmarks": "true"},
                int(args.resync_seconds),
            )
            for event in events:
                kind, pod = event.get("type"), event.get("object") or {}
                if kind == "ERROR":
                    raise apiclient.ApiError(
                        pod.get("code") or 500, pod.get("reason") or "", pod.get("message", "")
                    )
                version = (pod.get("metadata") or {}).get("resourceVersion", version)
                if kind == "DELETED":
                    agent.forget(podwatch.pod_key(pod))
                    agent.remove_orphans()
                elif kind in ("ADDED", "MODIFIED"):
                    agent.sync(pod)
        except apiclient.ApiError as e:
            if e.status == 410:
                _log(f"node {args.node}: the watch expired (410 Gone); listing again")
                version = None
                continue
            _log(f"node {args.node}: the API server says {e.status} {e.reason}; retrying in {backoff:.0f}s")
            version = None
        except (shaper.ShaperError, OSError, ValueError) as e:
            where = f"--kubeconfig {args.kubeconfig}: " if api is not None else ""
            message = str(e).splitlines()[0] if str(e) else type(e).__name__
            _log(f"{where}{message}; retrying in {backoff:.0f}s")
            api, version = None, None
        time.sleep(backoff)
        backoff = min(backoff * 2, 30.0)


def _limits(args) -> dict:
    if args.annotations is not None:
        try:
            annotations = json.loads(args.annotations)
        except ValueError as e:
            raise shaper.ShaperError(f"pod {args.pod}: --annotations: not a JSON object: {e}") from None
        if not isinstance(annotations, dict):
            raise shaper.ShaperError(f"pod {args.pod}: --annotations: {annotations!r} is not a JSON object")
        return shaper.limits_from_annotations(args.pod, annotations)
    return shaper.limits_from_annotations(
        args.pod,
        {
            key: value
            for key, value in (
                (shaper.INGRESS_ANNOTATION, args.ingress),
                (shaper.EGRESS_ANNOTATION, args.egress),
            )
            if value is not None
        },
    )


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog=PROGRAM, description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    watch_p = sub.add_parser("watch", help="follow the pods of the node and apply their limits")
    watch_p.add_argument("--node", required=True, help="the Node this host is")
    watch_p.add_argument("--kubeconfig", default="/etc/cloud58/netshaper.kubeconfig")
    watch_p.add_argument("--context", default=None)
    watch_p.add_argument(
        "--netns", default=None, help="named network namespace of the veths (default: the agent's)"
    )
    watch_p.add_argument("--veth-prefix", default=podwatch.VETH_PREFIX, help="Calico's FELIX_INTERFACEPREFIX")
    watch_p.add_argument(
        "--veth-lookup", choices=podwatch.VETH_LOOKUPS, default="auto", help="how a pod's veth is found"
    )
    watch_p.add_argument(
        "--netns-dir", default="/run/netns", help="named network namespaces the address lookup reads too"
    )
    watch_p.add_argument(
        "--cgroup-root", default=None, help="the hierarchy with pids.max (default: v2's, else v1's pids)"
    )
    watch_p.add_argument("--cgroup-driver", default="cgroupfs", help="the kubelet's cgroupDriver")
    watch_p.add_argument("--metrics-address", default="127.0.0.1")
    watch_p.add_argument("--metrics-port", type=int, default=9659, help="0: any free port (logged)")
    watch_p.add_argument(
        "--resync-seconds", type=float, default=30.0, help="apply every pod again this often"
    )
    apply_p = sub.add_parser("apply", help="make the veth's shaping match the pod's limits")
    apply_p.add_argument("--pod", required=True, help="namespace/name, for messages")
    apply_p.add_argument("--veth", required=True, help="the host-side veth of the pod")
    apply_p.add_argument("--ingress", help="rate into the pod, bits per second (10M); none: unlimited")
    apply_p.add_argument("--egress", help="rate out of the pod, bits per second; none: unlimited")
    apply_p.add_argument("--annotations", help="the pod's annotations as JSON, instead of --ingress/--egress")
    show_p = sub.add_parser("show", help="the limits and drops applied on the veth")
    show_p.add_argument("--veth", required=True)
    args = parser.parse_args(argv)
    try:
        if args.command == "watch":
            args.cgroup_root = args.cgroup_root or podwatch.default_cgroup_root()
            return _watch(args)
        if args.command == "apply":
            result = shaper.apply(
                shaper.check_device(args.veth, f"pod {args.pod}: --veth"), _limits(args), run
            )
        else:
            result = show(shaper.check_device(args.veth, "--veth"), run)
    except shaper.ShaperError as e:
        print(f"{PROGRAM}: {e}", file=sys.stderr)
        return 2
    print(json.dumps(result, sort_keys=True))
    return 0


if __name__ == "__main__":
    sys.exit(main())
