# -*- coding: utf-8 -*-
# Copyright: cloud58 platform team
# Apache License 2.0
"""Filters over module_utils/bgp: the routers of a datacenter and their FRR config data, Calico
objects for a cluster.

Each filter is documented in its own file next to this one (tor_router_names.yml,
tor_router_config.yml, calico_objects.yml, calico_node_annotations.yml, calico_install.yml,
calico_release_problem.yml), as ansible-doc reads them.
"""

from __future__ import annotations

from ansible.errors import AnsibleFilterError

from ansible_collections.cloud58.platform.plugins.module_utils.bgp import (
    BgpError,
    calico_node_annotations,
    calico_objects,
    datacenter_of_router,
    fabric_from_plan,
    router_config,
    router_names,
)
from ansible_collections.cloud58.platform.plugins.module_utils.bgp.calico_install import (
    calico_install,
    release_problem,
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


def tor_router_names(plan, datacenter=None):
    plan = _plan(plan, "tor_router_names")
    names = sorted(plan["datacenters"]) if datacenter is None else [datacenter]
    try:
        return [router for dc in names for router in router_names(fabric_from_plan(plan, dc))]
    except BgpError as e:
        raise AnsibleFilterError(f"tor_router_names({datacenter}): {e}") from e


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


def calico_install_filter(manifest, plan, cluster, source="the manifest"):
    plan = _plan(plan, "calico_install")
    if not isinstance(manifest, str):
        raise AnsibleFilterError(f"calico_install: the manifest must be text, got {type(manifest).__name__}")
    try:
        return calico_install(manifest, plan, cluster, source)
    except BgpError as e:
        raise AnsibleFilterError(f"calico_install({cluster}): {e}") from e


def calico_release_problem(url, sha256, version, inventory_sources=None):
    if not isinstance(version, str) or not version:
        raise AnsibleFilterError(f"calico_release_problem: version must be a string, got {version!r}")
    return release_problem(url, sha256, version, inventory_sources)


class FilterModule:
    def filters(self):
        return {
            "tor_router_names": tor_router_names,
            "tor_router_config": tor_router_config,
            "calico_objects": calico_objects_filter,
            "calico_node_annotations": calico_node_annotations_filter,
            "calico_install": calico_install_filter,
            "calico_release_problem": calico_release_problem,
        }
