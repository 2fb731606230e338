# -*- coding: utf-8 -*-
# Copyright: cloud58 platform team
# Apache License 2.0
"""Crash-site preservation (cloud58-crashkeeper): the pure part, no I/O.

* the opt-in: an app's ``crash: {dump: [argv...], timeout_s, keep}`` becomes the pod
  annotation ``cloud58.io/crash`` (compact JSON); the agent reads it back with ``policy``;
* the node's budget (at most N sites, M bytes, a free-space floor), checked against the disk
  before anything is captured;
* the layout ``<root>/<namespace>_<pod>/<UTC time>/`` and its ``manifest.json``;
* the retention plan: which sites to delete, oldest first;
* the writable layer's directory from ``ctr snapshots mounts``, and the Pod status patch
  that marks the pod failed;
* the kubelet's ``Unhealthy`` Events of a failing liveness probe, the trigger of a live dump;
* the agent's ``/metrics`` (``Counts`` and ``metrics_text``).

docs/node-protection.md describes the agent around these functions.
"""

from __future__ import annotations

import datetime
import json
import re
from dataclasses import dataclass, field

from . import exposition

ANNOTATION = "cloud58.io/crash"
DEFAULT_TIMEOUT_S = 60
DEFAULT_KEEP = 3
MAX_TIMEOUT_S = 3600
MAX_KEEP = 100
DEFAULT_ROOT = "/var/lib/cloud58/crash"
MANIFEST = "manifest.json"
TIME_FORMAT = "%Y%m%dT%H%M%S.%fZ"  # microseconds: two crashes of a pod in one second
FAILED_REASON = "CrashPreserved"
# A condition of the agent's own type: the kubelet rewrites the status' reason and message and its
# own conditions (Ready) at its next sync, but keeps the phase Failed and conditions it does not own.
CRASH_CONDITION = "cloud58.io/CrashPreserved"
_TIME_RE = re.compile(r"^\d{8}T\d{6}\.\d{6}Z$")
# The budget's three figures as the agent's options name them.
BUDGET_OPTIONS = ("--max-sites", "--max-bytes", "--min-free-bytes")
_SIZE_RE = re.compile(r"\s*(\d+(?:\.\d+)?)\s*([KMGTP]?)(?:i?B)?\s*", re.IGNORECASE)
_SIZE_UNITS = {"": 1, "K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40, "P": 1 << 50}


class CrashError(ValueError):
    """A bad annotation, option or state; the message names the pod/option and the value."""


@dataclass(frozen=True)
class Policy:
    app: str
    dump: tuple
    timeout_s: int
    keep: int


@dataclass(frozen=True)
class Site:
    """One crash site on the node: its directory, the app it belongs to, when, how big."""

    path: str
    app: str
    time: str  # TIME_FORMAT, UTC
    size: int


@dataclass(frozen=True)
class Budget:
    max_sites: int
    max_bytes: int
    min_free_bytes: int


def spec_annotations(app: str, crash) -> dict:
    """The pod annotation of an app's ``crash`` field (None: the app does not opt in)."""
    if crash is None:
        return {}
    value = {
        "app": app,
        "dump": list(crash["dump"]),
        "timeout_s": crash.get("timeout_s", DEFAULT_TIMEOUT_S),
        "keep": crash.get("keep", DEFAULT_KEEP),
    }
    return {ANNOTATION: json.dumps(value, sort_keys=True, separators=(",", ":"))}


def policy(pod: str, annotations: dict):
    """The pod's crash policy from its annotations; None when it did not opt in."""
    raw = (annotations or {}).get(ANNOTATION)
    if raw is None:
        return None
    where = f"pod {pod}: annotation {ANNOTATION}"
    try:
        value = json.loads(raw)
    except (TypeError, ValueError):
        raise CrashError(f"{where}: {raw!r} is not JSON") from None
    if not isinstance(value, dict):
        raise CrashError(f"{where}: {raw!r} is not a JSON object")
    dump = value.get("dump")
    if not isinstance(dump, list) or not dump or not all(isinstance(a, str) and a for a in dump):
        raise CrashError(f"{where}: dump: {dump!r} is not a non-empty list of arguments (argv)")
    timeout_s = value.get("timeout_s", DEFAULT_TIMEOUT_S)
    if not _int_in(timeout_s, 1, MAX_TIMEOUT_S):
        raise CrashError(f"{where}: timeout_s: {timeout_s!r} is not an integer from 1 to {MAX_TIMEOUT_S}")
    keep = value.get("keep", DEFAULT_KEEP)
    if not _int_in(keep, 1, MAX_KEEP):
        raise CrashError(f"{where}: keep: {keep!r} is not an integer from 1 to {MAX_KEEP}")
    app = value.get("app", pod.rsplit("/", maxsplit=1)[-1])
    if not isinstance(app, str) or not app:
        raise CrashError(f"{where}: app: {app!r} is not a name")
    return Policy(app=app, dump=tuple(dump), timeout_s=timeout_s, keep=keep)


def _int_in(value, low: int, high: int) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and low <= value <= high


def parse_size(value, name: str) -> int:
    """Bytes of a size like ``10G``, ``512M``, ``1.5GiB``, ``4096`` (binary units, K to P).

    ``name`` (the option or variable) starts the message of a bad value."""
    if isinstance(value, int) and not isinstance(value, bool):
        if value < 0:
            raise CrashError(f"{name}: {value!r} is not a size in bytes (like 10G, 512M)")
        return value
    match = _SIZE_RE.fullmatch(value) if isinstance(value, str) else None
    if match is None:
        raise CrashError(f"{name}: {value!r} is not a size in bytes (like 10G, 512M)")
    number, unit = match.groups()
    return int(float(number) * _SIZE_UNITS[unit.upper()])


def check_budget(budget: Budget, root: str, disk_total: int, names: tuple = BUDGET_OPTIONS) -> None:
    """Refuse a budget the disk under ``root`` cannot hold (before anything is captured).

    ``names``: what the messages call the three figures (the agent's options by default; the
    role passes its variables)."""
    sites_name, bytes_name, free_name = names
    for option, value, low in (
        (sites_name, budget.max_sites, 1),
        (bytes_name, budget.max_bytes, 1),
        (free_name, budget.min_free_bytes, 0),
    ):
        if not _int_in(value, low, 2**63):
            raise CrashError(f"{option}: {value!r} is not a positive integer")
    if budget.max_bytes + budget.min_free_bytes > disk_total:
        raise CrashError(
            f"{bytes_name}: {budget.max_bytes} plus {free_name} {budget.min_free_bytes} is larger "
            f"than the disk under {root} ({disk_total} bytes)"
        )


def site_path(root: str, namespace: str, pod: str, when: datetime.datetime) -> str:
    """``<root>/<namespace>_<pod>/<UTC time>``; ``when`` must carry a time zone."""
    if when.tzinfo is None:
        raise CrashError(f"site time {when.isoformat()} has no time zone")
    stamp = when.astimezone(datetime.UTC).strftime(TIME_FORMAT)
    return f"{root.rstrip('/')}/{namespace}_{pod}/{stamp}"


def manifest(
    pod: str, container: str, *, exit_code, started: str, finished: str, files: list, **extra
) -> dict:
    """The manifest of one site: ``files`` is a list of (name, size, sha256)."""
    out = {
        "pod": pod,
        "container": container,
        "exit_code": exit_code,
        "started": started,
        "finished": finished,
        "files": [{"name": n, "size": s, "sha256": h} for n, s, h in sorted(files)],
        "bytes": sum(entry[1] for entry in files),
    }
    out.update(extra)
    return out


def plan_retention(
    sites: list, budget: Budget, free_bytes: int, keep_per_app: dict | None = None, incoming: int = 0
) -> list:
    """The sites to delete, oldest first, so that what is left (plus ``incoming`` bytes about to
    be written) keeps each app's ``keep``, at most ``max_sites`` sites and ``max_bytes`` bytes,
    and leaves at least ``min_free_bytes`` free on the disk."""
    keep_per_app = keep_per_app or {}
    ordered = sorted(sites, key=lambda s: (s.time, s.path))
    doomed: list = []
    per_app: dict = {}
    for site in reversed(ordered):  # newest first: the newest ``keep`` of each app stay
        per_app[site.app] = per_app.get(site.app, 0) + 1
        if site.app in keep_per_app and per_app[site.app] > keep_per_app[site.app]:
            doomed.append(site)
    doomed.reverse()
    left = [s for s in ordered if s not in doomed]
    count = len(left) + (1 if incoming else 0)
    total = sum(s.size for s in left) + incoming
    free = free_bytes + sum(s.size for s in doomed) - incoming
    for site in list(left):
        if count <= budget.max_sites and total <= budget.max_bytes and free >= budget.min_free_bytes:
            break
        doomed.append(site)
        count -= 1
        total -= site.size
        free += site.size
    return sorted(doomed, key=lambda s: (s.time, s.path))


def fits(budget: Budget, free_bytes: int, incoming: int) -> bool:
    """Whether ``incoming`` bytes fit at all: even with every old site gone."""
    return incoming <= budget.max_bytes and free_bytes - incoming >= budget.min_free_bytes


def is_site_time(name: str) -> bool:
    return bool(_TIME_RE.match(name))


def upperdir(mounts_output: str) -> str:
    """The writable layer of a container from ``ctr snapshots mounts <target> <key>``."""
    match = re.search(r"upperdir=([^,\s]+)", mounts_output)
    if not match:
        raise CrashError(f"no upperdir in the snapshot's mounts: {mounts_output.strip()!r}")
    return match.group(1)


def failed_status(container: str, exit_code, site: str, now: datetime.datetime, veth=None) -> dict:
    """The Pod status patch (merge patch on the ``status`` subresource) that marks a pod failed.

    A Failed pod no longer counts as active for its ReplicaSet, which creates a replacement
    at once; the Pod object stays for whoever looks at the crash, with the condition
    ``cloud58.io/CrashPreserved`` naming the site (the reason lasts until the kubelet's next sync)."""
    stamp = now.astimezone(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    how = "was failing (still running)" if exit_code is None else f"failed (exit code {exit_code})"
    cut = f"veth {veth} taken down" if veth else "no veth found to take down"
    message = f"container {container} {how}; crash site {site}; {cut} by cloud58-crashkeeper"
    return {
        "status": {
            "phase": "Failed",
            "reason": FAILED_REASON,
            "message": message,
            "conditions": [
                {
                    "type": "Ready",
                    "status": "False",
                    "reason": FAILED_REASON,
                    "message": message,
                    "lastTransitionTime": stamp,
                },
                {
                    "type": CRASH_CONDITION,
                    "status": "True",
                    "reason": FAILED_REASON,
                    "message": message,
                    "lastTransitionTime": stamp,
                },
            ],
        }
    }


# The kubelet writes a pod's status from the copy of the pod it last saw: a status made before
# the agent's patch reached that copy and sent after it has phase Running again (the kubelet
# holds a terminal phase only once its own copy has it, and the API server takes the change).
# Then the pod stays Running and its ReplicaSet never replaces it. So the agent reads the phase
# again for a while after marking it, and marks it once more each time it went back.
GUARD_SECONDS = 30


def guard_delays(seconds: int) -> list[int]:
    """The pauses between the reads of a marked pod's phase within ``seconds``: 1 s, then
    doubling up to 15 s (reads at 1, 3, 7, 15, 30 s for 30); none for 0."""
    delays, elapsed, delay = [], 0, 1
    while elapsed + delay <= seconds:
        delays.append(delay)
        elapsed += delay
        delay = min(delay * 2, 15)
    return delays


# -- containerd ------------------------------------------------------------------------------
# The labels the CRI puts on every container of a pod.
POD_NAMESPACE_LABEL = "io.kubernetes.pod.namespace"
POD_NAME_LABEL = "io.kubernetes.pod.name"
CONTAINER_NAME_LABEL = "io.kubernetes.container.name"
CRI_KIND_LABEL = "io.cri-containerd.kind"
_EVENT_RE = re.compile(r"^\S+ \S+ \S+ \S+ (?P<namespace>\S+) (?P<topic>/\S+) (?P<payload>\{.*\})\s*$")


@dataclass(frozen=True)
class Exit:
    """A container's main process ended (``/tasks/exit``) or hit its memory limit (``/tasks/oom``)."""

    namespace: str
    container_id: str
    exit_code: int | None  # None for an OOM event, which precedes the exit
    oom: bool


def parse_event(line: str):
    """The Exit of one ``ctr events`` line, or None for any other event (an exec's exit too)."""
    match = _EVENT_RE.match(line)
    if not match or match.group("topic") not in ("/tasks/exit", "/tasks/oom"):
        return None
    try:
        payload = json.loads(match.group("payload"))
    except ValueError:
        return None
    cid = payload.get("container_id")
    if not cid:
        return None
    if match.group("topic") == "/tasks/oom":
        return Exit(match.group("namespace"), cid, None, True)
    if payload.get("id", cid) != cid:  # an exec'd process (our own dump among them)
        return None
    # protobuf's JSON leaves out zero values: no exit_status is exit status 0
    return Exit(match.group("namespace"), cid, int(payload.get("exit_status", 0)), False)


def pod_of(labels: dict):
    """(namespace, pod, container) of a container the CRI made for a pod; None for a sandbox
    (the pause container) or a container without the pod labels."""
    if labels.get(CRI_KIND_LABEL) == "sandbox":
        return None
    names = (labels.get(POD_NAMESPACE_LABEL), labels.get(POD_NAME_LABEL), labels.get(CONTAINER_NAME_LABEL))
    return names if all(names) else None


def task_states(text: str) -> dict:
    """``ctr tasks ls`` as {container id: (pid, status)}."""
    out = {}
    for line in text.splitlines()[1:]:
        parts = line.split()
        if len(parts) >= 3 and parts[1].isdigit():
            out[parts[0]] = (int(parts[1]), parts[2])
    return out


def network_namespace(spec: dict):
    """The path of the network namespace in a container's OCI spec (the CRI's
    ``/var/run/netns/cni-…``), or None when it has none of its own path."""
    for ns in (spec.get("linux") or {}).get("namespaces") or []:
        if ns.get("type") == "network":
            return ns.get("path") or None
    return None


def listing(entries: list) -> str:
    """The writable layer's listing: one line per (path, kind, size), sorted by path.

    ``kind``: ``d`` directory, ``f`` file, ``l`` symbolic link, ``deleted`` an overlay whiteout
    (a file of the image the container removed), ``other``."""
    return "".join(f"{kind}\t{size}\t{path}\n" for path, kind, size in sorted(entries))


def core_files(entries: list) -> list:
    """Paths in the writable layer that look like core dumps (``core``, ``core.<pid>``)."""
    return sorted(
        p for p, kind, _size in entries if kind == "f" and re.fullmatch(r"core(\.\d+)?", p.rsplit("/", 1)[-1])
    )


# -- the API server's Events ------------------------------------------------------------------
# The kubelet posts one core/v1 Event (reason Unhealthy, source.component kubelet, source.host its
# node) when a container's probe fails, and counts the repeats on the same Event. These fields are
# selectable server-side; the node is not, so the agent keeps its own node's Events.
PROBE_EVENT_SELECTOR = "involvedObject.kind=Pod,reason=Unhealthy,source=kubelet"
LIVENESS_FAILED = "Liveness probe failed"
_FIELD_PATH_RE = re.compile(r"^spec\.containers\{(?P<name>[^}]+)\}$")


@dataclass(frozen=True)
class ProbeFailure:
    """A container whose liveness probe failed: the kubelet will kill it after failureThreshold
    failures in a row, so this is the moment to dump it while it still runs."""

    namespace: str
    pod: str
    container: str
    message: str


def probe_failure(event: dict, node: str):
    """The ProbeFailure of one core/v1 Event (the API's JSON), or None: another reason, a readiness
    or startup probe, a probe that errored rather than failed, another node's kubelet, an init or
    ephemeral container."""
    source = event.get("source") or {}
    involved = event.get("involvedObject") or {}
    message = event.get("message") or ""
    if (
        event.get("reason") != "Unhealthy"
        or source.get("component") != "kubelet"
        or source.get("host") != node
        or involved.get("kind") != "Pod"
        or not message.startswith(LIVENESS_FAILED)
    ):
        return None
    match = _FIELD_PATH_RE.match(involved.get("fieldPath") or "")
    if not match or not involved.get("namespace") or not involved.get("name"):
        return None
    return ProbeFailure(involved["namespace"], involved["name"], match.group("name"), message)


def container_filter(namespace: str, pod: str, container: str) -> str:
    """The ``ctr containers ls`` filter for the CRI's containers of one pod's container (each
    value quoted, so that no character of a name is read as filter syntax)."""
    return ",".join(
        f'labels."{label}"=={json.dumps(value)}'
        for label, value in (
            (POD_NAMESPACE_LABEL, namespace),
            (POD_NAME_LABEL, pod),
            (CONTAINER_NAME_LABEL, container),
        )
    )


# How a capture's dump went (the manifest's ``dump`` text), the label of its counter.
DUMP_OUTCOMES = ("completed", "stopped", "not_run")
EXIT_RESULTS = ("captured", "skipped", "failed")
PROBE_RESULTS = ("dumped", "skipped", "failed")
# failed: marked; not_marked: the API server refused; marked_again: a marked pod whose phase
# the kubelet wrote back (see guard_delays), marked once more.
MARK_RESULTS = ("failed", "not_marked", "marked_again")


def dump_outcome(text: str) -> str:
    """``completed``, ``stopped`` (time limit or budget) or ``not_run`` (nothing left to exec into)."""
    for outcome in DUMP_OUTCOMES[:2]:
        if text.startswith(outcome):
            return outcome
    return "not_run"


@dataclass
class Counts:
    """What the watching agent counted since it started (its ``/metrics`` counters)."""

    exits: dict = field(default_factory=lambda: dict.fromkeys(EXIT_RESULTS, 0))
    dumps: dict = field(default_factory=lambda: dict.fromkeys(DUMP_OUTCOMES, 0))
    marks: dict = field(default_factory=lambda: dict.fromkeys(MARK_RESULTS, 0))
    probes: dict = field(default_factory=lambda: dict.fromkeys(PROBE_RESULTS, 0))
    deleted: int = 0  # counted by the agent's retention, which runs before and after each capture
    last_capture: float | None = None  # Unix time of the last site written

    def record(self, result: dict) -> None:
        """Count one ``capture`` result (the agent's JSON line); a live dump's result carries
        ``liveness``, an exit that completed a live dump's site ``completed_live_site``."""
        if "liveness" in result:
            self.probes["skipped" if "skipped" in result else "dumped"] += 1
            if "skipped" not in result:
                self.dumps[dump_outcome(result["manifest"]["dump"])] += 1
            return
        if "skipped" in result:
            self.exits["skipped"] += 1
            return
        self.exits["captured"] += 1
        if not result.get("completed_live_site"):  # its dump was counted when it ran
            self.dumps[dump_outcome(result["manifest"]["dump"])] += 1
        if result.get("pod_failed") is not None:
            self.marks["failed" if result["pod_failed"] == "Failed" else "not_marked"] += 1


def metrics_text(counts: Counts, sites: int, size: int, budget: Budget) -> str:
    """The agent's ``/metrics``: its counters, the ``sites`` kept now (``size`` bytes), its budget."""
    last = [] if counts.last_capture is None else [({}, round(counts.last_capture, 3))]
    return exposition.text(
        [
            exposition.family(
                "cloud58_crashkeeper_exits_total",
                "counter",
                "Container exits seen: captured, skipped (not opted in, not a pod's) or failed (an error).",
                [({"result": r}, counts.exits[r]) for r in EXIT_RESULTS],
            ),
            exposition.family(
                "cloud58_crashkeeper_liveness_failures_total",
                "counter",
                "Failed liveness probes the kubelet reported on this node: dumped live, skipped (not "
                "opted in, dumped already, no running task) or failed (an error).",
                [({"result": r}, counts.probes[r]) for r in PROBE_RESULTS],
            ),
            exposition.family(
                "cloud58_crashkeeper_dumps_total",
                "counter",
                "Dump commands by outcome: completed, stopped (time limit or budget), not_run (exited).",
                [({"outcome": o}, counts.dumps[o]) for o in DUMP_OUTCOMES],
            ),
            exposition.family(
                "cloud58_crashkeeper_pod_marks_total",
                "counter",
                "Pods marked Failed through the API server, those the API server refused, and "
                "marked pods marked again after the kubelet wrote an older phase over the mark.",
                [({"result": r}, counts.marks[r]) for r in MARK_RESULTS],
            ),
            exposition.family(
                "cloud58_crashkeeper_sites_deleted_total",
                "counter",
                "Crash sites deleted to stay within the budget.",
                [({}, counts.deleted)],
            ),
            exposition.family(
                "cloud58_crashkeeper_sites", "gauge", "Crash sites kept on the node now.", [({}, sites)]
            ),
            exposition.family(
                "cloud58_crashkeeper_bytes", "gauge", "Bytes of the crash sites kept now.", [({}, size)]
            ),
            exposition.family(
                "cloud58_crashkeeper_budget_sites",
                "gauge",
                "At most this many sites.",
                [({}, budget.max_sites)],
            ),
            exposition.family(
                "cloud58_crashkeeper_budget_bytes",
                "gauge",
                "At most this many bytes.",
                [({}, budget.max_bytes)],
            ),
            exposition.family(
                "cloud58_crashkeeper_last_capture_timestamp_seconds",
                "gauge",
                "When the last crash site was written (Unix time).",
                last,
            ),
        ]
    )
