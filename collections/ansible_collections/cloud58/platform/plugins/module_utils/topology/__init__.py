# -*- coding: utf-8 -*-
# Copyright: cloud58 platform team
# Apache License 2.0
"""The topology planner: inventory in, plan out (or every problem at once).

Python callers::

    from ansible_collections.cloud58.platform.plugins.module_utils.topology import (
        PlanError, build_plan, load_inventory, plan_paths)

    plan = build_plan(load_inventory("inventories/lab"))      # one inventory directory
    plan = plan_paths(["inventories/bj1", "inventories/sh1"])  # planned together
    plan["hosts"]["bj1-node-001"]["bgp"]["peers"]
    plan.to_json()                                             # canonical, byte-identical

Ansible callers go through the module ``cloud58.platform.topology_plan`` or the filters
``cloud58.platform.topology_*``; both call :func:`plan_from_vars`.
"""

from __future__ import annotations

from .errors import ERROR_KINDS, MissingLibrary, PlanError, Problem, TopologyError, error_kinds_markdown
from .inventory import Inventory, host_topology_vars, inventory_from_vars, load_inventory
from .plan import Plan, build_plan, canonical_json
from .schema import HAS_NETADDR, NETADDR_MISSING, model_markdown


def plan_paths(paths) -> Plan:
    """Load every inventory directory of ``paths`` and plan them together."""
    return build_plan([load_inventory(path) for path in paths])


def plan_from_vars(datacenters, clusters, hosts, groups, bgp_options=None) -> Plan:
    """Plan from what Ansible knows: group_vars/all values, host variables, ``groups``."""
    return build_plan(
        inventory_from_vars(datacenters, clusters, hosts, groups, source="ansible", bgp_options=bgp_options)
    )


def plan_summary(plan) -> list:
    """One line per datacenter, for people: racks, hosts, clusters, directors, VIPs."""
    lines = []
    for name, dc in plan["datacenters"].items():
        lines.append(
            "{} ({}): {} racks, {} hosts, clusters {}, {} LVS directors, {} VIPs, {} Consul servers".format(
                name,
                dc["region"],
                len(dc["racks"]),
                len(dc["hosts"]),
                ", ".join(dc["clusters"]) or "none",
                len(dc["lvs"]["directors"]),
                len(dc["lvs"]["vips"]),
                len(dc["consul"]["servers"]),
            )
        )
    return lines


def run_topology_plan(params) -> dict:
    """The module's runner: parameters in, result out; raises PlanError / MissingLibrary."""
    plan = plan_from_vars(
        params.get("datacenters"),
        params.get("clusters"),
        params.get("hosts") or {},
        params.get("groups") or {},
        params.get("bgp_options"),
    )
    return {"changed": False, "plan": plan.as_dict(), "summary": plan_summary(plan)}


__all__ = [
    "ERROR_KINDS",
    "HAS_NETADDR",
    "NETADDR_MISSING",
    "Inventory",
    "MissingLibrary",
    "Plan",
    "PlanError",
    "Problem",
    "TopologyError",
    "build_plan",
    "canonical_json",
    "error_kinds_markdown",
    "host_topology_vars",
    "inventory_from_vars",
    "load_inventory",
    "model_markdown",
    "plan_from_vars",
    "plan_paths",
    "plan_summary",
    "run_topology_plan",
]
