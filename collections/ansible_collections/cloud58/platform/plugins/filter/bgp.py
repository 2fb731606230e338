# -*- coding: utf-8 -*-
# Copyright: cloud58 platform team
# Apache License 2.0
"""Filters over module_utils/bgp: FRR config data for a router, Calico objects for a cluster."""

from __future__ import annotations

DOCUMENTATION = r"""
name: tor_router_config
short_description: FRR configuration data of a ToR or core router, from the inventory plan
description:
  - Returns the data the role C(cloud58.platform.tor_router) renders into C(frr.conf):
    AS, router id, peer groups, neighbors, prefix lists, ECMP and BFD settings.
  - Related filters in this file are C(calico_objects) and C(calico_node_annotations).
options:
  _input:
    description: The plan of C(cloud58.platform.topology_plan) (its C(plan) result).
    type: dict
    required: true
  name:
    description: Router name (a ToR or core router of any datacenter in the plan).
    type: str
    required: true
  options:
    description: BGP options over the defaults of module_utils/bgp/options.py.
    type: dict
    default: {}
"""

EXAMPLES = r"""
- name: Compute the FRR configuration data of this router
  ansible.builtin.set_fact:
    frr: "{{ cloud58_plan | cloud58.platform.tor_router_config(inventory_hostname) }}"
"""

RETURN = r"""
_value:
  description: The router's configuration data.
  type: dict
"""

from ansible.errors import AnsibleFilterError  # noqa: E402 - after the docs, as Ansible plugins are

from ansible_collections.cloud58.platform.plugins.module_utils.bgp import (  # noqa: E402
    BgpError,
    calico_node_annotations,
    calico_objects,
    datacenter_of_router,
    fabric_from_plan,
    router_config,
)


def _plan(value, filter_name):
    if not isinstance(value, dict) or "datacenters" not in value:
        raise AnsibleFilterError(
            f"{filter_name}: expected the plan (a mapping with 'datacenters'), got {type(value).__name__}"
        )
    return value


def tor_router_config(plan, name, options=None):
    plan = _plan(plan, "tor_router_config")
    if not isinstance(name, str) or not name:
        raise AnsibleFilterError(f"tor_router_config: router name must be a string, got {name!r}")
    try:
        fabric = fabric_from_plan(plan, datacenter_of_router(plan, name))
        return router_config(fabric, name, options or {})
    except BgpError as e:
        raise AnsibleFilterError(f"tor_router_config({name}): {e}") from e


def calico_objects_filter(plan, cluster, options=None):
    plan = _plan(plan, "calico_objects")
    try:
        return calico_objects(plan, cluster, options or {})
    except BgpError as e:
        raise AnsibleFilterError(f"calico_objects({cluster}): {e}") from e


def calico_node_annotations_filter(plan, cluster):
    plan = _plan(plan, "calico_node_annotations")
    try:
        return calico_node_annotations(plan, cluster)
    except BgpError as e:
        raise AnsibleFilterError(f"calico_node_annotations({cluster}): {e}") from e


class FilterModule:
    def filters(self):
        return {
            "tor_router_config": tor_router_config,
            "calico_objects": calico_objects_filter,
            "calico_node_annotations": calico_node_annotations_filter,
        }
