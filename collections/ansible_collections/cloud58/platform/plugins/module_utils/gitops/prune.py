# -*- coding: utf-8 -*-
# Copyright: cloud58 platform team
# Apache License 2.0
"""Which live objects a run may delete, and the guard around it.

Only objects the LIST returned are candidates, and every LIST is limited to the labels
``managed-by=cloud58, cloud58.io/cluster=<this cluster>``; an object that Git still
holds is never a candidate. Namespaces, CRDs and PersistentVolumes take everything
inside them along, so they are kept unless the run names their kind in
``allow_prune_kinds``. More than ``max_prune`` deletions in one run (a directory emptied
by mistake, a renamed cluster) refuses the whole cluster before anything is written.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ..kube.objects import CLUSTER_LABEL, MANAGED_BY_LABEL, MANAGED_BY_VALUE, PROTECTED_KINDS, ObjKey
from .errors import PruneGuardError


@dataclass
class PrunePlan:
    delete: list[ObjKey] = field(default_factory=list)
    protected: list[ObjKey] = field(default_factory=list)


def plan_prune(
    cluster: str,
    desired: set[ObjKey],
    live: dict[ObjKey, dict],
    *,
    allow_kinds: set[str] | frozenset[str] = frozenset(),
    max_prune: int,
    never: frozenset[ObjKey] = frozenset(),
) -> PrunePlan:
    """Split the live objects Git no longer holds into deletions and protected leftovers.

    ``never`` lists objects that are never deleted nor reported (the cluster's identity
    object: deleting it would lock every later run out). Raises PruneGuardError when the
    deletions exceed ``max_prune``.
    """
    plan = PrunePlan()
    for key in sorted(live):
        if key in desired or key in never:
            continue
        labels = (live[key].get("metadata") or {}).get("labels") or {}
        if labels.get(MANAGED_BY_LABEL) != MANAGED_BY_VALUE or labels.get(CLUSTER_LABEL) != cluster:
            # Not ours: the selector should have kept it out; never delete it anyway.
            continue
        if key.kind in PROTECTED_KINDS and key.kind not in allow_kinds:
            plan.protected.append(key)
        else:
            plan.delete.append(key)
    if len(plan.delete) > max_prune:
        shown = ", ".join(str(k) for k in plan.delete[:5])
        more = f" and {len(plan.delete) - 5} more" if len(plan.delete) > 5 else ""
        raise PruneGuardError(
            f"cluster {cluster!r}: this run would prune {len(plan.delete)} objects ({shown}{more}), "
            f"more than max_prune={max_prune}; nothing was written. If the removal is intended, "
            f"rerun with a higher max_prune (-e max_prune={len(plan.delete)})"
        )
    return plan
