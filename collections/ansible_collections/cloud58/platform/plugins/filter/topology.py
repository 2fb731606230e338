# -*- coding: utf-8 -*-
# Copyright: cloud58 platform team
# Apache License 2.0
"""Filters over the topology planner (``module_utils/topology``); no planning happens here.

* ``topology_host_vars(hostvars, hosts)``: the topology variables of each host, to pass on;
* ``topology_plan(datacenters, clusters, hosts, groups, bgp_options)``: the whole plan as a dict;
* ``topology_host(plan, host)``: one host's entry of a plan.

Every inventory problem of a run ends in one AnsibleFilterError that lists them all.
"""

from __future__ import annotations

from collections.abc import Mapping

from ansible.errors import AnsibleFilterError

from ansible_collections.cloud58.platform.plugins.module_utils.topology import (
    TopologyError,
    host_topology_vars,
    plan_from_vars,
)


def _type(value):
    return type(value).__name__


def topology_host_vars(hostvars, hosts):
    """``{host: {rack, address, labels, cluster (and look-alike typos)}}`` for ``hosts``.

    ``hostvars``: Ansible's ``hostvars``; ``hosts``: host names, usually ``groups['all']``.
    """
    if not isinstance(hostvars, Mapping):
        raise AnsibleFilterError(
            f"topology_host_vars expects hostvars (a mapping), got {hostvars!r} ({_type(hostvars)})"
        )
    if isinstance(hosts, (str, bytes)) or not hasattr(hosts, "__iter__"):
        raise AnsibleFilterError(
            f"topology_host_vars expects a list of host names, got {hosts!r} ({_type(hosts)})"
        )
    out = {}
    for host in hosts:
        if host not in hostvars:
            raise AnsibleFilterError(f"topology_host_vars: host {host!r} is not in hostvars")
        out[str(host)] = host_topology_vars(hostvars[host])
    return out


def topology_plan(datacenters, clusters, hosts, groups, bgp_options=None):
    """The plan (a dict) of ``cloud58_datacenters`` + ``cloud58_clusters`` + host vars + groups
    (+ ``cloud58_bgp_options``)."""
    if not isinstance(hosts, Mapping):
        raise AnsibleFilterError(
            f"topology_plan: hosts must map host names to variables, got {hosts!r} ({_type(hosts)})"
        )
    if not isinstance(groups, Mapping):
        raise AnsibleFilterError(
            f"topology_plan: groups must be Ansible's groups, got {groups!r} ({_type(groups)})"
        )
    try:
        return plan_from_vars(datacenters, clusters, dict(hosts), dict(groups), bgp_options).as_dict()
    except TopologyError as exc:
        raise AnsibleFilterError(str(exc)) from None


def topology_host(plan, host):
    """One host's entry of a plan: roles, rack, AS number, BGP peers, labels, pod pool."""
    if not isinstance(plan, Mapping) or not isinstance(plan.get("hosts"), Mapping):
        raise AnsibleFilterError(f"topology_host expects a plan from topology_plan, got {_type(plan)}")
    hosts = plan["hosts"]
    if host not in hosts:
        raise AnsibleFilterError(
            f"topology_host: host {host!r} ({_type(host)}) is not in the plan (not in a role group?)"
        )
    return hosts[host]


class FilterModule:
    """cloud58 topology filters."""

    def filters(self):
        return {
            "topology_host": topology_host,
            "topology_host_vars": topology_host_vars,
            "topology_plan": topology_plan,
        }
