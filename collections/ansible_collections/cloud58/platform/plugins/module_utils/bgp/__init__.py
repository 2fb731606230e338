# -*- coding: utf-8 -*-
# Copyright: cloud58 platform team
# Apache License 2.0
"""BGP for the datacenter fabric: ToR/core router configs and Calico objects from the plan.

Python callers::

    from ansible_collections.cloud58.platform.plugins.module_utils.bgp import (
        calico_objects, fabric_from_plan, router_config)

    fabric = fabric_from_plan(plan, "lab1")
    router_config(fabric, "lab1-r1-tor1")          # data for roles/tor_router frr.conf.j2
    calico_objects(plan, "lab1-k8s")                # dicts for clusters/lab1-k8s/ (the plan's options)
"""

from __future__ import annotations

from .calico import (
    ASN_ANNOTATION,
    CALICO_KINDS,
    calico_node_annotations,
    calico_objects,
    cluster_bgp_options,
    rack_selector,
)
from .fabric import (
    RACK_LABEL,
    BgpError,
    Fabric,
    datacenter_of_cluster,
    datacenter_of_router,
    fabric_from_plan,
)
from .options import DEFAULTS, BgpOptionError, bgp_options, option_problems
from .routers import router_config, router_names

__all__ = [
    "ASN_ANNOTATION",
    "CALICO_KINDS",
    "DEFAULTS",
    "RACK_LABEL",
    "BgpError",
    "BgpOptionError",
    "Fabric",
    "bgp_options",
    "calico_node_annotations",
    "calico_objects",
    "cluster_bgp_options",
    "datacenter_of_cluster",
    "datacenter_of_router",
    "fabric_from_plan",
    "option_problems",
    "rack_selector",
    "router_config",
    "router_names",
]
