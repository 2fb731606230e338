# -*- coding: utf-8 -*-
# Copyright: cloud58 platform team
# Apache License 2.0
"""The BGP view of one datacenter: who peers with whom, with which AS, over which addresses.

:class:`Fabric` is what the router configs, the Calico objects and the BGP lab are computed
from. It is built from the planner's plan by :func:`fabric_from_plan` (the only function in
this package that knows the plan's shape) and checked by :meth:`Fabric.check`, so that a
fabric built by hand in a test obeys the same rules as one from an inventory.

Everything is immutable and made of str/int/tuples; addresses are text, arithmetic uses
:mod:`ipaddress` from the standard library.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, replace


class BgpError(ValueError):
    """The plan cannot be turned into BGP configuration; the message names the rack or router."""


MODES = ("ebgp", "route_reflector")


@dataclass(frozen=True)
class Uplink:
    """One ToR-to-core point-to-point link (a /31): the ToR's side and the core's side."""

    core: str
    tor_address: str
    core_address: str
    prefixlen: int = 31


@dataclass(frozen=True)
class Tor:
    name: str
    rack: str
    address: str
    asn: int
    uplinks: tuple = ()


@dataclass(frozen=True)
class Node:
    """A host of a rack that speaks BGP (a Kubernetes node or an LVS director)."""

    name: str
    rack: str
    address: str
    asn: int
    cluster: str | None = None
    labels: tuple = ()  # sorted (key, value) pairs: the Kubernetes node labels
    roles: tuple = ()

    @property
    def label_map(self) -> dict:
        return dict(self.labels)


@dataclass(frozen=True)
class PodPool:
    """The part of a cluster's pod CIDR reserved for one rack."""

    cluster: str
    rack: str
    cidr: str
    block_size: int


@dataclass(frozen=True)
class Rack:
    name: str
    node_subnet: str
    node_asn: int
    tors: tuple
    nodes: tuple = ()
    pod_pools: tuple = ()

    @property
    def has_director(self) -> bool:
        """Whether an LVS director (which announces VIPs) lives in this rack."""
        return any("lvs" in n.roles for n in self.nodes)


@dataclass(frozen=True)
class Core:
    name: str
    address: str
    asn: int


@dataclass(frozen=True)
class ClusterNet:
    name: str
    pod_cidr: str
    service_cidr: str
    block_size: int


@dataclass(frozen=True)
class Fabric:
    datacenter: str
    mode: str
    core_asn: int
    cores: tuple
    racks: tuple
    nodes_network: str
    vip_pool: str
    clusters: tuple = ()
    local_address_pool: str | None = None  # the LVS directors' full-NAT local addresses

    # ---- look-ups ---------------------------------------------------------------------------
    def rack(self, name: str) -> Rack:
        for rack in self.racks:
            if rack.name == name:
                return rack
        raise BgpError(f"datacenter {self.datacenter!r} has no rack {name!r}")

    def cluster(self, name: str) -> ClusterNet:
        for cluster in self.clusters:
            if cluster.name == name:
                return cluster
        raise BgpError(f"datacenter {self.datacenter!r} has no cluster {name!r}")

    def tors(self) -> list:
        return [tor for rack in self.racks for tor in rack.tors]

    def router(self, name: str):
        """The ToR or core called ``name``."""
        for tor in self.tors():
            if tor.name == name:
                return tor
        for core in self.cores:
            if core.name == name:
                return core
        raise BgpError(f"datacenter {self.datacenter!r} has no router {name!r}")

    def nodes(self, cluster: str | None = None) -> list:
        return [n for r in self.racks for n in r.nodes if cluster is None or n.cluster == cluster]

    def pod_pools(self, cluster: str | None = None) -> list:
        return [p for r in self.racks for p in r.pod_pools if cluster is None or p.cluster == cluster]

    def with_nodes(self, names) -> Fabric:
        """This fabric with only the hosts ``names`` in its racks (the BGP lab runs a subset)."""
        names = set(names)
        racks = tuple(replace(r, nodes=tuple(n for n in r.nodes if n.name in names)) for r in self.racks)
        return replace(self, racks=racks)

    # ---- rules ------------------------------------------------------------------------------
    def check(self) -> Fabric:
        """Raise :class:`BgpError` naming the rack (or router) for every rule the fabric breaks."""
        problems = []
        if self.mode not in MODES:
            problems.append(f"datacenter {self.datacenter!r}: BGP mode {self.mode!r} is not one of {MODES}")
        owners = {}  # asn -> (owner key, description)

        def claim(asn, key, what):
            other = owners.setdefault(asn, (key, what))
            if other[0] != key:
                problems.append(f"AS {asn} of {what} collides with {other[1]}")

        for core in self.cores:
            claim(core.asn, ("core",), "the core routers")
        for rack in self.racks:
            subnet = ipaddress.ip_network(rack.node_subnet)
            where = f"rack {rack.name!r}"
            if len(rack.tors) != 2:
                problems.append(f"{where} has {len(rack.tors)} ToR routers; every rack needs exactly two")
            for tor in rack.tors:
                if ipaddress.ip_address(tor.address) not in subnet:
                    problems.append(
                        f"{where}: ToR {tor.name!r} address {tor.address} is outside the rack subnet "
                        f"{rack.node_subnet}"
                    )
                if self.mode == "route_reflector" and tor.asn != rack.node_asn:
                    problems.append(
                        f"{where}: ToR {tor.name!r} has AS {tor.asn} but route_reflector mode needs "
                        f"the rack's node AS {rack.node_asn}"
                    )
                if self.mode == "ebgp" and tor.asn == rack.node_asn:
                    problems.append(
                        f"{where}: ToR {tor.name!r} shares AS {tor.asn} with the rack's nodes; "
                        "eBGP mode needs another AS"
                    )
                if tor.asn != rack.node_asn:
                    claim(tor.asn, ("tors", rack.name), f"the ToRs of rack {rack.name!r}")
            claim(rack.node_asn, ("nodes", rack.name), f"the nodes of rack {rack.name!r}")
            for node in rack.nodes:
                if ipaddress.ip_address(node.address) not in subnet:
                    problems.append(
                        f"{where}: node {node.name!r} address {node.address} is outside the rack subnet "
                        f"{rack.node_subnet}"
                    )
        if problems:
            raise BgpError("; ".join(problems))
        return self


# ---- from the planner's plan ------------------------------------------------------------------


RACK_LABEL = "cloud58.io/rack"


def fabric_from_plan(plan, datacenter: str) -> Fabric:
    """The checked :class:`Fabric` of ``datacenter`` from the planner's plan.

    ``plan`` is the planner's :class:`Plan` or its ``as_dict()`` (as Ansible passes it).
    """
    try:
        dc = plan["datacenters"][datacenter]
    except KeyError as e:
        known = ", ".join(sorted(plan["datacenters"])) if "datacenters" in plan else "none"
        raise BgpError(f"the plan has no datacenter {datacenter!r} (it has: {known})") from e
    hosts = plan["hosts"]
    routers = dc["routers"]
    clusters = []
    pools_by_rack = {}
    for name in dc["clusters"]:
        cluster = plan["clusters"][name]
        clusters.append(
            ClusterNet(
                name=name,
                pod_cidr=cluster["pod_cidr"],
                service_cidr=cluster["service_cidr"],
                block_size=int(cluster["pod_block_size"]),
            )
        )
        for rack_name, pool in sorted(cluster["pod_pools"].items()):
            pools_by_rack.setdefault(rack_name, []).append(
                PodPool(cluster=name, rack=rack_name, cidr=pool["cidr"], block_size=int(pool["block_size"]))
            )
    racks = []
    for rack_name, rack in sorted(dc["racks"].items()):
        tors = []
        for tor in rack["tors"]:
            uplinks = ()
            tor_routing = routers["tors"].get(tor["name"])
            if tor_routing is not None:
                uplinks = tuple(
                    Uplink(
                        core=u["core"],
                        tor_address=u["local"],
                        core_address=u["remote"],
                        prefixlen=int(u["cidr"].split("/")[1]),
                    )
                    for u in tor_routing["uplinks"]
                )
            tors.append(
                Tor(
                    name=tor["name"],
                    rack=rack_name,
                    address=tor["address"],
                    asn=int(tor["asn"]),
                    uplinks=uplinks,
                )
            )
        nodes = []
        for host_name in rack["hosts"]:
            host = hosts[host_name]
            nodes.append(
                Node(
                    name=host_name,
                    rack=rack_name,
                    address=host["address"],
                    asn=int(host["bgp"]["asn"]),
                    cluster=host.get("cluster"),
                    labels=tuple(sorted(host.get("node_labels", {}).items())),
                    roles=tuple(host.get("roles", ())),
                )
            )
        racks.append(
            Rack(
                name=rack_name,
                node_subnet=rack["node_subnet"],
                node_asn=int(rack["node_asn"]),
                tors=tuple(tors),
                nodes=tuple(nodes),
                pod_pools=tuple(pools_by_rack.get(rack_name, ())),
            )
        )
    cores = tuple(
        Core(name=name, address=core["router_id"], asn=int(core["asn"]))
        for name, core in sorted(routers["cores"].items())
    )
    return Fabric(
        datacenter=datacenter,
        mode=dc["bgp"]["mode"],
        core_asn=int(dc["bgp"]["core_asn"]),
        cores=cores,
        racks=tuple(racks),
        nodes_network=dc["networks"]["nodes"],
        vip_pool=dc["networks"]["vip_pool"],
        clusters=tuple(clusters),
        local_address_pool=dc["networks"].get("local_address_pool"),
    ).check()


def datacenter_of_cluster(plan, cluster: str) -> str:
    try:
        return plan["clusters"][cluster]["datacenter"]
    except KeyError as e:
        raise BgpError(f"the plan has no cluster {cluster!r}") from e


def datacenter_of_router(plan, router: str) -> str:
    """The datacenter whose ToRs or cores include ``router``."""
    for name, dc in sorted(plan["datacenters"].items()):
        routers = dc.get("routers", {})
        if router in routers.get("tors", {}) or router in routers.get("cores", {}):
            return name
    raise BgpError(f"no datacenter of the plan has a router named {router!r}")
