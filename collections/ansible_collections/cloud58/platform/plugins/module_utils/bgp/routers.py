# -*- coding: utf-8 -*-
# Copyright: cloud58 platform team
# Apache License 2.0
"""FRR configuration data for the ToR and core (spine) routers of a datacenter.

:func:`router_config` returns a plain dict per router; the role ``tor_router`` renders it
with ``frr.conf.j2`` (no decisions in the template). The design, in short (docs/calico-bgp.md
has the long form):

* every ToR peers with the nodes of its rack (peer group ``NODES``, remote AS = the rack's
  node AS: eBGP in ``ebgp`` mode, iBGP with the ToR as route reflector in
  ``route_reflector`` mode), with the LVS directors of its rack (peer group ``DIRECTORS``,
  same remote AS: a director is a host of the rack) and with every core router over its
  /31 uplinks (``CORES``);
* the core peers with every ToR (``TORS``) and spreads traffic over equal paths
  (``maximum-paths``, ``bestpath as-path multipath-relax`` as the two ToRs of a rack may
  use two AS numbers);
* prefix filters, on every session and in both directions, accept only what belongs there:
  from the nodes the rack's pod pools (blocks and /32s, never the pool itself) and the
  service ranges; from the directors only /32s inside the datacenter's VIP pool and their
  ranges inside its local-address pool (full NAT: the realservers answer a director's local
  addresses), and the directors learn the datacenter's pod routes (their realservers and
  clients); a default route is denied explicitly, everything else by the final deny.
  Towards the core a ToR sends its rack's pools, its rack subnet and the VIP /
  local-address / service ranges; it accepts from the core the datacenter's pod CIDRs, node
  subnets and VIP / local-address / service ranges;
* the option ``client_prefixes`` (clients outside the datacenter, behind the cores) adds
  exactly those prefixes to what a core sends its ToRs, what a ToR accepts from the cores
  and what it sends its directors; a default route among them replaces the explicit deny
  of those three filters.
"""

from __future__ import annotations

import ipaddress

from .fabric import BgpError, Core, Fabric, Tor
from .options import bgp_options

PL_NODES_IN = "C58-FROM-NODES"
PL_NODES_OUT = "C58-TO-NODES"
PL_CORES_IN = "C58-FROM-CORES"
PL_CORES_OUT = "C58-TO-CORES"
PL_TORS_IN = "C58-FROM-TORS"
PL_TORS_OUT = "C58-TO-TORS"
PL_DIRECTORS_IN = "C58-FROM-DIRECTORS"
PL_DIRECTORS_OUT = "C58-TO-DIRECTORS"
DEFAULT_ROUTE = "0.0.0.0/0"


def _entry(prefix: str, ge: int | None = None, le: int | None = None, action: str = "permit", why: str = ""):
    net = ipaddress.ip_network(prefix)
    if ge is not None and ge <= net.prefixlen:
        ge = None  # FRR wants len < ge; "from len" is what le alone means
    if le is not None and le < net.prefixlen:
        raise BgpError(f"prefix filter {prefix}: le {le} is shorter than the prefix")
    if le == net.prefixlen and ge is None:
        le = None
    return {"action": action, "prefix": str(net), "ge": ge, "le": le, "comment": why}


def _numbered(entries: list) -> list:
    """Sequence numbers 10, 20, ... with duplicates (same prefix/ge/le/action) removed."""
    seen = set()
    out = []
    for entry in entries:
        key = (entry["action"], entry["prefix"], entry["ge"], entry["le"])
        if key in seen:
            continue
        seen.add(key)
        out.append(dict(entry, seq=10 * (len(out) + 1)))
    return out


def _prefix_list(name: str, entries: list) -> dict:
    if not any(
        (e["action"], e["prefix"], e["ge"], e["le"]) == ("permit", DEFAULT_ROUTE, None, None) for e in entries
    ):
        entries = [_entry(DEFAULT_ROUTE, action="deny", why="never a default route"), *entries]
    entries.append(_entry(DEFAULT_ROUTE, le=32, action="deny", why="nothing else"))
    return {"name": name, "entries": _numbered(entries)}


def _service_entries(fabric: Fabric, options: dict, vips: bool = True) -> list:
    """VIPs and local addresses (when ``vips``: the LVS directors announce them) and the
    service ranges Calico advertises."""
    entries = [_entry(fabric.vip_pool, le=32, why="datacenter VIPs")] if vips else []
    if vips and fabric.local_address_pool:
        entries.append(_entry(fabric.local_address_pool, le=32, why="LVS local addresses"))
    for cidr in options["service_loadbalancer_ips"]:
        entries.append(_entry(cidr, le=32, why="Service LoadBalancer IPs"))
    for cidr in options["service_external_ips"]:
        entries.append(_entry(cidr, le=32, why="Service external IPs"))
    if options["advertise_service_cluster_ips"]:
        for cluster in fabric.clusters:
            entries.append(_entry(cluster.service_cidr, le=32, why=f"cluster {cluster.name} service IPs"))
    return entries


def _pod_cidr_entries(fabric: Fabric) -> list:
    """Each cluster's whole pod CIDR, blocks and /32s inside it too."""
    return [_entry(c.pod_cidr, le=32, why=f"cluster {c.name} pods") for c in fabric.clusters]


def _client_entries(options: dict) -> list:
    """The clients behind the cores, each exactly (no longer prefixes inside it)."""
    return [_entry(cidr, why="clients behind the cores") for cidr in options["client_prefixes"]]


def _pool_entries(pools, why: str) -> list:
    return [_entry(p.cidr, ge=p.block_size, le=32, why=f"{why} {p.cluster} pod pool") for p in pools]


def _timers(options: dict) -> dict:
    return {
        "keepalive": options["keepalive"],
        "hold": options["hold"],
        "connect_retry": options["connect_retry"],
    }


def _bfd(options: dict):
    if not options["bfd"]:
        return None
    return {
        "interval_ms": options["bfd_interval_ms"],
        "multiplier": options["bfd_multiplier"],
        "profile": "C58-FABRIC",
    }


def tor_config(fabric: Fabric, tor: Tor, options: dict) -> dict:
    rack = fabric.rack(tor.rack)
    reflector = fabric.mode == "route_reflector"
    services = _service_entries(fabric, options)
    directors = sorted(
        (n for n in rack.nodes if "lvs" in n.roles), key=lambda n: ipaddress.ip_address(n.address)
    )
    # VIPs come from the LVS directors only (their own peer group), never from other hosts.
    nodes_in = _prefix_list(
        PL_NODES_IN,
        _pool_entries(rack.pod_pools, f"rack {rack.name}") + _service_entries(fabric, options, vips=False),
    )
    # Nodes learn the datacenter's pod routes, VIPs and service ranges (ECMP over both ToRs).
    nodes_out = _prefix_list(
        PL_NODES_OUT,
        _pod_cidr_entries(fabric) + services,
    )
    cores_out = _prefix_list(
        PL_CORES_OUT,
        [
            *_pool_entries(rack.pod_pools, f"rack {rack.name}"),
            _entry(rack.node_subnet, why=f"rack {rack.name} hosts"),
            *services,
        ],
    )
    cores_in = _prefix_list(
        PL_CORES_IN,
        [
            *_pod_cidr_entries(fabric),
            _entry(fabric.nodes_network, le=32, why="hosts of other racks"),
            *services,
            *_client_entries(options),
        ],
    )
    nodes_group = {
        "name": "NODES",
        "remote_as": rack.node_asn,
        "description": f"hosts of rack {rack.name}",
        "listen_range": rack.node_subnet if options["node_neighbors"] == "listen_range" else None,
        "route_reflector_client": reflector,
        # eBGP: the nodes of a rack share one AS; without as-override a node would drop the
        # routes of its rack neighbours (its own AS is in their path).
        "as_override": not reflector,
        # iBGP: routes from the core carry the core's /31 as next hop; the nodes cannot reach it.
        "next_hop_self": reflector,
        "soft_reconfiguration": options["soft_reconfiguration"],
        "bfd": False,
        "prefix_list_in": PL_NODES_IN,
        "prefix_list_out": PL_NODES_OUT,
    }
    cores_group = {
        "name": "CORES",
        "remote_as": fabric.core_asn,
        "description": f"core routers of {fabric.datacenter}",
        "listen_range": None,
        "route_reflector_client": False,
        "as_override": False,
        "next_hop_self": False,
        "soft_reconfiguration": options["soft_reconfiguration"],
        "bfd": bool(options["bfd"]),
        "prefix_list_in": PL_CORES_IN,
        "prefix_list_out": PL_CORES_OUT,
    }
    prefix_lists = [nodes_in, nodes_out, cores_in, cores_out]
    peer_groups = [nodes_group, cores_group]
    if directors:
        # A director announces the /32 of each VIP it serves while the VIP has healthy
        # realservers, and its range of local addresses (full NAT: a realserver answers the
        # local address the director gave the connection); exactly those are accepted.
        # Directors learn the datacenter's pod routes (their realservers, and clients in pods)
        # and the clients behind the cores: where their full-NAT answers go.
        directors_in = [_entry(fabric.vip_pool, ge=32, le=32, why="VIP /32s of the datacenter")]
        if fabric.local_address_pool:
            directors_in.append(_entry(fabric.local_address_pool, le=32, why="LVS local-address ranges"))
        prefix_lists += [
            _prefix_list(PL_DIRECTORS_IN, directors_in),
            _prefix_list(
                PL_DIRECTORS_OUT,
                _pod_cidr_entries(fabric) + _client_entries(options),
            ),
        ]
        peer_groups.append(
            {
                "name": "DIRECTORS",
                "remote_as": rack.node_asn,
                "description": f"LVS directors of rack {rack.name}",
                "listen_range": None,
                "route_reflector_client": reflector,
                # The pod routes they learn carry the rack's AS (the nodes'), which is theirs:
                # as for the nodes, eBGP needs as-override, iBGP the ToR as next hop.
                "as_override": not reflector,
                "next_hop_self": reflector,
                "soft_reconfiguration": options["soft_reconfiguration"],
                "bfd": False,
                "prefix_list_in": PL_DIRECTORS_IN,
                "prefix_list_out": PL_DIRECTORS_OUT,
            }
        )
    neighbors = []
    if options["node_neighbors"] == "per_node":
        for node in sorted(rack.nodes, key=lambda n: ipaddress.ip_address(n.address)):
            if node not in directors:
                neighbors.append({"address": node.address, "group": "NODES", "description": node.name})
    # Directors are always listed: an explicit neighbor wins over the NODES listen range.
    for node in directors:
        neighbors.append({"address": node.address, "group": "DIRECTORS", "description": node.name})
    for uplink in tor.uplinks:
        neighbors.append({"address": uplink.core_address, "group": "CORES", "description": uplink.core})
    return {
        "hostname": tor.name,
        "role": "tor",
        "datacenter": fabric.datacenter,
        "rack": rack.name,
        "asn": tor.asn,
        "router_id": tor.address,
        "mode": fabric.mode,
        "timers": _timers(options),
        "maximum_paths": options["maximum_paths"],
        "multipath_relax": True,
        "graceful_restart": options["graceful_restart"],
        "bfd": _bfd(options),
        "networks": [rack.node_subnet],
        "interfaces": [
            {"address": f"{u.tor_address}/{u.prefixlen}", "description": f"uplink to {u.core}"}
            for u in tor.uplinks
        ],
        "prefix_lists": prefix_lists,
        "peer_groups": peer_groups,
        "neighbors": neighbors,
    }


def core_config(fabric: Fabric, core: Core, options: dict) -> dict:
    services = _service_entries(fabric, options)
    fabric_routes = [
        *_pod_cidr_entries(fabric),
        _entry(fabric.nodes_network, le=32, why="rack subnets"),
        *services,
    ]
    group = {
        "name": "TORS",
        "remote_as": None,  # each ToR neighbor carries its own AS: stricter than "external"
        "description": f"ToR routers of {fabric.datacenter}",
        "listen_range": None,
        "route_reflector_client": False,
        "as_override": False,
        "next_hop_self": False,
        "soft_reconfiguration": options["soft_reconfiguration"],
        "bfd": bool(options["bfd"]),
        "prefix_list_in": PL_TORS_IN,
        "prefix_list_out": PL_TORS_OUT,
    }
    neighbors = []
    interfaces = []
    for tor in fabric.tors():
        for uplink in tor.uplinks:
            if uplink.core != core.name:
                continue
            neighbors.append(
                {
                    "address": uplink.tor_address,
                    "group": "TORS",
                    "description": tor.name,
                    "remote_as": tor.asn,
                }
            )
            interfaces.append(
                {
                    "address": f"{uplink.core_address}/{uplink.prefixlen}",
                    "description": f"link to {tor.name}",
                }
            )
    if not neighbors:
        raise BgpError(f"core router {core.name!r} of {fabric.datacenter} has no link to any ToR")
    return {
        "hostname": core.name,
        "role": "core",
        "datacenter": fabric.datacenter,
        "rack": None,
        "asn": core.asn,
        "router_id": core.address,
        "mode": fabric.mode,
        "timers": _timers(options),
        "maximum_paths": options["maximum_paths"],
        "multipath_relax": True,
        "graceful_restart": options["graceful_restart"],
        "bfd": _bfd(options),
        "networks": [],
        "loopback": core.address,
        "interfaces": interfaces,
        "prefix_lists": [
            _prefix_list(PL_TORS_IN, fabric_routes),
            _prefix_list(PL_TORS_OUT, fabric_routes + _client_entries(options)),
        ],
        "peer_groups": [group],
        "neighbors": neighbors,
    }


def router_names(fabric: Fabric) -> list:
    """Every router the role configures: the ToRs rack by rack, then the cores."""
    return [t.name for t in fabric.tors()] + [c.name for c in fabric.cores]


def router_config(fabric: Fabric, name: str, options=None) -> dict:
    """The FRR configuration data of router ``name`` (a ToR or a core) of ``fabric``."""
    options = bgp_options(options)
    fabric.check()
    router = fabric.router(name)
    if isinstance(router, Tor):
        return tor_config(fabric, router, options)
    return core_config(fabric, router, options)
