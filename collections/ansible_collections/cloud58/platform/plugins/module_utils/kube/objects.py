# -*- coding: utf-8 -*-
# Copyright: cloud58 platform team
# Apache License 2.0
"""API versions, kinds and object identity: the names render and reconcile share, and
small helpers over manifests (labels, the desired-state hash)."""

from __future__ import annotations

import hashlib
import json
from typing import NamedTuple

FIELD_MANAGER = "cloud58"
MANAGED_BY_LABEL = "app.kubernetes.io/managed-by"
MANAGED_BY_VALUE = "cloud58"
CLUSTER_LABEL = "cloud58.io/cluster"
HASH_ANNOTATION = "cloud58.io/desired-hash"
IDENTITY_NAMESPACE = "kube-system"
IDENTITY_NAME = "cloud58-identity"
IDENTITY_KEYS = ("cluster", "datacenter", "uid")

# Scope of the built-in kinds: loading clusters/ catches a missing or stray
# metadata.namespace with it, render names files by it. Other kinds are checked against the
# API server's discovery.
NAMESPACED_KINDS = frozenset(
    {
        "ConfigMap",
        "Secret",
        "Service",
        "ServiceAccount",
        "Deployment",
        "StatefulSet",
        "DaemonSet",
        "ReplicaSet",
        "Job",
        "CronJob",
        "HorizontalPodAutoscaler",
        "PodDisruptionBudget",
        "Role",
        "RoleBinding",
        "ResourceQuota",
        "LimitRange",
        "PersistentVolumeClaim",
        "Ingress",
        "NetworkPolicy",
        "Endpoints",
        "Lease",
    }
)
CLUSTER_SCOPED_KINDS = frozenset(
    {
        "Namespace",
        "ClusterRole",
        "ClusterRoleBinding",
        "PriorityClass",
        "StorageClass",
        "PersistentVolume",
        "CustomResourceDefinition",
        "IngressClass",
        "ValidatingWebhookConfiguration",
        "MutatingWebhookConfiguration",
        "APIService",
        "Node",
    }
)

# Kinds whose deletion loses data or other people's objects: pruned only when the run
# explicitly allows that kind.
PROTECTED_KINDS = frozenset({"Namespace", "CustomResourceDefinition", "PersistentVolume"})


class GroupKind(NamedTuple):
    group: str
    kind: str

    def __str__(self) -> str:
        return f"{self.kind}.{self.group}" if self.group else self.kind


class ObjKey(NamedTuple):
    """Identifies one object independently of the API version it was read or written with."""

    group: str
    kind: str
    namespace: str
    name: str

    @property
    def group_kind(self) -> GroupKind:
        return GroupKind(self.group, self.kind)

    def __str__(self) -> str:
        where = f"{self.namespace}/" if self.namespace else ""
        return f"{self.kind}/{where}{self.name}"


def split_api_version(api_version: str) -> tuple[str, str]:
    """``apps/v1`` -> (``apps``, ``v1``); ``v1`` -> (``""``, ``v1``)."""
    if "/" in api_version:
        group, version = api_version.split("/", 1)
        return group, version
    return "", api_version


def object_key(obj: dict) -> ObjKey:
    group, _version = split_api_version(obj["apiVersion"])
    meta = obj.get("metadata") or {}
    return ObjKey(group, obj["kind"], meta.get("namespace") or "", meta["name"])


def labels_for(cluster: str, extra: dict | None = None) -> dict:
    """The labels every rendered object carries, plus ``extra``: the engine LISTs and prunes
    only objects labelled for its cluster (see :func:`selector_for`)."""
    out = {MANAGED_BY_LABEL: MANAGED_BY_VALUE, CLUSTER_LABEL: cluster}
    out.update(extra or {})
    return out


def selector_for(cluster: str) -> str:
    """The label selector every LIST and every prune decision of the engine is limited to."""
    return f"{MANAGED_BY_LABEL}={MANAGED_BY_VALUE},{CLUSTER_LABEL}={cluster}"


def desired_hash(obj: dict) -> str:
    """A stable digest of a manifest as Git holds it (without the hash annotation itself)."""
    canonical = json.dumps(_without_hash(obj), sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()[:20]


def with_hash(obj: dict) -> dict:
    """A copy of ``obj`` carrying the hash annotation; the original is not modified.

    The annotation lets a run notice a field removed from Git (which a comparison on the
    fields Git still holds cannot see): the digest changes, so the object is applied and
    server-side apply drops the fields we no longer send.
    """
    digest = desired_hash(obj)
    out = dict(obj)
    meta = dict(out.get("metadata") or {})
    annotations = dict(meta.get("annotations") or {})
    annotations[HASH_ANNOTATION] = digest
    meta["annotations"] = annotations
    out["metadata"] = meta
    return out


def _without_hash(obj: dict) -> dict:
    annotations = (obj.get("metadata") or {}).get("annotations") or {}
    if HASH_ANNOTATION not in annotations:
        return obj
    out = dict(obj)
    meta = dict(out["metadata"])
    meta["annotations"] = {k: v for k, v in annotations.items() if k != HASH_ANNOTATION}
    if not meta["annotations"]:
        del meta["annotations"]
    out["metadata"] = meta
    return out
