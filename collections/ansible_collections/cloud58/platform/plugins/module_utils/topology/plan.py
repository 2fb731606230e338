# -*- coding: utf-8 -*-
# Copyright: cloud58 platform team
# Apache License 2.0
"""Derive the plan from a checked model.

The plan is what every role, renderer and the lab read: per host its roles, cluster, AS
number and BGP peers; per rack its pod pools; per cluster its etcd members and API
endpoint; per datacenter its Consul servers, VIP -> director assignment, LVS local
addresses and the inputs of its ToR and core router configs. It is plain JSON data with a
canonical serialisation (sorted keys, lists in name order): the same inventory always gives
byte-identical JSON.

Allocation rules, chosen so that adding a rack or a director whose name sorts last never
moves anything that exists:

* pod pools: per cluster, racks in name order, each pool aligned to its own size, carved
  from the start of pod_cidr;
* LVS local addresses: directors in name order, each range aligned to a power of two;
* ToR-to-core links: /31s from the start of networks.fabric, racks, ToRs and cores in name
  order, skipping any /31 that holds a core router address.
"""

from __future__ import annotations

import hashlib
import ipaddress
import json
from types import MappingProxyType

from .checks import read_model
from .errors import MissingLibrary, Problems
from .inventory import Inventory
from .objects import ROLE_ORDER, api_vip_name, node_labels
from .schema import HAS_NETADDR, NETADDR_MISSING, NODE_ROLES, Addr, Net, name_problem

try:
    import netaddr
except ImportError:  # pragma: no cover - reported through HAS_NETADDR
    netaddr = None

PLAN_VERSION = 1
ETCD_CLIENT_PORT = 2379
ETCD_PEER_PORT = 2380
EVENTS_CLIENT_PORT = 2383
EVENTS_PEER_PORT = 2382
LABEL_PREFIX = "cloud58.io/"


def canonical_json(data) -> str:
    """The one serialisation of a plan: sorted keys, 2-space indent, ASCII, final newline."""
    return json.dumps(data, sort_keys=True, indent=2, ensure_ascii=True, separators=(",", ": ")) + "\n"


def _freeze(value):
    if isinstance(value, dict):
        return MappingProxyType({k: _freeze(v) for k, v in value.items()})
    if isinstance(value, list):
        return tuple(_freeze(v) for v in value)
    return value


class Plan:
    """An immutable plan. ``plan["hosts"]`` reads it; ``to_json()`` / ``as_dict()`` export it."""

    __slots__ = ("_data", "_json")

    def __init__(self, data):
        self._json = canonical_json(data)
        self._data = _freeze(json.loads(self._json))

    def __getitem__(self, key):
        return self._data[key]

    def __iter__(self):
        return iter(self._data)

    def __len__(self):
        return len(self._data)

    def keys(self):
        return self._data.keys()

    def get(self, key, default=None):
        return self._data.get(key, default)

    def to_json(self) -> str:
        return self._json

    def as_dict(self) -> dict:
        """A fresh, mutable deep copy (what Ansible and JSON consumers get)."""
        return json.loads(self._json)

    def __eq__(self, other):
        return isinstance(other, Plan) and other._json == self._json

    def __hash__(self):
        return hash(self._json)

    def __repr__(self):
        return "Plan(datacenters={})".format(sorted(self._data["datacenters"]))


def build_plan(inventories) -> Plan:
    """Validate one or several inventories together and derive their plan.

    ``inventories``: an :class:`Inventory` or a list of them (from ``load_inventory`` or
    ``inventory_from_vars``). Raises :class:`PlanError` with every problem found.
    """
    if not HAS_NETADDR:
        raise MissingLibrary(NETADDR_MISSING)
    if isinstance(inventories, Inventory):
        inventories = [inventories]
    problems = Problems()
    model = read_model(list(inventories), problems)
    data = _Deriver(model, problems).derive()
    problems.raise_if_any()
    return Plan(data)


# ---- small integer helpers --------------------------------------------------------------


def _ip(value) -> str:
    return str(netaddr.IPAddress(value, 4))


def _cidr(first, prefix) -> str:
    return f"{_ip(first)}/{prefix}"


def _ceil_log2(n) -> int:
    return max(0, (n - 1).bit_length())


def _align(value, size) -> int:
    return (value + size - 1) // size * size


def _count(n, noun) -> str:
    return f"{n} {noun}" + ("" if n == 1 else "s")


def _cidr_key(text):
    address, prefix = text.split("/")
    return (int(netaddr.IPAddress(address)), int(prefix))


def _names(hosts):
    return sorted(h.name for h in hosts)


def _member(host):
    return {"name": host.name, "address": host.address.text}


def _rendezvous(vip_name, directors, count):
    """The ``count`` directors with the highest hash of (vip, director): stable under growth."""

    def score(name):
        return hashlib.sha256((f"{vip_name}/{name}").encode()).hexdigest()

    return sorted(sorted(directors, key=lambda d: (score(d), d), reverse=True)[:count])


# ---- derivations ------------------------------------------------------------------------


def pool_prefix(nodes, headroom_percent, block_size) -> int:
    """Prefix length of a rack's pod pool: one block per node, plus headroom, rounded up to 2^n.

    ``nodes`` x (100 + headroom) / 100 blocks (at least one), each a /``block_size``.
    """
    blocks = max(1, -(-nodes * (100 + headroom_percent) // 100))
    return block_size - _ceil_log2(blocks)


class _Deriver:
    def __init__(self, model, problems):
        self.model = model
        self.problems = problems
        self.add = problems.add

    def derive(self):
        model = self.model
        pools = {}  # (cluster, rack) -> pool dict
        for name in sorted(model.clusters):
            pools.update(self.pod_pools(model.clusters[name]))
        self.reservations(pools)
        datacenters = {}
        for name in sorted(model.datacenters):
            datacenters[name] = self.datacenter(model.datacenters[name], pools)
        clusters = {}
        for name in sorted(model.clusters):
            cluster = model.clusters[name]
            if cluster.dc is not None:
                clusters[name] = self.cluster(cluster, pools)
        hosts = {}
        for name in sorted(model.hosts):
            host = model.hosts[name]
            if host.rack is not None and host.address is not None:
                hosts[name] = self.host(host, pools)
        return {"version": PLAN_VERSION, "datacenters": datacenters, "clusters": clusters, "hosts": hosts}

    # -- hosts --

    def host(self, host, pools):
        rack = host.rack
        dc = host.dc
        labels = node_labels(host)
        node_label_map = {}
        for key, value in labels.items():
            node_label_map[key if "/" in key else LABEL_PREFIX + key] = value
        # The well-known topology labels (as the kubelet role sets them): a rack is a failure
        # zone (its two ToRs, its power feed), a datacenter is a region.
        node_label_map["topology.kubernetes.io/region"] = dc.name
        node_label_map["topology.kubernetes.io/zone"] = rack.name
        pool = None
        if host.cluster is not None and set(host.roles) & set(NODE_ROLES):
            pool = pools.get((host.cluster.name, rack.name))
        return {
            "name": host.name,
            "datacenter": dc.name,
            "rack": rack.name,
            "address": host.address.text,
            "roles": list(host.roles),
            "cluster": host.cluster.name if host.cluster is not None else None,
            "labels": labels,
            "node_labels": node_label_map,
            "bgp": {"asn": rack.node_asn, "peers": self.tor_peers(rack)},
            "pod_pool": pool["cidr"] if pool else None,
        }

    def tor_peers(self, rack):
        peers = []
        for tor in sorted(rack.tors, key=lambda t: str(t["name"])):
            if tor["address"] is None:
                continue
            peers.append(
                {
                    "name": tor["name"],
                    "address": tor["address"].text,
                    "asn": tor["asn"],
                    "session": "ibgp" if tor["asn"] == rack.node_asn else "ebgp",
                }
            )
        return peers

    # -- clusters --

    def pod_pools(self, cluster):
        """Per-rack pools of one cluster: nodes x (1 + headroom) blocks, rounded up to 2^n."""
        out = {}
        pods = cluster.pod_cidr
        block = cluster.pod_block_size
        headroom = cluster.pool_headroom_percent
        if cluster.dc is None or pods is None or block is None or headroom is None or block < pods.prefix:
            return out
        nodes_by_rack = {}
        for host in cluster.masters + cluster.minions:
            nodes_by_rack.setdefault(host.rack.name, set()).add(host.name)
        cursor = pods.first
        end = pods.last + 1
        wanted = []
        for rack_name in sorted(nodes_by_rack):
            nodes = len(nodes_by_rack[rack_name])
            wanted.append((rack_name, nodes, pool_prefix(nodes, headroom, block)))
        for index, (rack_name, nodes, prefix) in enumerate(wanted):
            size = 2 ** (32 - prefix)
            start = _align(cursor, size)
            if prefix < pods.prefix or start + size > end:
                need = sum(2 ** (32 - item[2]) for item in wanted)
                self.add(
                    "pool-exhausted",
                    cluster.where(),
                    "pod_cidr",
                    pods.text,
                    f"no room for rack '{rack_name}' ({nodes} nodes need a /{prefix} "
                    f"with {headroom}% headroom); "
                    f"the {len(wanted)} racks need {need} addresses, pod_cidr holds {end - pods.first}: "
                    "widen pod_cidr or lower pool_headroom_percent",
                )
                return {}
            out[(cluster.name, rack_name)] = {
                "cluster": cluster.name,
                "rack": rack_name,
                "cidr": _cidr(start, prefix),
                "block_size": block,
                "nodes": nodes,
                "capacity_nodes": 2 ** (block - prefix),
                "order": index,
            }
            cursor = start + size
        return out

    def reservations(self, pools):
        """cloud58_bgp_options.fixed_ip_reservations: {cluster: {name: [address or CIDR]}}.
        Each becomes the IPReservation ``fixed-<name>`` of its cluster, so the name is a DNS
        label and every address lies in a pod pool of that cluster (Calico reserves only
        inside its pools; outside, the reservation protects nothing)."""
        seen = set()
        for dc in sorted(self.model.datacenters.values(), key=lambda d: d.name):
            reservations = (getattr(dc, "bgp_options", None) or {}).get("fixed_ip_reservations") or {}
            for cluster_name in sorted(reservations, key=str):
                cluster = self.model.clusters.get(cluster_name)
                if cluster is None or cluster_name in seen:
                    continue  # an unknown cluster is reported when the options are read
                seen.add(cluster_name)
                cidrs = sorted(p["cidr"] for (c, _rack), p in pools.items() if c == cluster_name)
                field = f"cloud58_bgp_options.fixed_ip_reservations.{cluster_name}"
                named = reservations[cluster_name]
                if not isinstance(named, dict):
                    self.add(
                        "wrong-type", cluster.where(), field, named, "expected a mapping of name to addresses"
                    )
                    continue
                for name in sorted(named, key=str):
                    addresses = named[name]
                    why = name_problem(str(name))
                    if why:
                        self.add("invalid-name", cluster.where(), f"{field} key", name, why)
                    if not isinstance(addresses, list) or not addresses:
                        self.add(
                            "wrong-type", cluster.where(), f"{field}.{name}", addresses,
                            "expected a non-empty list of addresses or CIDRs",
                        )  # fmt: skip
                        continue
                    for address in addresses:
                        try:
                            net = ipaddress.IPv4Network(str(address))
                        except ValueError:
                            self.add(
                                "malformed-cidr", cluster.where(), f"{field}.{name}", address,
                                "not an IPv4 address or CIDR (with no host bits set)",
                            )  # fmt: skip
                            continue
                        if cidrs and not any(net.subnet_of(ipaddress.IPv4Network(c)) for c in cidrs):
                            self.add(
                                "reservation-outside-pool", cluster.where(), f"{field}.{name}", address,
                                "in no pod pool of the cluster ({})".format(", ".join(cidrs)),
                            )  # fmt: skip

    def cluster(self, cluster, pools):
        dc = cluster.dc
        masters = sorted(cluster.masters, key=lambda h: h.name)
        minions = sorted(cluster.minions, key=lambda h: h.name)
        events = sorted(cluster.events, key=lambda h: h.name)
        api = cluster.api
        services = cluster.service_cidr
        rack_pools = {}
        for (cluster_name, rack_name), pool in sorted(pools.items()):
            if cluster_name == cluster.name:
                rack_pools[rack_name] = {
                    k: v for k, v in pool.items() if k not in ("cluster", "rack", "order")
                }
        port = api.get("port")
        return {
            "name": cluster.name,
            "datacenter": dc.name,
            "context": cluster.context,
            "api": {
                "vip": api["vip"].text if api.get("vip") else None,
                "vip_name": api_vip_name(cluster.name),
                "dns_name": api.get("dns_name"),
                "port": port,
                "server": "https://{}:{}".format(api.get("dns_name"), port),
                "endpoints": [
                    {"name": h.name, "address": h.address.text, "port": port} for h in masters if h.address
                ],
            },
            "pod_cidr": cluster.pod_cidr.text if cluster.pod_cidr else None,
            "service_cidr": services.text if services else None,
            "kubernetes_service_ip": _ip(services.first + 1) if services else None,
            "dns_service_ip": _ip(services.first + 10) if services else None,
            "pod_block_size": cluster.pod_block_size,
            "max_pods": cluster.max_pods,
            "pool_headroom_percent": cluster.pool_headroom_percent,
            "pod_pools": rack_pools,
            "masters": _names(masters),
            "minions": _names(minions),
            "nodes": _names(masters + minions),
            "etcd": self.etcd(masters, ETCD_CLIENT_PORT, ETCD_PEER_PORT),
            "etcd_events": dict(
                self.etcd(events, EVENTS_CLIENT_PORT, EVENTS_PEER_PORT),
                colocated_with_masters=bool(set(_names(events)) & set(_names(masters))),
            ),
            "lab_overrides": dict(cluster.lab_overrides),
        }

    @staticmethod
    def etcd(hosts, client_port, peer_port):
        members = []
        for host in hosts:
            if host.address is None:
                continue
            members.append(
                {
                    "name": host.name,
                    "address": host.address.text,
                    "client_url": f"https://{host.address.text}:{client_port}",
                    "peer_url": f"https://{host.address.text}:{peer_port}",
                }
            )
        return {
            "client_port": client_port,
            "peer_port": peer_port,
            "members": members,
            "initial_cluster": ",".join("{}={}".format(m["name"], m["peer_url"]) for m in members),
            "endpoints": ",".join(m["client_url"] for m in members),
        }

    # -- datacenters --

    def datacenter(self, dc, pools):
        nets = dc.networks
        racks = {}
        for name in sorted(dc.racks):
            rack = dc.racks[name]
            racks[name] = {
                "name": name,
                "node_subnet": rack.node_subnet.text if rack.node_subnet else None,
                "node_asn": rack.node_asn,
                "tors": [
                    {
                        "name": t["name"],
                        "address": t["address"].text if t["address"] else None,
                        "asn": t["asn"],
                    }
                    for t in sorted(rack.tors, key=lambda t: str(t["name"]))
                ],
                "hosts": _names(rack.hosts),
                "pod_pools": {
                    cluster_name: pool["cidr"]
                    for (cluster_name, rack_name), pool in sorted(pools.items())
                    if rack_name == name
                },
            }
        consul = sorted(
            (h for h in dc.hosts if "consul_server" in h.roles and h.address), key=lambda h: h.name
        )
        return {
            "name": dc.name,
            "region": dc.region,
            "networks": {k: (v.text if isinstance(v, Net) else None) for k, v in sorted(nets.items())},
            "bgp": {"mode": dc.bgp.get("mode"), "core_asn": dc.bgp.get("core_asn")},
            # the inventory's cloud58_bgp_options over the defaults (router configs and Calico)
            "bgp_options": dc.bgp_options,
            "racks": racks,
            "routers": self.routers(dc, pools),
            "lvs": self.lvs(dc),
            "consul": {
                "datacenter": dc.consul_datacenter,
                "servers": [_member(h) for h in consul],
                "retry_join": [h.address.text for h in consul],
                "bootstrap_expect": len(consul),
            },
            "clusters": sorted(c.name for c in dc.clusters),
            "hosts": _names(dc.hosts),
        }

    def lvs(self, dc):
        directors = sorted((h for h in dc.hosts if "lvs" in h.roles and h.address), key=lambda h: h.name)
        names = [h.name for h in directors]
        per_vip = dc.lvs.get("directors_per_vip")
        count = len(names) if per_vip is None else min(per_vip, len(names))
        vips = {}
        for vip in dc.lvs.get("vips") or []:
            if vip is None or vip["name"] is None or vip["address"] is None:
                continue
            vips[vip["name"]] = {
                "name": vip["name"],
                "address": vip["address"].text,
                "ports": vip["ports"],
                "real_servers": [],
            }
        for cluster in dc.clusters:
            api = cluster.api
            if api.get("vip") is None:
                continue
            port = api.get("port")
            vips[api_vip_name(cluster.name)] = {
                "name": api_vip_name(cluster.name),
                "address": api["vip"].text,
                "ports": [port],
                "real_servers": [
                    {"name": h.name, "address": h.address.text, "port": port}
                    for h in sorted(cluster.masters, key=lambda h: h.name)
                    if h.address
                ],
            }
        by_director = {name: [] for name in names}
        for name in sorted(vips):
            chosen = _rendezvous(name, names, count)
            vips[name]["directors"] = chosen
            for director in chosen:
                by_director[director].append(name)
        ranges = self.local_addresses(dc, names)
        return {
            "directors_per_vip": per_vip,
            "local_addresses_per_director": dc.lvs.get("local_addresses_per_director"),
            "vips": vips,
            "directors": {
                h.name: {
                    "name": h.name,
                    "address": h.address.text,
                    "rack": h.rack.name,
                    "vips": by_director[h.name],
                    "local_addresses": ranges.get(h.name),
                }
                for h in directors
            },
        }

    def local_addresses(self, dc, directors):
        pool = dc.networks.get("local_address_pool")
        count = dc.lvs.get("local_addresses_per_director")
        if pool is None or count is None or not directors:
            return {}
        size = 2 ** _ceil_log2(count)
        available = pool.last - pool.first + 1
        if size * len(directors) > available:
            self.add(
                "local-address-pool-too-small",
                dc.where(),
                "networks.local_address_pool",
                pool.text,
                f"holds {available} addresses; {_count(len(directors), 'director')} x {count} "
                f"local addresses (ranges aligned to {size}) need {size * len(directors)}",
            )
            return {}
        out = {}
        for index, name in enumerate(directors):
            first = pool.first + index * size
            out[name] = {
                "cidr": _cidr(first, 32 - _ceil_log2(count)),
                "first": _ip(first),
                "last": _ip(first + count - 1),
                "count": count,
            }
        return out

    def routers(self, dc, pools):
        """Inputs of the ToR and core router configs: sessions, links, announced networks.

        A ToR announces its rack subnet and accepts from its hosts ``host_prefixes`` (the
        rack's pod pools, and the VIP and local-address pools when a director is in the rack)
        up to /32.
        """
        fabric = dc.networks.get("fabric")
        vip_pool = dc.networks.get("vip_pool")
        local_pool = dc.networks.get("local_address_pool")
        cores = sorted(
            (c for c in (dc.bgp.get("core_routers") or []) if c and c["name"] and c["address"]),
            key=lambda c: c["name"],
        )
        core_asn = dc.bgp.get("core_asn")
        mode = dc.bgp.get("mode")
        links = self.fabric_links(dc, fabric, cores)
        tors = {}
        core_out = {
            c["name"]: {
                "name": c["name"],
                "asn": core_asn,
                "router_id": c["address"].text,
                "neighbors": [],
                "links": [],
            }
            for c in cores
        }
        for rack_name in sorted(dc.racks):
            rack = dc.racks[rack_name]
            for tor in sorted(rack.tors, key=lambda t: str(t["name"])):
                if tor["name"] is None or tor["address"] is None:
                    continue
                neighbors = []
                for host in sorted(rack.hosts, key=lambda h: h.name):
                    if host.address is None:
                        continue
                    neighbors.append(
                        {
                            "name": host.name,
                            "address": host.address.text,
                            "asn": rack.node_asn,
                            "kind": "host",
                            "route_reflector_client": mode == "route_reflector",
                        }
                    )
                uplinks = []
                for core in cores:
                    link = links.get((tor["name"], core["name"]))
                    if link is None:
                        continue
                    uplinks.append(
                        {"core": core["name"], "local": link[1], "remote": link[0], "cidr": link[2]}
                    )
                    neighbors.append(
                        {
                            "name": core["name"],
                            "address": link[0],
                            "asn": core_asn,
                            "kind": "core",
                            "route_reflector_client": False,
                        }
                    )
                    core_out[core["name"]]["links"].append(
                        {"tor": tor["name"], "local": link[0], "remote": link[1], "cidr": link[2]}
                    )
                    core_out[core["name"]]["neighbors"].append(
                        {
                            "name": tor["name"],
                            "address": link[1],
                            "asn": tor["asn"],
                            "kind": "tor",
                            "multihop": False,
                        }
                    )
                directors_here = any("lvs" in h.roles for h in rack.hosts)
                host_prefixes = sorted(
                    {pool["cidr"] for key, pool in pools.items() if key[1] == rack_name}
                    | ({vip_pool.text} if vip_pool and directors_here else set())
                    | ({local_pool.text} if local_pool and directors_here else set()),
                    key=_cidr_key,
                )
                tors[tor["name"]] = {
                    "name": tor["name"],
                    "host_prefixes": host_prefixes,
                    "announce": [rack.node_subnet.text] if rack.node_subnet else [],
                    "rack": rack_name,
                    "asn": tor["asn"],
                    "router_id": tor["address"].text,
                    "address": tor["address"].text,
                    "node_subnet": rack.node_subnet.text if rack.node_subnet else None,
                    "route_reflector": mode == "route_reflector",
                    "neighbors": neighbors,
                    "uplinks": uplinks,
                }
        # cores of the other datacenters planned together: the interconnected fabric
        for other_name in sorted(self.model.datacenters):
            other = self.model.datacenters[other_name]
            if other is dc:
                continue
            for other_core in sorted(
                (c for c in (other.bgp.get("core_routers") or []) if c and c["name"] and c["address"]),
                key=lambda c: c["name"],
            ):
                for core in core_out.values():
                    core["neighbors"].append(
                        {
                            "name": other_core["name"],
                            "address": other_core["address"].text,
                            "asn": other.bgp.get("core_asn"),
                            "kind": "core",
                            "datacenter": other.name,
                            "multihop": True,
                        }
                    )
        announce = [net.text for net in (dc.networks.get("nodes"),) if net is not None]
        for core in core_out.values():
            core["announce"] = announce
        return {"tors": tors, "cores": core_out}

    def fabric_links(self, dc, fabric, cores):
        """(tor, core) -> (core address, tor address, /31) from networks.fabric."""
        pairs = []
        for rack_name in sorted(dc.racks):
            for tor in sorted(dc.racks[rack_name].tors, key=lambda t: str(t["name"])):
                if tor["name"] is None:
                    continue
                for core in cores:
                    pairs.append((tor["name"], core["name"]))
        if fabric is None or not pairs:
            return {}
        reserved = {c["address"].value for c in cores}
        out = {}
        cursor = fabric.first - fabric.first % 2
        for pair in pairs:
            while cursor + 1 <= fabric.last and (cursor in reserved or cursor + 1 in reserved):
                cursor += 2
            if cursor + 1 > fabric.last:
                usable = sum(
                    1
                    for start in range(fabric.first, fabric.last, 2)
                    if start not in reserved and start + 1 not in reserved
                )
                self.add(
                    "fabric-exhausted",
                    dc.where(),
                    "networks.fabric",
                    fabric.text,
                    f"holds {usable} /31 links besides the core router addresses; "
                    f"{_count(len(pairs) // max(1, len(cores)), 'ToR')} x {_count(len(cores), 'core')} "
                    f"need {len(pairs)}",
                )
                return {}
            out[pair] = (_ip(cursor), _ip(cursor + 1), _cidr(cursor, 31))
            cursor += 2
        return out


__all__ = ["ROLE_ORDER", "Addr", "Net", "Plan", "build_plan", "canonical_json", "pool_prefix"]
