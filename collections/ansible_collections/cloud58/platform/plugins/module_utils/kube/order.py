# -*- coding: utf-8 -*-
# Copyright: cloud58 platform team
# Apache License 2.0
"""The order objects are written in, derived from their kinds (never from file names).

Phases: CRDs (then wait until Established) -> Namespaces -> cluster-scoped -> namespaced.
Inside a phase, kinds that others refer to come first (ServiceAccounts and ConfigMaps
before Deployments, quotas before anything that creates pods). Objects of one batch, the
same phase and kind rank, may be written concurrently; batches run one after another.
Pruning walks the batches in reverse.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

PHASE_CRD = 0
PHASE_NAMESPACE = 1
PHASE_CLUSTER = 2
PHASE_NAMESPACED = 3
PHASE_NAMES = {
    PHASE_CRD: "crds",
    PHASE_NAMESPACE: "namespaces",
    PHASE_CLUSTER: "cluster-scoped",
    PHASE_NAMESPACED: "namespaced",
}

# Kinds not in this table rank after every listed one, alphabetically.
_KIND_RANK = {
    # phases of their own
    "CustomResourceDefinition": 0,
    "Namespace": 0,
    # cluster-scoped
    "PriorityClass": 0,
    "StorageClass": 0,
    "IngressClass": 0,
    "PersistentVolume": 1,
    "ClusterRole": 2,
    "ClusterRoleBinding": 3,
    "ValidatingWebhookConfiguration": 9,
    "MutatingWebhookConfiguration": 9,
    # namespaced
    "ResourceQuota": 0,
    "LimitRange": 0,
    "ServiceAccount": 1,
    "Secret": 2,
    "ConfigMap": 2,
    "PersistentVolumeClaim": 2,
    "Role": 3,
    "RoleBinding": 4,
    "Service": 5,
    "Deployment": 6,
    "StatefulSet": 6,
    "DaemonSet": 6,
    "Job": 6,
    "CronJob": 6,
    "HorizontalPodAutoscaler": 7,
    "PodDisruptionBudget": 7,
    "Ingress": 7,
    "NetworkPolicy": 7,
}
_UNLISTED_RANK = 8


def phase_of(group: str, kind: str, namespaced: bool) -> int:
    if kind == "CustomResourceDefinition" and group == "apiextensions.k8s.io":
        return PHASE_CRD
    if kind == "Namespace" and group == "":
        return PHASE_NAMESPACE
    return PHASE_NAMESPACED if namespaced else PHASE_CLUSTER


def rank_of(group: str, kind: str, namespaced: bool) -> tuple:
    """The batch an object of this kind belongs to; batches sort in apply order."""
    rank = _KIND_RANK.get(kind, _UNLISTED_RANK) if group in _CORE_GROUPS else _UNLISTED_RANK
    return (phase_of(group, kind, namespaced), rank, "" if rank != _UNLISTED_RANK else f"{kind}.{group}")


_CORE_GROUPS = frozenset(
    {
        "",
        "apps",
        "batch",
        "autoscaling",
        "policy",
        "rbac.authorization.k8s.io",
        "scheduling.k8s.io",
        "storage.k8s.io",
        "networking.k8s.io",
        "admissionregistration.k8s.io",
        "apiextensions.k8s.io",
    }
)


def batches(items: Iterable, rank: Callable) -> list[list]:
    """Group ``items`` into apply batches: sorted by ``rank(item)``, one list per distinct rank.

    Items keep their relative order inside a batch; callers pass them sorted by key so the
    result is deterministic.
    """
    grouped: dict = {}
    for item in items:
        grouped.setdefault(rank(item), []).append(item)
    return [grouped[r] for r in sorted(grouped)]
