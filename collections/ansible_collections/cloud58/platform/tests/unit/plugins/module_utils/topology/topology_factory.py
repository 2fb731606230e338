# -*- coding: utf-8 -*-
# Copyright: cloud58 platform team
# Apache License 2.0
"""A small valid inventory (two datacenters) as Python data, for the planner's unit tests.

dc1 and dc2 are alike: racks r1 and r2 (a /26 each, two ToRs), one core router, three
masters, three separate events-etcd hosts, two minions, two LVS directors, one Consul
server, one cluster. dc1 is in 198.18.0.0/16, dc2 in 198.19.0.0/16. Tests take a fresh
deep copy with ``base()`` and change one thing.
"""

from __future__ import annotations

import copy

from ansible_collections.cloud58.platform.plugins.module_utils.topology import build_plan, inventory_from_vars


def _datacenter(n):
    net = f"198.{17 + n}"
    return {
        "region": f"region{n}",
        "networks": {
            "nodes": f"{net}.0.0/24",
            "fabric": f"{net}.1.0/27",
            "vip_pool": f"{net}.2.0/27",
            "local_address_pool": f"{net}.2.32/27",
        },
        "bgp": {
            "mode": "ebgp",
            "core_asn": 65000 + 100 * n,
            "core_routers": [{"name": f"dc{n}-core1", "address": f"{net}.1.30"}],
        },
        "racks": {
            f"dc{n}-r1": {
                "node_subnet": f"{net}.0.0/26",
                "node_asn": 65011 + 100 * n,
                "tors": [
                    {"name": f"dc{n}-r1-tor1", "address": f"{net}.0.1", "asn": 65021 + 100 * n},
                    {"name": f"dc{n}-r1-tor2", "address": f"{net}.0.2", "asn": 65021 + 100 * n},
                ],
            },
            f"dc{n}-r2": {
                "node_subnet": f"{net}.0.64/26",
                "node_asn": 65012 + 100 * n,
                "tors": [
                    {"name": f"dc{n}-r2-tor1", "address": f"{net}.0.65", "asn": 65022 + 100 * n},
                    {"name": f"dc{n}-r2-tor2", "address": f"{net}.0.66", "asn": 65022 + 100 * n},
                ],
            },
        },
        "lvs": {"vips": [{"name": f"dc{n}-web", "address": f"{net}.2.10"}]},
    }


def _cluster(n):
    net = f"198.{17 + n}"
    return {
        "datacenter": f"dc{n}",
        "context": f"dc{n}-k8s",
        "api": {"vip": f"{net}.2.1", "dns_name": f"api.dc{n}.test"},
        "pod_cidr": f"{net}.16.0/21",
        "service_cidr": f"{net}.8.0/24",
        "pod_block_size": 26,
        "max_pods": 32,
    }


# host suffix -> (group, rack, last octet)
_HOSTS = {
    "m1": ("masters", "r1", 11),
    "m2": ("masters", "r2", 75),
    "m3": ("masters", "r1", 12),
    "e1": ("etcd_events", "r1", 13),
    "e2": ("etcd_events", "r2", 76),
    "e3": ("etcd_events", "r2", 77),
    "w1": ("minions", "r1", 21),
    "w2": ("minions", "r2", 85),
    "lvs1": ("lvs", "r1", 31),
    "lvs2": ("lvs", "r2", 95),
    "c1": ("consul_servers", "r1", 41),
}


def _base():
    data = {"datacenters": {}, "clusters": {}, "hosts": {}, "groups": {"all": [], "ungrouped": []}}
    for n in (1, 2):
        data["datacenters"][f"dc{n}"] = _datacenter(n)
        data["clusters"][f"dc{n}-k8s"] = _cluster(n)
        for suffix, (group, rack, octet) in _HOSTS.items():
            name = f"dc{n}-{suffix}"
            data["hosts"][name] = {"rack": f"dc{n}-{rack}", "address": f"198.{17 + n}.0.{octet}"}
            data["groups"].setdefault(group, []).append(name)
            data["groups"]["all"].append(name)
    return data


_BASE = _base()


def base():
    """A fresh deep copy of the valid two-datacenter inventory (datacenters, clusters, hosts, groups)."""
    return copy.deepcopy(_BASE)


def split(data):
    """The same data as two inventories, one per datacenter (for cross-inventory rules)."""
    out = []
    for n in (1, 2):
        prefix = f"dc{n}"
        out.append(
            {
                "datacenters": {k: v for k, v in data["datacenters"].items() if k.startswith(prefix)},
                "clusters": {k: v for k, v in data["clusters"].items() if k.startswith(prefix)},
                "hosts": {k: v for k, v in data["hosts"].items() if k.startswith(prefix)},
                "groups": {
                    g: [h for h in members if h.startswith(prefix)] for g, members in data["groups"].items()
                },
            }
        )
    return out


def inventory(data, source="test"):
    return inventory_from_vars(
        data["datacenters"],
        data["clusters"],
        data["hosts"],
        data["groups"],
        source=source,
        bgp_options=data.get("bgp_options"),
    )


def plan(data):
    """build_plan of one inventory dict, or of a list of them (planned together)."""
    if isinstance(data, list):
        return build_plan([inventory(d, source=f"inv{i + 1}") for i, d in enumerate(data)])
    return build_plan(inventory(data))


def remove_host(data, name):
    data["hosts"].pop(name)
    for members in data["groups"].values():
        if name in members:
            members.remove(name)
    return data


def add_to_group(data, group, name):
    data["groups"].setdefault(group, []).append(name)
    return data
