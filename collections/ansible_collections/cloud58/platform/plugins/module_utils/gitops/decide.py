# -*- coding: utf-8 -*-
# Copyright: cloud58 platform team
# Apache License 2.0
"""Pure decisions of a reconcile: what to write and why, what a diff shows, when a rollout is done."""

from __future__ import annotations

import difflib
from dataclasses import dataclass, field

from ..kube.clusters_format import dump_yaml
from ..kube.objects import HASH_ANNOTATION, ObjKey
from .compare import object_differences

CREATE = "create"
UPDATE = "update"
UNCHANGED = "unchanged"

_SERVER_FIELDS = ("managedFields", "resourceVersion", "uid", "creationTimestamp", "generation", "selfLink")


@dataclass
class Decision:
    key: ObjKey
    action: str  # create / update / unchanged
    reason: str = ""  # "changed in Git", "drift", "" for create/unchanged
    fields: list[str] = field(default_factory=list)


def decide(key: ObjKey, desired: dict, live: dict | None) -> Decision:
    """Compare one desired object (carrying its hash annotation) with its live counterpart."""
    if live is None:
        return Decision(key, CREATE)
    fields = object_differences(desired, live)
    if not fields:
        return Decision(key, UNCHANGED)
    want = ((desired.get("metadata") or {}).get("annotations") or {}).get(HASH_ANNOTATION)
    have = ((live.get("metadata") or {}).get("annotations") or {}).get(HASH_ANNOTATION)
    reason = "changed in Git" if want != have else "drift"
    shown = [f for f in fields if f != f"metadata.annotations.{HASH_ANNOTATION}"]
    return Decision(key, UPDATE, reason, shown)


def strip_server_fields(obj: dict | None) -> dict | None:
    """The object as a reader wants to see it in a diff: no status, no bookkeeping fields."""
    if obj is None:
        return None
    out = {k: v for k, v in obj.items() if k != "status"}
    meta = {k: v for k, v in (obj.get("metadata") or {}).items() if k not in _SERVER_FIELDS}
    annotations = {k: v for k, v in (meta.get("annotations") or {}).items() if k != HASH_ANNOTATION}
    if annotations:
        meta["annotations"] = annotations
    else:
        meta.pop("annotations", None)
    out["metadata"] = meta
    return out


def to_yaml(obj: dict | None) -> str:
    if obj is None:
        return ""
    return dump_yaml(obj)


def unified_diff(key: ObjKey, before: dict | None, after: dict | None) -> str:
    """A unified diff of the YAML of two versions of an object (stripped of server fields)."""
    lines = difflib.unified_diff(
        to_yaml(strip_server_fields(before)).splitlines(keepends=True),
        to_yaml(strip_server_fields(after)).splitlines(keepends=True),
        fromfile=f"live/{key}",
        tofile=f"git/{key}",
    )
    return "".join(lines)


def rollout_done(obj: dict) -> bool:
    """True when a Deployment, StatefulSet or DaemonSet has rolled out its current spec."""
    meta = obj.get("metadata") or {}
    spec = obj.get("spec") or {}
    status = obj.get("status") or {}
    if status.get("observedGeneration", 0) < meta.get("generation", 1):
        return False
    kind = obj.get("kind")
    if kind == "DaemonSet":
        wanted = status.get("desiredNumberScheduled", 0)
        return (
            status.get("updatedNumberScheduled", 0) == wanted and status.get("numberAvailable", 0) >= wanted
        )
    replicas = spec.get("replicas", 1)
    updated = status.get("updatedReplicas", 0)
    if updated < replicas:
        return False
    if kind == "StatefulSet":
        return status.get("readyReplicas", 0) >= replicas
    # Deployment: old replicas gone and every updated one available (as `kubectl rollout status`).
    return status.get("replicas", 0) <= updated and status.get("availableReplicas", 0) >= updated
