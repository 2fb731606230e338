# -*- coding: utf-8 -*-
# Copyright: cloud58 platform team
# Apache License 2.0
"""cloud58-crashkeeper: keep the crash site of a failing container, cut its pod off, mark it failed.

The node agent of docs/node-protection.md ("Crash-site preservation"). For a container of a
pod that opted in (the pod annotation ``cloud58.io/crash``, passed through to the container by
containerd's ``pod_annotations``), it

1. runs the app's dump command inside the container when it still runs (time- and size-limited;
   its standard output is the dump),
2. copies the container's logs (the kubelet's ``/var/log/pods/<ns>_<pod>_<uid>/<container>/``),
   lists its writable layer (the overlay upperdir of its containerd snapshot) and copies core
   files found there into ``<root>/<namespace>_<pod>/<UTC time>/`` with ``manifest.json``,
3. takes the pod's veth down on the host side, so no traffic reaches it,
4. marks the pod Failed through the API server (with ``--kubeconfig``), so its ReplicaSet
   replaces it, and marks it again if the kubelet writes an older phase over the mark within
   ``--guard-seconds`` (crash.guard_delays), and deletes the oldest crash sites beyond the
   node's budget.

A container that hangs does not exit: the kubelet kills it once its liveness probe has failed
failureThreshold times in a row, and by then there is nothing left to exec into. So ``watch``
with ``--kubeconfig`` and ``--node`` also follows the kubelet's ``Unhealthy`` Events of its node
and, at a container's first failed liveness probe, runs the dump inside it while it still runs
(step 1 only; once per container). When that container then exits, steps 2 to 4 complete the
same crash site.

  cloud58_crashkeeper.py capture --container-id ID [--exit-code N] [options]
  cloud58_crashkeeper.py watch [options] [--metrics-address A --metrics-port P]
                               [--node NAME]   # containerd's /tasks/exit events -> capture;
                                               # with --kubeconfig: liveness failures -> dump

The logic lives in module_utils/node/crash.py; this program does the I/O. Prints one JSON
object per capture; a bad option is one line and exit status 2, before anything changes.
``watch`` with --metrics-port serves /metrics (Prometheus text: exits captured, skipped and
failed, dumps by outcome, pods marked, sites deleted, the sites and bytes kept against the
budget) and logs its URL on stderr; port 0 takes a free port.
"""

from __future__ import annotations

import argparse
import datetime
import glob
import hashlib
import json
import os
import queue
import selectors
import shutil
import stat
import subprocess
import sys
import threading
import time

try:
    from ansible_collections.cloud58.platform.plugins.module_utils.kube import apiclient
    from ansible_collections.cloud58.platform.plugins.module_utils.node import crash, exposition
except ImportError:  # run from a checkout: the collections directory four levels up
    sys.path.insert(0, os.path.abspath(os.path.join(os.path.dirname(__file__), *[os.pardir] * 4)))
    from ansible_collections.cloud58.platform.plugins.module_utils.kube import apiclient
    from ansible_collections.cloud58.platform.plugins.module_utils.node import crash, exposition

PROGRAM = "cloud58-crashkeeper"
CHUNK = 1 << 20


def _utc_now() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC)


def _iso(when: datetime.datetime) -> str:
    return when.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


class Keeper:
    def __init__(self, args) -> None:
        self.args = args
        self.budget = crash.Budget(args.max_sites, args.max_bytes, args.min_free_bytes)
        existing = os.path.abspath(args.root)
        while not os.path.isdir(existing):  # the disk it will be on, before it is made
            existing = os.path.dirname(existing)
        disk = os.statvfs(existing)
        crash.check_budget(self.budget, args.root, disk.f_blocks * disk.f_frsize)
        os.makedirs(args.root, exist_ok=True)
        self.api = _PodApi(args.kubeconfig, args.context) if args.kubeconfig else None
        self.counts = crash.Counts()

    # -- containerd ------------------------------------------------------------------------
    def ctr(self, *args) -> list[str]:
        return ["ctr", "--address", self.args.address, "--namespace", self.args.namespace, *args]

    def _ctr_out(self, *args) -> str:
        done = subprocess.run(self.ctr(*args), capture_output=True, text=True, check=False)
        if done.returncode != 0:
            raise crash.CrashError(f"ctr {' '.join(args)}: {done.stderr.strip() or 'failed'}")
        return done.stdout

    def capture(self, cid: str, exit_code=None, oom: bool = False) -> dict:
        info = json.loads(self._ctr_out("containers", "info", cid))
        identity = crash.pod_of(info.get("Labels") or {})
        if identity is None:
            return {"container_id": cid, "skipped": "not a container of a pod"}
        namespace, pod_name, container = identity
        pod = f"{namespace}/{pod_name}"
        spec = info.get("Spec") or {}
        policy = crash.policy(pod, spec.get("annotations") or {})
        if policy is None:
            return {"container_id": cid, "pod": pod, "skipped": f"no annotation {crash.ANNOTATION}"}
        live = self._live_site(namespace, pod_name, cid)
        pid, status = crash.task_states(self._ctr_out("tasks", "ls")).get(cid, (0, "NONE"))
        extra: dict = {}
        if live is not None:  # dumped while its liveness probe failed: the same site, completed
            site, earlier = live
            deleted = self.retain(protect=site)
            started = earlier["started"]
            files = [(f["name"], f["size"], f["sha256"]) for f in earlier["files"]]
            dump = earlier["dump"]
            extra = {"liveness": earlier["liveness"], "dumped": earlier["finished"], "exited": True}
        else:
            deleted = self.retain()  # room first: the budget as it stands, before this site is written
            now = _utc_now()
            started, site = _iso(now), crash.site_path(self.args.root, namespace, pod_name, now)
            os.makedirs(site)
            files = []
            if status == "RUNNING":
                dump = self._dump(cid, policy, site, files, deleted)
            else:
                dump = f"not run: the container's task is {status.lower()} (nothing left to exec into)"
        self._logs(namespace, pod_name, container, site, files)
        layer_entries = self._layer(info, site, files)
        veth = self.args.veth or self._veth(crash.network_namespace(spec), pid if status == "RUNNING" else 0)
        if veth:
            _run_checked(["ip", "link", "set", "dev", veth, "down"])
        finished = _utc_now()
        document = crash.manifest(
            pod,
            container,
            exit_code=exit_code,
            started=started,
            finished=_iso(finished),
            files=files,
            app=policy.app,
            keep=policy.keep,
            container_id=cid,
            oom=oom,
            dump=dump,
            layer_entries=layer_entries,
            veth_down=veth,
            **extra,
        )
        _write_manifest(site, document)
        deleted += self.retain(protect=site)
        failed = None
        result = {"site": site, "manifest": document, "deleted": deleted}
        if self.api is not None:
            body = crash.failed_status(container, exit_code, site, finished, veth)
            failed = self.api.mark_failed(namespace, pod_name, body)
            if failed == "Failed" and self.args.guard_seconds > 0:
                # one capture: its result once the guard ends; watch: the result is printed at
                # once, and the guard only counts (it never touches a result being printed)
                alone = self.args.command == "capture"
                guard = threading.Thread(
                    target=self._keep_failed,
                    args=(namespace, pod_name, body, result if alone else None),
                    daemon=True,
                )
                guard.start()
                if alone:
                    guard.join()
        result["pod_failed"] = failed
        if live is not None:
            result["completed_live_site"] = True
        return result

    def _keep_failed(self, namespace: str, pod_name: str, body: dict, result) -> None:
        """The guard of a marked pod (crash.guard_delays): counted, logged, and in ``result``
        when one is given."""
        again = self.api.keep_failed(namespace, pod_name, body, crash.guard_delays(self.args.guard_seconds))
        self.counts.marks["marked_again"] += again
        if result is not None:
            result["marked_again"] = again

    def dump_live(self, failure: crash.ProbeFailure) -> dict:
        """Dump a container whose liveness probe failed while it still runs: a site with the dump
        and a manifest (``exited: false``) that its exit completes. Once per container."""
        pod = f"{failure.namespace}/{failure.pod}"
        base = {"pod": pod, "container": failure.container, "liveness": failure.message}
        ids = self._ctr_out(
            "containers",
            "ls",
            "--quiet",
            crash.container_filter(failure.namespace, failure.pod, failure.container),
        ).split()
        tasks = crash.task_states(self._ctr_out("tasks", "ls"))
        running = [cid for cid in ids if tasks.get(cid, (0, ""))[1] == "RUNNING"]
        if not running:
            return {**base, "skipped": "no running task of that container on this node"}
        cid = running[0]
        info = json.loads(self._ctr_out("containers", "info", cid))
        policy = crash.policy(pod, (info.get("Spec") or {}).get("annotations") or {})
        if policy is None:
            return {**base, "container_id": cid, "skipped": f"no annotation {crash.ANNOTATION}"}
        if self._live_site(failure.namespace, failure.pod, cid) is not None:
            return {**base, "container_id": cid, "skipped": "dumped already at an earlier failure"}
        deleted = self.retain()
        started = _utc_now()
        site = crash.site_path(self.args.root, failure.namespace, failure.pod, started)
        os.makedirs(site)
        files: list = []
        dump = self._dump(cid, policy, site, files, deleted)
        document = crash.manifest(
            pod,
            failure.container,
            exit_code=None,
            started=_iso(started),
            finished=_iso(_utc_now()),
            files=files,
            app=policy.app,
            keep=policy.keep,
            container_id=cid,
            dump=dump,
            liveness=failure.message,
            exited=False,
        )
        _write_manifest(site, document)
        return {
            **base,
            "container_id": cid,
            "site": site,
            "manifest": document,
            "deleted": deleted + self.retain(protect=site),
        }

    def _live_site(self, namespace: str, pod: str, cid: str):
        """(path, manifest) of the site a live dump of container ``cid`` left and its exit has not
        completed yet; None when there is none. Read from disk: it survives a restart of the agent."""
        pattern = os.path.join(self.args.root, f"{namespace}_{pod}", "*", crash.MANIFEST)
        for path in sorted(glob.glob(pattern)):
            try:
                with open(path, encoding="utf-8") as handle:
                    doc = json.load(handle)
            except (OSError, ValueError):
                continue
            if doc.get("container_id") == cid and doc.get("exited") is False:
                return os.path.dirname(path), doc
        return None

    def _dump(self, cid: str, policy: crash.Policy, site: str, files: list, deleted: list) -> str:
        """Run the dump inside the container; stop it at its time limit or when the budget is full.
        Before the dump would pass the free-space floor, the oldest sites go (their paths added
        to ``deleted``); it stops at ``--max-bytes``, or at the floor once no old site is left
        to delete."""
        exec_id = f"c58crash-{os.getpid()}-{time.monotonic_ns()}"
        room = self._room(0)
        out_path, err_path = os.path.join(site, "dump"), os.path.join(site, "dump.stderr")
        digest, size, outcome = hashlib.sha256(), 0, "completed"
        with open(out_path, "wb") as out, open(err_path, "wb") as err:
            proc = subprocess.Popen(
                self.ctr("tasks", "exec", "--exec-id", exec_id, cid, *policy.dump),
                stdout=subprocess.PIPE,
                stderr=err,
            )
            deadline = time.monotonic() + policy.timeout_s
            selector = selectors.DefaultSelector()
            selector.register(proc.stdout, selectors.EVENT_READ)
            while True:
                left = deadline - time.monotonic()
                if left <= 0:
                    outcome = f"stopped after its time limit of {policy.timeout_s}s"
                    break
                if not selector.select(timeout=left):
                    continue
                chunk = os.read(proc.stdout.fileno(), CHUNK)
                if not chunk:
                    break
                if size + len(chunk) > room:  # the disk as it is now, as the retention plan sees it
                    room = self._room(size)
                if size + len(chunk) > room and self._make_room(policy.app, size, len(chunk), deleted):
                    room = self._room(size)
                if size + len(chunk) > room:
                    outcome = f"stopped at {size} bytes: the budget or the free-space floor is reached"
                    break
                out.write(chunk)
                out.flush()  # on the disk before the next statvfs counts it
                digest.update(chunk)
                size += len(chunk)
            selector.close()
            if outcome != "completed":
                subprocess.run(
                    self.ctr("tasks", "kill", "--exec-id", exec_id, "--signal", "SIGKILL", cid),
                    capture_output=True,
                    check=False,
                )
            proc.stdout.close()
            code = proc.wait()
        files.append(("dump", size, digest.hexdigest()))
        files.append(_file_entry(site, "dump.stderr"))
        return outcome if outcome != "completed" else f"completed, exit status {code}"

    def _room(self, written: int) -> int:
        """How many bytes a dump that has ``written`` so far may reach."""
        disk = os.statvfs(self.args.root)
        free = disk.f_bavail * disk.f_frsize
        return min(self.budget.max_bytes, free - self.budget.min_free_bytes + written)

    def _make_room(self, app: str, written: int, more: int, deleted: list) -> bool:
        """Delete the oldest sites that keep ``more`` bytes of a dump from being written; whether
        any went. None goes for a dump that would not fit with every old site gone."""
        sites, _keep = self.sites()
        disk = os.statvfs(self.args.root)
        free_at_most = disk.f_bavail * disk.f_frsize + written + sum(s.size for s in sites)
        if not crash.fits(self.budget, free_at_most, written + more):
            return False
        gone = self.retain(growing=(app, written, written + more))
        deleted += gone
        return bool(gone)

    def _logs(self, namespace: str, pod: str, container: str, site: str, files: list) -> None:
        pattern = os.path.join(self.args.pod_logs, f"{namespace}_{pod}_*", container, "*.log*")
        for path in sorted(glob.glob(pattern)):
            name = f"logs/{os.path.basename(path)}"
            os.makedirs(os.path.join(site, "logs"), exist_ok=True)
            files.append(_copy(path, site, name))

    def _layer(self, info: dict, site: str, files: list) -> int:
        mounts = self._ctr_out(
            "snapshots",
            "--snapshotter",
            info.get("Snapshotter") or "overlayfs",
            "mounts",
            "/",
            info["SnapshotKey"],
        )
        upper = crash.upperdir(mounts)
        entries = []
        for directory, dirs, names in os.walk(upper):
            for name in sorted(dirs + names):
                full = os.path.join(directory, name)
                st = os.lstat(full)
                rel = os.path.relpath(full, upper)
                if stat.S_ISDIR(st.st_mode):
                    kind = "d"
                elif stat.S_ISREG(st.st_mode):
                    kind = "f"
                elif stat.S_ISLNK(st.st_mode):
                    kind = "l"
                elif stat.S_ISCHR(st.st_mode) and st.st_rdev == 0:
                    kind = "deleted"
                else:
                    kind = "other"
                entries.append((rel, kind, st.st_size if kind == "f" else 0))
        with open(os.path.join(site, "layer.txt"), "w", encoding="utf-8") as handle:
            handle.write(crash.listing(entries))
        files.append(_file_entry(site, "layer.txt"))
        for core in crash.core_files(entries):
            os.makedirs(os.path.join(site, "core"), exist_ok=True)
            files.append(_copy(os.path.join(upper, core), site, f"core/{core.replace('/', '_')}"))
        return len(entries)

    def _veth(self, netns_path, pid: int):
        """The host-side veth of the pod: the peer of eth0 in the container's network namespace."""
        if netns_path:
            enter = ["nsenter", f"--net={netns_path}"]
        elif pid:
            enter = ["nsenter", "-t", str(pid), "-n"]
        else:
            return None
        done = subprocess.run(
            [*enter, "ip", "-j", "link", "show"], capture_output=True, text=True, check=False
        )
        if done.returncode != 0:
            return None
        peers = [link.get("link_index") for link in json.loads(done.stdout or "[]") if link.get("link_index")]
        if not peers:
            return None
        here = json.loads(_run_checked(["ip", "-j", "link", "show"]))
        names = [link["ifname"] for link in here if link.get("ifindex") in peers]
        return names[0] if names else None

    # -- retention ---------------------------------------------------------------------------
    def sites(self) -> tuple[list, dict]:
        """The crash sites on the node, and how many sites each app keeps."""
        sites, keep = [], {}
        for manifest in glob.glob(os.path.join(self.args.root, "*", "*", crash.MANIFEST)):
            path = os.path.dirname(manifest)
            try:
                with open(manifest, encoding="utf-8") as handle:
                    doc = json.load(handle)
            except (OSError, ValueError):
                continue  # a site still being written, or not ours
            if not crash.is_site_time(os.path.basename(path)):
                continue
            app = doc.get("app", "")
            keep[app] = max(keep.get(app, 0), doc.get("keep", crash.DEFAULT_KEEP))
            try:
                size = _tree_size(path)
            except OSError:
                continue  # deleted meanwhile (a scrape of /metrics during retention)
            sites.append(crash.Site(path, app, os.path.basename(path), size))
        return sites, keep

    def metrics(self) -> str:
        sites, _keep = self.sites()
        return crash.metrics_text(self.counts, len(sites), sum(s.size for s in sites), self.budget)

    def retain(self, protect: str | None = None, growing: tuple[str, int, int] | None = None) -> list[str]:
        """Delete the oldest sites beyond the budget; their paths. ``protect``: a site just written,
        counted like any other but never deleted. ``growing``: (app, bytes written, bytes wanted)
        of a dump still being written, which has no manifest yet."""
        sites, keep = self.sites()
        new = [s for s in sites if s.path == protect]
        old = [s for s in sites if s.path != protect]
        disk = os.statvfs(self.args.root)
        free = disk.f_bavail * disk.f_frsize
        incoming = 0
        if new:
            growing = (new[0].app, new[0].size, new[0].size)
        if growing:  # the new site counts like any other, but is never the one deleted
            app, written, incoming = growing
            keep = {a: k - (1 if a == app else 0) for a, k in keep.items()}
            free += written
        doomed = crash.plan_retention(old, self.budget, free, keep, incoming)
        for site in doomed:
            shutil.rmtree(site.path, ignore_errors=True)
            parent = os.path.dirname(site.path)
            if not os.listdir(parent):
                os.rmdir(parent)
        self.counts.deleted += len(doomed)
        return [s.path for s in doomed]

    # -- the event source --------------------------------------------------------------------
    def watch(self) -> int:
        """Capture each exit containerd reports and, with the API server and ``--node``, dump each
        container the kubelet reports failing its liveness probe; one at a time, in arrival order."""
        events = subprocess.Popen(self.ctr("events"), stdout=subprocess.PIPE, text=True)
        inbox: queue.Queue = queue.Queue()

        def exits():
            for line in events.stdout:
                event = crash.parse_event(line)
                if event is not None and event.namespace == self.args.namespace:
                    inbox.put(event)
            inbox.put(None)  # containerd's event stream ended: so does the agent

        threading.Thread(target=exits, daemon=True).start()
        liveness = self.api is not None and bool(self.args.node)
        if liveness:
            # "watching" once the Events are listed (or the API server refused): a failure posted
            # after that line is seen; one posted while the agent starts may not be.
            listed = threading.Event()
            threading.Thread(
                target=self.api.follow_probe_failures, args=(self.args.node, inbox.put, listed), daemon=True
            ).start()
            listed.wait(timeout=60)
        print(
            json.dumps(
                {
                    "watching": self.args.address,
                    "namespace": self.args.namespace,
                    "liveness": self.args.node if liveness else None,
                }
            ),
            flush=True,
        )
        oom: set = set()
        while (event := inbox.get()) is not None:
            if isinstance(event, crash.ProbeFailure):
                self._on_probe_failure(event)
                continue
            if event.oom:
                oom.add(event.container_id)
                continue
            try:
                result = self.capture(event.container_id, event.exit_code, event.container_id in oom)
            except (crash.CrashError, OSError, ValueError) as e:
                self.counts.exits["failed"] += 1
                print(f"{PROGRAM}: container {event.container_id}: {e}", file=sys.stderr, flush=True)
                continue
            oom.discard(event.container_id)
            self.counts.record(result)
            if "site" in result:
                self.counts.last_capture = time.time()
            print(json.dumps(result, sort_keys=True), flush=True)
        return events.wait()

    def _on_probe_failure(self, failure: crash.ProbeFailure) -> None:
        try:
            result = self.dump_live(failure)
        except (crash.CrashError, OSError, ValueError) as e:
            self.counts.probes["failed"] += 1
            pod = f"{failure.namespace}/{failure.pod}"
            print(f"{PROGRAM}: pod {pod} container {failure.container}: {e}", file=sys.stderr, flush=True)
            return
        self.counts.record(result)
        if "site" in result:
            self.counts.last_capture = time.time()
            print(json.dumps(result, sort_keys=True), flush=True)


class _PodApi:
    """The API server, for the Pod status patch and the probe Events: the collection's small
    client (module_utils/kube/apiclient.py, like cloud58-netshaper and cloud58-overload)."""

    EVENTS = "/api/v1/events"

    def __init__(self, kubeconfig: str, context) -> None:
        try:
            self.api = apiclient.Client.from_kubeconfig(kubeconfig, context)
        except (OSError, ValueError) as e:  # ValueError: apiclient.KubeconfigError too
            raise crash.CrashError(f"--kubeconfig {kubeconfig}: {e}") from None
        self.api.timeout = self.REQUEST_TIMEOUT_S

    def follow_probe_failures(self, node: str, emit, listed: threading.Event) -> None:
        """Watch the kubelet's Unhealthy Events (server-side selector), keep ``node``'s liveness
        failures, ``emit`` each; from now on: failures from before the agent started are history.
        ``listed`` is set after the first list, or the first error. Reconnects with backoff
        (1 s to 30 s) and lists again when the version is gone (410)."""
        version, delay = None, 1
        watching = f"node {node}: watching the kubelet's probe events"
        while True:
            try:
                if version is None:
                    answer = self.api.get(
                        self.EVENTS, {"fieldSelector": crash.PROBE_EVENT_SELECTOR, "limit": "1"}
                    )
                    version = answer["metadata"]["resourceVersion"]
                    listed.set()
                query = {"fieldSelector": crash.PROBE_EVENT_SELECTOR, "resourceVersion": version}
                for event in self.api.watch(self.EVENTS, query, timeout_seconds=300):
                    raw = event.get("object") or {}
                    if event.get("type") == "ERROR":  # a Status: 410 when the version is too old
                        raise apiclient.ApiError(
                            raw.get("code", 500), raw.get("reason", ""), raw.get("message", "")
                        )
                    version = (raw.get("metadata") or {}).get("resourceVersion") or version
                    if event.get("type") in ("ADDED", "MODIFIED"):
                        failure = crash.probe_failure(raw, node)
                        if failure is not None:
                            emit(failure)
                delay = 1
            except apiclient.ApiError as e:
                if e.status == 410:  # too old: list again, from now
                    version = None
                    continue
                listed.set()
                delay = self._retry(watching, f"the API server says {e.status} {e.reason}", delay, 30)
            except Exception as e:  # a lost connection, a line not JSON, an Event
                # of an unexpected shape: this thread must outlive them all, or no probe failure
                # is seen again until systemd restarts the agent
                listed.set()
                delay = self._retry(watching, f"{type(e).__name__}: {e}", delay, 30)

    @staticmethod
    def _retry(doing: str, what: str, delay: float, cap: float) -> float:
        """Log ``doing`` failed with ``what``, wait ``delay`` seconds; the next delay (doubled, at
        most ``cap``)."""
        print(f"{PROGRAM}: {doing}: {what}; retrying in {delay}s", file=sys.stderr, flush=True)
        time.sleep(delay)
        return min(delay * 2, cap)

    # A busy API server (429, 5xx) or a lost connection: the patch is sent again with backoff,
    # a bounded number of times. One lost patch leaves the crashed pod Running under its
    # restarted container, and its Deployment never replaces it.
    RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})
    ATTEMPTS = 6
    REQUEST_TIMEOUT_S = 15

    def mark_failed(self, namespace: str, name: str, body: dict) -> str:
        delay = 0.5
        for attempt in range(1, self.ATTEMPTS + 1):
            try:
                # a strategic merge: the kubelet's conditions stay, ours is merged by its type
                self.api.patch(f"/api/v1/namespaces/{namespace}/pods/{name}/status", body)
                return "Failed"
            except apiclient.ApiError as e:
                what = f"the API server says {e.status} {e.reason}"
                if e.status not in self.RETRY_STATUSES:
                    return f"not marked: {what}"
            except Exception as e:  # a connection error of any kind: the patch is sent again
                what = f"{type(e).__name__}: {e}"
            if attempt < self.ATTEMPTS:
                delay = self._retry(f"pod {namespace}/{name}: marking it Failed", what, delay, 8)
        return f"not marked after {self.ATTEMPTS} attempts: {what}"

    def keep_failed(self, namespace: str, name: str, body: dict, delays: list) -> int:
        """Read the pod's phase after each of ``delays``; when it is no longer Failed (the kubelet
        wrote an older status over it: crash.guard_delays), mark it again, with its UID as the
        precondition (a pod of the same name made since is left alone). How often it was."""
        path = f"/api/v1/namespaces/{namespace}/pods/{name}"
        again = 0
        for delay in delays:
            time.sleep(delay)
            try:
                pod = self.api.get(path)
            except apiclient.ApiError as e:
                if e.status == 404:  # deleted: nothing left to keep Failed
                    return again
                continue
            except Exception:  # a lost connection: read again at the next pause
                continue
            phase = (pod.get("status") or {}).get("phase")
            if phase == "Failed":
                continue
            print(
                f"{PROGRAM}: pod {namespace}/{name}: its phase went back to {phase} after it was "
                "marked Failed (a status the kubelet made before it saw the mark); marking it again",
                file=sys.stderr,
                flush=True,
            )
            uid = (pod.get("metadata") or {}).get("uid")
            if self.mark_failed(namespace, name, {**body, "metadata": {"uid": uid}}) == "Failed":
                again += 1
        return again


def _run_checked(argv: list[str]) -> str:
    done = subprocess.run(argv, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise crash.CrashError(f"{' '.join(argv)}: {done.stderr.strip() or 'failed'}")
    return done.stdout


def _write_manifest(site: str, document: dict) -> None:
    """Write the manifest whole or not at all: retention skips a site whose manifest it cannot read."""
    path = os.path.join(site, crash.MANIFEST)
    with open(f"{path}.tmp", "w", encoding="utf-8") as handle:
        json.dump(document, handle, indent=2, sort_keys=True)
    os.replace(f"{path}.tmp", path)


def _file_entry(site: str, name: str) -> tuple:
    digest, size = hashlib.sha256(), 0
    with open(os.path.join(site, name), "rb") as handle:
        while chunk := handle.read(CHUNK):
            digest.update(chunk)
            size += len(chunk)
    return (name, size, digest.hexdigest())


def _copy(source: str, site: str, name: str) -> tuple:
    digest, size = hashlib.sha256(), 0
    with open(source, "rb") as src, open(os.path.join(site, name), "wb") as dst:
        while chunk := src.read(CHUNK):
            dst.write(chunk)
            digest.update(chunk)
            size += len(chunk)
    return (name, size, digest.hexdigest())


def _tree_size(path: str) -> int:
    return sum(os.lstat(os.path.join(d, f)).st_size for d, _dirs, names in os.walk(path) for f in names)


def _size(value: str) -> int:
    try:
        return crash.parse_size(value, "size")
    except crash.CrashError:
        raise argparse.ArgumentTypeError(f"{value!r} is not a size in bytes (like 10G, 512M)") from None


def _seconds(value: str) -> int:
    if not value.isdigit():
        raise argparse.ArgumentTypeError(f"{value!r} is not a whole number of seconds (0 or more)")
    return int(value)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog=PROGRAM, description=__doc__.splitlines()[0])
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--address", default="/run/containerd/containerd.sock", help="containerd's socket")
    common.add_argument("--namespace", default="k8s.io", help="containerd namespace (the CRI's: k8s.io)")
    common.add_argument("--root", default=crash.DEFAULT_ROOT, help="where crash sites are kept")
    common.add_argument("--pod-logs", default="/var/log/pods", help="the kubelet's pod log directory")
    common.add_argument("--max-sites", type=int, default=20, help="crash sites kept on the node")
    common.add_argument("--max-bytes", type=_size, default=_size("10G"), help="bytes of crash sites kept")
    common.add_argument(
        "--min-free-bytes", type=_size, default=_size("2G"), help="free space left on the disk"
    )
    common.add_argument("--kubeconfig", help="mark the pod Failed through this API server; none: do not")
    common.add_argument("--context", help="the kubeconfig's context; default: its current one")
    common.add_argument(
        "--guard-seconds",
        type=_seconds,
        default=crash.GUARD_SECONDS,
        help="after marking a pod Failed, read its phase again this long and mark it again if it "
        "went back; 0: do not",
    )
    sub = parser.add_subparsers(dest="command", required=True)
    capture_p = sub.add_parser("capture", parents=[common], help="keep one container's crash site now")
    capture_p.add_argument("--container-id", required=True)
    capture_p.add_argument("--exit-code", type=int, help="when the container has exited")
    capture_p.add_argument("--veth", help="the pod's host-side veth; default: found from the pod's netns")
    watch_p = sub.add_parser("watch", parents=[common], help="capture each container that exits")
    watch_p.set_defaults(veth=None)
    watch_p.add_argument("--metrics-address", default="127.0.0.1", help="where /metrics is served")
    watch_p.add_argument("--metrics-port", type=int, help="port of /metrics; 0: any free port (logged)")
    watch_p.add_argument(
        "--node",
        help="this host's Node: with --kubeconfig, dump a container live at its first failed liveness probe",
    )
    args = parser.parse_args(argv)
    try:
        keeper = Keeper(args)
        if args.command == "watch":
            if args.metrics_port is not None:
                try:
                    host, bound = exposition.serve(args.metrics_address, args.metrics_port, keeper.metrics)
                except exposition.ListenError as e:
                    raise crash.CrashError(f"--metrics-address/--metrics-port: {e}") from None
                print(f"{PROGRAM}: metrics on http://{host}:{bound}/metrics", file=sys.stderr, flush=True)
            return keeper.watch()
        result = keeper.capture(args.container_id, args.exit_code)
    except (crash.CrashError, OSError) as e:
        print(f"{PROGRAM}: {e}", file=sys.stderr)
        return 2
    print(json.dumps(result, sort_keys=True))
    return 0


if __name__ == "__main__":
    sys.exit(main())
