# -*- coding: utf-8 -*-
# Copyright: cloud58 platform team
# Apache License 2.0
"""The clusters to render, read from the planner's validated plan.

Each inventory directory under ``inventories/`` is planned on its own (the planner
validates it and fails with every problem at once); a cluster name must be unique across
all of them because it names ``clusters/<cluster>/``.
"""

from __future__ import annotations

import os
import uuid
from dataclasses import dataclass, field

from .errors import RenderError

# Node labels the planner puts on every node (topology plan, host "node_labels").
NODE_LABEL_FUNCTION = "cloud58.io/function"
NODE_LABEL_RACK = "cloud58.io/rack"
_UID_NAMESPACE = uuid.UUID("6f6a3a52-6b1c-5b8e-9d1e-0c10ad58c1d5")


@dataclass(frozen=True)
class ClusterTarget:
    name: str
    datacenter: str
    context: str
    region: str
    inventory: str  # the inventory directory's name, for messages and cluster.yml
    racks: tuple[str, ...]  # racks holding nodes of this cluster
    functions: tuple[str, ...]  # values of the function label on its nodes
    # The plan of the cluster's inventory (Calico objects, node annotations); None for a
    # target made by hand, which then gets no plan-derived objects.
    plan: object = field(default=None, compare=False, repr=False)

    @property
    def uid(self) -> str:
        """Stable identity of the cluster: the same name in the same datacenter gives the same uid."""
        return str(uuid.uuid5(_UID_NAMESPACE, f"{self.datacenter}/{self.name}"))


def inventory_dirs(root: str) -> list[str]:
    """Directories under ``root`` that hold an Ansible inventory (hosts.yml), sorted."""
    if not os.path.isdir(root):
        raise RenderError(f"{root}: no such directory (expected inventories/<dc>/hosts.yml)")
    return sorted(
        os.path.join(root, entry)
        for entry in os.listdir(root)
        if any(os.path.isfile(os.path.join(root, entry, f)) for f in ("hosts.yml", "hosts.yaml"))
    )


def targets_from_plan(plan, inventory: str) -> list[ClusterTarget]:
    """ClusterTargets of one plan (``topology.build_plan``'s result, or its dict form)."""
    out = []
    hosts = plan["hosts"]
    for name in sorted(plan["clusters"]):
        cluster = plan["clusters"][name]
        dc = cluster["datacenter"]
        functions = sorted({hosts[h]["labels"]["function"] for h in cluster["nodes"] if h in hosts})
        out.append(
            ClusterTarget(
                name=name,
                datacenter=dc,
                context=cluster["context"],
                region=plan["datacenters"][dc]["region"],
                inventory=inventory,
                racks=tuple(sorted(cluster["pod_pools"])),
                functions=tuple(functions),
                plan=plan,
            )
        )
    return out


def cluster_targets(inventory_paths: list[str]) -> list[ClusterTarget]:
    """Plan every inventory directory and collect its clusters. Raises RenderError."""
    from ..topology import TopologyError, plan_paths

    targets: dict[str, ClusterTarget] = {}
    for path in inventory_paths:
        label = os.path.basename(os.path.normpath(path))
        try:
            plan = plan_paths([path])
        except TopologyError as e:
            raise RenderError(f"inventories/{label}: the topology planner refused it:\n{e}") from e
        for target in targets_from_plan(plan, label):
            other = targets.get(target.name)
            if other is not None:
                raise RenderError(
                    f"inventories/{label}: cluster {target.name!r} is also defined in "
                    f"inventories/{other.inventory}; "
                    "cluster names must be unique (they name clusters/<cluster>/)"
                )
            targets[target.name] = target
    return [targets[name] for name in sorted(targets)]
