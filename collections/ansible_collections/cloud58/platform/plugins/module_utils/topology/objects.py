# -*- coding: utf-8 -*-
# Copyright: cloud58 platform team
# Apache License 2.0
"""The model objects: datacenters, racks, clusters and hosts as read from the inventories.

``checks.read_model`` fills them in (fields it could not parse stay ``None``); ``plan.py``
derives the plan from them. Each object knows where it sits, for error messages.
"""

from __future__ import annotations

from .errors import where_text
from .schema import ROLE_GROUPS

ROLE_ORDER = tuple(ROLE_GROUPS.values())
_DEFAULT_FUNCTION = {
    "master": "master",
    "etcd_events": "etcd-events",
    "minion": "minion",
    "lvs": "lvs",
    "consul_server": "consul-server",
}


class Datacenter:
    __slots__ = (
        "bgp",
        "bgp_options",
        "clusters",
        "consul_datacenter",
        "has_inventory_hosts",
        "hosts",
        "lvs",
        "name",
        "networks",
        "racks",
        "region",
        "source",
    )

    def where(self):
        return where_text(datacenter=self.name)


class Rack:
    __slots__ = ("dc", "hosts", "name", "node_asn", "node_subnet", "tors")

    def where(self):
        return where_text(datacenter=self.dc.name, rack=self.name)


class Cluster:
    __slots__ = (
        "api",
        "context",
        "dc",
        "dc_name",
        "events",
        "lab_overrides",
        "masters",
        "max_pods",
        "minions",
        "name",
        "pod_block_size",
        "pod_cidr",
        "pool_headroom_percent",
        "service_cidr",
        "source",
    )

    def where(self):
        return where_text(datacenter=self.dc_name if self.dc else None, cluster=self.name)


class Host:
    __slots__ = ("address", "cluster", "cluster_name", "dc", "labels", "name", "rack", "roles", "source")

    def where(self):
        if self.rack is not None:
            return where_text(datacenter=self.dc.name, rack=self.rack.name, host=self.name)
        return where_text(host=self.name)


class Model:
    """The parsed, cross-checked inventories; input of the derivations in plan.py."""

    def __init__(self):
        self.datacenters = {}
        self.clusters = {}
        self.hosts = {}
        self.racks = {}


def api_vip_name(cluster_name):
    """The name of a cluster's API VIP among the datacenter's VIPs."""
    return f"{cluster_name}-api"


def node_labels(host):
    """Plain labels (function, location, rack + extras) of a host, defaults filled in."""
    labels = {"function": _DEFAULT_FUNCTION[host.roles[0]], "location": host.dc.name}
    for key, value in (host.labels or {}).items():
        labels[str(key)] = str(value)
    labels["rack"] = host.rack.name
    return labels


__all__ = ["ROLE_ORDER", "Cluster", "Datacenter", "Host", "Model", "Rack", "api_vip_name", "node_labels"]
