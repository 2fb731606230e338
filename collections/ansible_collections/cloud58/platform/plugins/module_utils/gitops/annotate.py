# -*- coding: utf-8 -*-
# Copyright: cloud58 platform team
# Apache License 2.0
"""Annotations the engine keeps on Nodes, which it never owns (the kubelet does).

``cluster.yml`` field ``node_annotations`` maps node names to annotations (calico-node reads
a node's AS number from ``projectcalico.org/ASNumber``). A Node is never rendered nor
created: the engine LISTs the nodes once (metadata only) and sends each node that exists a
JSON merge patch of only the annotations that differ, with a field manager of its own and
the node's uid as a guard (a merge patch of a missing object fails, where a server-side
apply would create it). A node that is not registered yet is pending: the next run
annotates it. This module holds the pure part: what to send to which node.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ..kube.objects import ObjKey

FIELD_MANAGER = "cloud58-node-annotations"


def node_key(name: str) -> ObjKey:
    return ObjKey("", "Node", "", name)


@dataclass(frozen=True)
class NodeChange:
    name: str
    uid: str
    before: dict  # the managed annotations as the node has them (absent ones left out)
    after: dict  # the managed annotations as cluster.yml wants them

    @property
    def changed(self) -> dict:
        return {k: v for k, v in sorted(self.after.items()) if self.before.get(k) != v}

    @property
    def patch(self) -> dict:
        """The merge patch: the differing annotations, and the uid the node must still have."""
        return {"metadata": {"uid": self.uid, "annotations": self.changed}}

    def as_object(self, annotations: dict) -> dict:
        """The node as a diff shows it: its name and the managed annotations only."""
        meta = {"name": self.name}
        if annotations:
            meta["annotations"] = dict(annotations)
        return {"apiVersion": "v1", "kind": "Node", "metadata": meta}


@dataclass
class NodePlan:
    changes: list[NodeChange] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)
    pending: list[str] = field(default_factory=list)  # not registered (yet)


def plan_node_annotations(wanted: dict, live: list[dict]) -> NodePlan:
    """Split the nodes of ``wanted`` ({node: {annotation: value}}) by what ``live`` (the
    listed nodes) holds: to patch, already as wanted, not registered."""
    found = {(item.get("metadata") or {}).get("name"): item.get("metadata") or {} for item in live}
    plan = NodePlan()
    for name in sorted(wanted):
        meta = found.get(name)
        if meta is None:
            plan.pending.append(name)
            continue
        have = meta.get("annotations") or {}
        after = dict(wanted[name])
        before = {k: have[k] for k in after if k in have}
        if before == after:
            plan.unchanged.append(name)
        else:
            plan.changes.append(NodeChange(name, meta.get("uid", ""), before, after))
    return plan
