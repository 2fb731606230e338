# -*- coding: utf-8 -*-
# Copyright: cloud58 platform team
# Apache License 2.0
"""Read inventories into a checked model: every rule that needs no derivation.

``read_model`` parses each inventory against the specs of ``schema.py`` into the objects
of ``objects.py`` and checks the rules between objects: references (rack, datacenter,
cluster), duplicates (names, addresses, AS numbers, contexts), containment (host in rack
subnet, VIP in pool), overlaps of every network of the interconnected fabric, the AS
scheme, etcd and Consul member counts, role conflicts and labels. Problems are collected,
never raised here; objects with broken fields are kept with ``None`` in those fields and
later rules skip what they cannot judge, so one mistake is reported once.
"""

from __future__ import annotations

import ipaddress
import re

from ..bgp.options import option_problems
from .errors import did_you_mean, where_text
from .inventory import BGP_OPTIONS_VAR, find_role_group_typos
from .objects import ROLE_ORDER, Cluster, Datacenter, Host, Model, Rack, api_vip_name
from .schema import (
    CLUSTER,
    CLUSTER_ROLES,
    CLUSTERS_VAR,
    DATACENTER,
    DATACENTERS_VAR,
    HOST,
    RACK,
    ROLE_GROUPS,
    Parser,
    is_templated,
    name_problem,
    type_name,
)

_LABEL_NAME_RE = re.compile(r"^([A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?)$")
_LABEL_PREFIX_RE = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")


def read_model(inventories, problems):
    reader = _ModelReader(problems, several=len(inventories) > 1)
    for inventory in inventories:
        reader.read_inventory(inventory)
    reader.check_fabric()
    return reader.model


class _ModelReader:
    def __init__(self, problems, several):
        self.problems = problems
        self.add = problems.add
        self.parser = Parser(problems)
        self.several = several
        self.model = Model()

    def inventory_where(self, inventory):
        return where_text(extra=f"inventory '{inventory.source}'") if self.several else "inventory"

    # ---- one inventory -------------------------------------------------------------------

    def read_inventory(self, inventory):
        if inventory.problems:  # unreadable files: what was read is incomplete, judge nothing else
            self.problems.items.extend(inventory.problems)
            return
        own_racks = {}
        # Hosts whose datacenter or cluster is unknown: member counts (masters, etcd, Consul)
        # cannot be judged while they exist, so those rules wait for the next run.
        self.unplaced = []
        self.orphan_clusters = []  # clusters whose datacenter is unknown
        self.clusterless = {}  # (datacenter, kind) -> hosts that need a cluster and have none
        dcs = self.read_datacenters(inventory, own_racks)
        clusters = self.read_clusters(inventory, dcs)
        options = self.read_bgp_options(inventory, clusters)
        for dc in dcs.values():
            dc.bgp_options = options
        self.check_client_prefixes(inventory, dcs, clusters, options)
        self.read_hosts(inventory, dcs, own_racks, clusters)
        self.report_clusterless()
        for group, suggestion in find_role_group_typos(inventory.groups):
            members = inventory.groups.get(group) or []
            self.add(
                "unknown-group",
                self.inventory_where(inventory),
                f"group {group}",
                members,
                "not a role group; did you mean '{}'? (role groups: {})".format(
                    suggestion, ", ".join(ROLE_GROUPS)
                ),
            )
        for dc in dcs.values():
            self.check_datacenter(dc)
        for cluster in clusters.values():
            self.check_cluster(cluster)

    def read_datacenters(self, inventory, own_racks):
        where = self.inventory_where(inventory)
        raw = inventory.datacenters
        out = {}
        if raw is None:
            self.add(
                "missing-field",
                where,
                DATACENTERS_VAR,
                None,
                "no datacenter is defined (set it in group_vars/all)",
            )
            return out
        if not isinstance(raw, dict):
            self.add(
                "wrong-type",
                where,
                DATACENTERS_VAR,
                raw,
                f"expected a mapping of datacenter name to datacenter, got {type_name(raw)}",
            )
            return out
        if not raw:
            self.add("missing-field", where, DATACENTERS_VAR, raw, "no datacenter is defined")
        for key in sorted(raw, key=str):
            name = str(key)
            why = name_problem(name)
            if why:
                self.add("invalid-name", where, f"{DATACENTERS_VAR} key", name, why)
                continue
            if name in self.model.datacenters:
                other = self.model.datacenters[name]
                self.add(
                    "duplicate-datacenter",
                    where_text(datacenter=name),
                    "name",
                    name,
                    f"defined in inventory '{other.source}' and in inventory '{inventory.source}'",
                )
                continue
            dc_where = where_text(datacenter=name)
            spec = self.parser.parse(DATACENTER, raw[key], dc_where)
            if spec is None:
                continue
            dc = Datacenter()
            dc.name = name
            dc.source = inventory.source
            dc.region = spec["region"]
            dc.consul_datacenter = spec["consul_datacenter"] or name
            dc.networks = spec["networks"] or {}
            dc.bgp = spec["bgp"] or {}
            dc.lvs = spec["lvs"] or {}
            dc.racks = {}
            dc.hosts = []
            dc.clusters = []
            dc.has_inventory_hosts = True
            if spec["racks"] == {}:
                self.add("missing-field", dc_where, "racks", {}, "a datacenter needs at least one rack")
            for rack_name in sorted(spec["racks"] or {}):
                self.read_rack(dc, rack_name, spec["racks"][rack_name], own_racks)
            out[name] = dc
            self.model.datacenters[name] = dc
        return out

    def read_bgp_options(self, inventory, clusters):
        """The inventory's BGP options over the defaults; every bad key is a problem of its own."""
        where = self.inventory_where(inventory)
        raw = self.mapping_var(where, BGP_OPTIONS_VAR, inventory.bgp_options, "BGP option to value") or {}
        literal = {}
        for key, value in raw.items():
            if is_templated(value):
                self.add(
                    "templated-value",
                    where,
                    f"{BGP_OPTIONS_VAR}.{key}",
                    value,
                    "the planner needs a literal value, not a Jinja expression",
                )
            else:
                literal[key] = value
        options, problems = option_problems(literal)
        for problem in problems:
            self.add(problem.kind, where, f"{BGP_OPTIONS_VAR}.{problem.key}", problem.value, problem.reason)
        reservations = options["fixed_ip_reservations"]
        for name in sorted(reservations, key=str):
            if name not in clusters:
                known = sorted(clusters)
                self.add(
                    "unknown-cluster",
                    where,
                    f"{BGP_OPTIONS_VAR}.fixed_ip_reservations key",
                    name,
                    "no such cluster in this inventory{} (known: {})".format(
                        did_you_mean(name, known), ", ".join(known) or "none"
                    ),
                )
        return options

    def check_client_prefixes(self, inventory, dcs, clusters, options):
        """Clients behind the cores (``client_prefixes``) lie outside every datacenter of the
        inventory: a prefix inside one of its ranges would send that range to the cores."""
        ranges = _datacenter_ranges(dcs.values(), clusters.values())
        for index, text in enumerate(options["client_prefixes"]):
            prefix = ipaddress.ip_network(text)
            if prefix.version != 4:
                self.add(
                    "malformed-cidr",
                    self.inventory_where(inventory),
                    f"{BGP_OPTIONS_VAR}.client_prefixes[{index}]",
                    text,
                    "not an IPv4 prefix; the fabric's prefix filters are IPv4",
                )
                continue
            first, last = int(prefix.network_address), int(prefix.broadcast_address)
            for net, where, field in ranges:
                if net.first <= first and last <= net.last:
                    self.add(
                        "subnet-overlap",
                        self.inventory_where(inventory),
                        f"{BGP_OPTIONS_VAR}.client_prefixes[{index}]",
                        text,
                        f"inside {where} {field} {net.text}; clients behind the core routers are "
                        "outside the datacenters",
                    )

    def read_rack(self, dc, name, raw, own_racks):
        why = name_problem(name)
        if why:
            self.add("invalid-name", dc.where(), "racks key", name, why)
            return
        if name in self.model.racks:
            other = self.model.racks[name]
            self.add(
                "duplicate-rack",
                where_text(datacenter=dc.name, rack=name),
                "name",
                name,
                f"rack names are unique in the fabric; also defined in datacenter '{other.dc.name}'",
            )
            return
        rack = Rack()
        rack.name = name
        rack.dc = dc
        rack.hosts = []
        spec = self.parser.parse(RACK, raw, rack.where())
        if spec is None:
            spec = {"node_subnet": None, "node_asn": None, "tors": None}
        rack.node_subnet = spec["node_subnet"]
        rack.node_asn = spec["node_asn"]
        rack.tors = [t for t in (spec["tors"] or []) if t is not None]
        dc.racks[name] = rack
        own_racks[name] = rack
        self.model.racks[name] = rack

    def mapping_var(self, where, variable, raw, what):
        """An optional group_vars/all mapping: {} when undefined, None (reported) when not a mapping."""
        if raw is None:
            return {}
        if not isinstance(raw, dict):
            self.add(
                "wrong-type", where, variable, raw, f"expected a mapping of {what}, got {type_name(raw)}"
            )
            return None
        return raw

    def read_clusters(self, inventory, dcs):
        where = self.inventory_where(inventory)
        raw = self.mapping_var(where, CLUSTERS_VAR, inventory.clusters, "cluster name to cluster")
        out = {}
        if raw is None:
            return out
        for key in sorted(raw, key=str):
            name = str(key)
            why = name_problem(name)
            if why:
                self.add("invalid-name", where, f"{CLUSTERS_VAR} key", name, why)
                continue
            if name in self.model.clusters:
                other = self.model.clusters[name]
                self.add(
                    "duplicate-cluster",
                    where_text(cluster=name),
                    "name",
                    name,
                    f"defined in inventory '{other.source}' and in inventory '{inventory.source}'",
                )
                continue
            body = raw[key]
            dc_name = body.get("datacenter") if isinstance(body, dict) else None
            dc = dcs.get(dc_name) if isinstance(dc_name, str) else None
            cluster_where = where_text(datacenter=dc_name if dc else None, cluster=name)
            spec = self.parser.parse(CLUSTER, body, cluster_where)
            if spec is None:
                continue
            if dc is None:
                self.orphan_clusters.append(name)
            if spec["datacenter"] is not None and dc is None and dcs:  # no datacenter at all: reported
                known = sorted(dcs) or sorted(self.model.datacenters)
                self.add(
                    "unknown-datacenter",
                    cluster_where,
                    "datacenter",
                    spec["datacenter"],
                    "no such datacenter in this inventory{} (known: {})".format(
                        did_you_mean(spec["datacenter"], known), ", ".join(known) or "none"
                    ),
                )
            cluster = Cluster()
            cluster.name = name
            cluster.source = inventory.source
            cluster.dc = dc
            cluster.dc_name = dc.name if dc else None
            cluster.context = spec["context"]
            cluster.api = spec["api"] or {}
            cluster.pod_cidr = spec["pod_cidr"]
            cluster.service_cidr = spec["service_cidr"]
            cluster.pod_block_size = spec["pod_block_size"]
            cluster.max_pods = spec["max_pods"]
            cluster.pool_headroom_percent = spec["pool_headroom_percent"]
            cluster.lab_overrides = spec["lab_overrides"] or {}
            cluster.masters = []
            cluster.minions = []
            cluster.events = []
            if dc is not None:
                dc.clusters.append(cluster)
            out[name] = cluster
            self.model.clusters[name] = cluster
        return out

    def read_hosts(self, inventory, dcs, own_racks, clusters):
        where = self.inventory_where(inventory)
        roles_of = {}
        for group, role in ROLE_GROUPS.items():
            for host in inventory.groups.get(group) or []:
                roles_of.setdefault(host, []).append(role)
        if not roles_of:
            self.unplaced.append(None)  # no member count can be judged either
            for dc in dcs.values():
                dc.has_inventory_hosts = False
            self.add(
                "no-hosts",
                where,
                "groups",
                sorted(inventory.groups),
                "no host is in any role group ({})".format(", ".join(ROLE_GROUPS)),
            )
        for name in sorted(roles_of):
            roles = sorted(set(roles_of[name]), key=ROLE_ORDER.index)
            if name in self.model.hosts:
                other = self.model.hosts[name]
                self.add(
                    "duplicate-host",
                    where_text(host=name),
                    "name",
                    name,
                    f"in inventory '{other.source}' and in inventory '{inventory.source}'",
                )
                continue
            raw = inventory.hosts.get(name) or {}
            host = Host()
            host.name = name
            host.source = inventory.source
            host.roles = roles
            host.rack = None
            host.dc = None
            rack_name = raw.get("rack")
            if isinstance(rack_name, str) and rack_name in own_racks:
                host.rack = own_racks[rack_name]
                host.dc = host.rack.dc
            why = name_problem(name)
            if why:  # the host name becomes the node name, an etcd member and a certificate SAN
                self.add("invalid-name", host.where(), "name", name, why)
            spec = self.parser.parse(HOST, raw, host.where())
            host.address = spec["address"]
            host.labels = spec["labels"]
            host.cluster_name = spec["cluster"]
            host.cluster = None
            if spec["rack"] is not None and host.rack is None and own_racks:
                known = sorted(own_racks)
                self.add(
                    "unknown-rack",
                    host.where(),
                    "rack",
                    spec["rack"],
                    "no such rack in this inventory{}".format(did_you_mean(spec["rack"], known)),
                )
            self.model.hosts[name] = host
            if host.rack is None:
                self.unplaced.append(name)
                continue
            host.rack.hosts.append(host)
            host.dc.hosts.append(host)
            self.check_host(host)

    # ---- rules of one object -------------------------------------------------------------

    def check_host(self, host):
        add = self.add
        rack = host.rack
        subnet = rack.node_subnet
        if host.address is not None and subnet is not None:
            value = host.address.value
            if not subnet.first <= value <= subnet.last:
                add(
                    "host-outside-rack",
                    host.where(),
                    "address",
                    host.address.text,
                    f"outside the rack's node subnet {subnet.text}",
                )
            elif subnet.prefix <= 30 and value in (subnet.first, subnet.last):
                add(
                    "reserved-address",
                    host.where(),
                    "address",
                    host.address.text,
                    "is the {} address of the rack's node subnet {}".format(
                        "network" if value == subnet.first else "broadcast", subnet.text
                    ),
                )
        # role conflicts
        roles = set(host.roles)
        if "master" in roles and "minion" in roles:
            add(
                "role-conflict",
                host.where(),
                "groups",
                ["masters", "minions"],
                "a host is a master or a minion, not both",
            )
        if "lvs" in roles and roles & {"master", "minion", "etcd_events"}:
            others = [g for g, r in ROLE_GROUPS.items() if r in roles and r != "lvs"]
            add(
                "role-conflict",
                host.where(),
                "groups",
                ["lvs", *others],
                "an LVS director runs no Kubernetes or etcd workload; remove it from {}".format(
                    ", ".join(others)
                ),
            )
        # cluster membership
        dc = host.dc
        needs_cluster = bool(roles & set(CLUSTER_ROLES))
        if host.cluster_name is not None:
            cluster = self.model.clusters.get(host.cluster_name)
            if cluster is None or cluster.dc is not dc:
                known = sorted(c.name for c in dc.clusters)
                add(
                    "unknown-cluster",
                    host.where(),
                    "cluster",
                    host.cluster_name,
                    "no such cluster in datacenter '{}'{} (known: {})".format(
                        dc.name, did_you_mean(host.cluster_name, known), ", ".join(known) or "none"
                    ),
                )
            elif needs_cluster:
                host.cluster = cluster
        elif needs_cluster:
            if len(dc.clusters) == 1:
                host.cluster = dc.clusters[0]
            else:  # reported once per datacenter by report_clusterless
                kind = "ambiguous-cluster" if dc.clusters else "no-cluster"
                self.clusterless.setdefault((dc.name, kind), []).append(host.name)
        if needs_cluster and host.cluster is None:
            self.unplaced.append(host.name)
        if host.cluster is not None:
            if "master" in roles:
                host.cluster.masters.append(host)
            if "minion" in roles:
                host.cluster.minions.append(host)
            if "etcd_events" in roles:
                host.cluster.events.append(host)
        self.check_labels(host)

    def report_clusterless(self):
        for (dc_name, kind), hosts in sorted(self.clusterless.items()):
            dc = self.model.datacenters[dc_name]
            if kind == "ambiguous-cluster":
                self.add(
                    kind,
                    dc.where(),
                    "cluster",
                    sorted(hosts),
                    "the datacenter has several clusters ({}); these hosts must set their cluster".format(
                        ", ".join(sorted(c.name for c in dc.clusters))
                    ),
                )
            elif not self.orphan_clusters:  # else the cluster's wrong datacenter is the problem
                self.add(
                    kind,
                    dc.where(),
                    CLUSTERS_VAR,
                    sorted(hosts),
                    "these hosts are in masters, minions or etcd_events but no cluster of "
                    f"{CLUSTERS_VAR} is in datacenter '{dc.name}'",
                )

    def check_labels(self, host):
        labels = host.labels
        if labels is None:
            return
        for key in sorted(labels, key=str):
            value = labels[key]
            field = f"labels.{key}"
            if not isinstance(key, str) or not _valid_label_key(key):
                self.add(
                    "invalid-label",
                    host.where(),
                    field,
                    key,
                    "not a valid label key: [prefix/]name, name up to 63 of A-Z a-z 0-9 - _ . "
                    "starting and ending alphanumeric",
                )
                continue
            if not isinstance(value, str):
                self.add(
                    "invalid-label",
                    host.where(),
                    field,
                    value,
                    f"label values are strings, got {type_name(value)}",
                )
                continue
            if len(value) > 63 or (value and not _LABEL_NAME_RE.match(value)):
                self.add(
                    "invalid-label",
                    host.where(),
                    field,
                    value,
                    "not a valid label value: up to 63 of A-Z a-z 0-9 - _ . starting and ending alphanumeric",
                )
                continue
            if key == "rack" and value != host.rack.name:
                self.add(
                    "label-conflict",
                    host.where(),
                    field,
                    value,
                    f"disagrees with the host's rack '{host.rack.name}' "
                    "(the planner sets this label; drop it)",
                )

    def check_datacenter(self, dc):
        add = self.add
        nets = dc.networks
        nodes = nets.get("nodes")
        fabric = nets.get("fabric")
        for rack in dc.racks.values():
            subnet = rack.node_subnet
            if (
                subnet is not None
                and nodes is not None
                and not (nodes.first <= subnet.first and subnet.last <= nodes.last)
            ):
                add(
                    "subnet-outside-network",
                    rack.where(),
                    "node_subnet",
                    subnet.text,
                    f"outside the datacenter's networks.nodes {nodes.text}",
                )
            if len(rack.tors) != 2:
                add(
                    "tor-count",
                    rack.where(),
                    "tors",
                    [t["name"] for t in rack.tors],
                    f"a rack needs exactly two ToR routers, found {len(rack.tors)}",
                )
            for index, tor in enumerate(rack.tors):
                address = tor["address"]
                if address is None or subnet is None:
                    continue
                if not subnet.first <= address.value <= subnet.last:
                    add(
                        "router-outside-network",
                        rack.where(),
                        f"tors[{index}].address",
                        address.text,
                        "ToR '{}' is outside the rack's node subnet {}".format(tor["name"], subnet.text),
                    )
                elif subnet.prefix <= 30 and address.value in (subnet.first, subnet.last):
                    add(
                        "reserved-address",
                        rack.where(),
                        f"tors[{index}].address",
                        address.text,
                        "ToR '{}' uses the {} address of the rack's node subnet {}".format(
                            tor["name"],
                            "network" if address.value == subnet.first else "broadcast",
                            subnet.text,
                        ),
                    )
            self.check_rack_scheme(dc, rack)
        for index, core in enumerate(dc.bgp.get("core_routers") or []):
            if core is None or core["address"] is None or fabric is None:
                continue
            if not fabric.first <= core["address"].value <= fabric.last:
                add(
                    "router-outside-network",
                    dc.where(),
                    f"bgp.core_routers[{index}].address",
                    core["address"].text,
                    "core router '{}' is outside networks.fabric {}".format(core["name"], fabric.text),
                )
        if not dc.hosts:
            if dc.has_inventory_hosts and dc.racks:
                add(
                    "no-hosts",
                    dc.where(),
                    "hosts",
                    [],
                    "no host of any role group is in one of this datacenter's racks",
                )
            return
        self.check_vips(dc)
        consul = [h for h in dc.hosts if "consul_server" in h.roles]
        if not self.unplaced and (not consul or len(consul) % 2 == 0):
            add(
                "consul-server-count",
                dc.where(),
                "consul_servers",
                [h.name for h in consul],
                f"Consul needs an odd number of servers (1, 3 or 5) in each datacenter, found {len(consul)}",
            )

    def check_rack_scheme(self, dc, rack):
        mode = dc.bgp.get("mode")
        if rack.node_asn is None or mode is None:
            return
        for index, tor in enumerate(rack.tors):
            if tor["asn"] is None:
                continue
            if mode == "ebgp" and tor["asn"] == rack.node_asn:
                self.add(
                    "asn-scheme",
                    rack.where(),
                    f"tors[{index}].asn",
                    tor["asn"],
                    "ToR '{}' has the rack's node_asn; in bgp.mode ebgp ToRs need an AS of their own "
                    "(or use bgp.mode route_reflector)".format(tor["name"]),
                )
            elif mode == "route_reflector" and tor["asn"] != rack.node_asn:
                self.add(
                    "asn-scheme",
                    rack.where(),
                    f"tors[{index}].asn",
                    tor["asn"],
                    "ToR '{}' must share the rack's node_asn {} in bgp.mode route_reflector".format(
                        tor["name"], rack.node_asn
                    ),
                )

    def check_vips(self, dc):
        add = self.add
        pool = dc.networks.get("vip_pool")
        vips = []  # (name, address, where, name field, address field)
        for index, vip in enumerate(dc.lvs.get("vips") or []):
            if vip is not None and vip["name"] is not None and vip["address"] is not None:
                vips.append(
                    (
                        vip["name"],
                        vip["address"],
                        dc.where(),
                        f"lvs.vips[{index}].name",
                        f"lvs.vips[{index}].address",
                    )
                )
        for cluster in dc.clusters:
            if cluster.api.get("vip") is not None:
                vips.append(
                    (api_vip_name(cluster.name), cluster.api["vip"], cluster.where(), "name", "api.vip")
                )
        seen_names = {}
        seen_addresses = {}
        for name, address, where, name_field, field in vips:
            if pool is not None and not pool.first <= address.value <= pool.last:
                add(
                    "vip-outside-pool",
                    where,
                    field,
                    address.text,
                    f"VIP '{name}' is outside networks.vip_pool {pool.text}",
                )
            if name in seen_names:
                add(
                    "duplicate-vip",
                    where,
                    name_field,
                    name,
                    "VIP name also used by {} {}".format(*seen_names[name]),
                )
            else:
                seen_names[name] = (where, name_field)
            if address.value in seen_addresses:
                other_name, other_where, other_field = seen_addresses[address.value]
                add(
                    "duplicate-vip",
                    where,
                    field,
                    address.text,
                    f"VIP '{name}' has the address of VIP '{other_name}' ({other_where} {other_field})",
                )
            else:
                seen_addresses[address.value] = (name, where, field)
        directors = [h for h in dc.hosts if "lvs" in h.roles]
        if vips and not directors:
            add(
                "no-directors",
                dc.where(),
                "lvs",
                sorted(v[0] for v in vips),
                "the datacenter has VIPs but no host of group lvs is in its racks",
            )
        per_vip = dc.lvs.get("directors_per_vip")
        if per_vip is not None and directors and per_vip > len(directors):
            add(
                "directors-per-vip",
                dc.where(),
                "lvs.directors_per_vip",
                per_vip,
                "only {} director{} in the datacenter ({})".format(
                    len(directors),
                    "" if len(directors) == 1 else "s",
                    ", ".join(sorted(h.name for h in directors)),
                ),
            )

    def check_cluster(self, cluster):
        add = self.add
        where = cluster.where()
        block = cluster.pod_block_size
        pods = cluster.pod_cidr
        if block is not None and cluster.max_pods is not None and 2 ** (32 - block) < cluster.max_pods:
            add(
                "pod-block-too-small",
                where,
                "pod_block_size",
                block,
                f"a /{block} block holds {2 ** (32 - block)} addresses, fewer than max_pods "
                f"{cluster.max_pods}; use /{32 - (cluster.max_pods - 1).bit_length()} or less",
            )
        if block is not None and pods is not None and block < pods.prefix:
            add(
                "subnet-outside-network",
                where,
                "pod_block_size",
                block,
                f"a /{block} pod block does not fit in pod_cidr {pods.text}",
            )
        services = cluster.service_cidr
        if services is not None and not 12 <= services.prefix <= 28:
            add(
                "service-cidr-size",
                where,
                "service_cidr",
                services.text,
                "Kubernetes accepts a service CIDR from a /12 to a /28",
            )
        if cluster.dc is None or self.unplaced:
            return
        overrides = cluster.lab_overrides
        masters = sorted(h.name for h in cluster.masters)
        if not masters:
            add("too-few-masters", where, "masters", masters, "the cluster has no master (group masters)")
        else:
            if len(masters) < 3 and not overrides.get("allow_fewer_than_3_masters"):
                add(
                    "too-few-masters",
                    where,
                    "masters",
                    masters,
                    "{} master{}; a cluster needs 3 (or lab_overrides.allow_fewer_than_3_masters)".format(
                        len(masters), "" if len(masters) == 1 else "s"
                    ),
                )
            if len(masters) % 2 == 0:
                add(
                    "even-etcd-members",
                    where,
                    "masters",
                    masters,
                    f"etcd runs on the masters and needs an odd number of members, found {len(masters)}",
                )
        events = sorted(h.name for h in cluster.events)
        if not events:
            add(
                "no-events-etcd",
                where,
                "etcd_events",
                events,
                "no host of group etcd_events is in this cluster (put the masters there too with "
                "lab_overrides.events_etcd_on_masters in a lab)",
            )
        elif len(events) % 2 == 0:
            add(
                "even-etcd-members",
                where,
                "etcd_events",
                events,
                f"the events etcd needs an odd number of members, found {len(events)}",
            )
        both = sorted(set(masters) & set(events))
        if both and not overrides.get("events_etcd_on_masters"):
            add(
                "role-conflict",
                where,
                "etcd_events",
                both,
                "masters are also events-etcd members; give the events etcd its own hosts "
                "(or lab_overrides.events_etcd_on_masters in a lab)",
            )

    # ---- rules across the fabric ---------------------------------------------------------

    def check_fabric(self):
        self.check_overlaps()
        self.check_duplicate_addresses()
        self.check_duplicate_asns()
        self.check_duplicate_names()

    def check_overlaps(self):
        top = _datacenter_ranges(self.model.datacenters.values(), self.model.clusters.values())
        racks = []
        for dc in self.model.datacenters.values():
            for rack in dc.racks.values():
                if rack.node_subnet is not None:
                    racks.append((rack.node_subnet, rack.where(), "node_subnet"))
        for items in (top, racks):
            for (net, where, field), (other, other_where, other_field) in _overlapping_pairs(items):
                self.add(
                    "subnet-overlap",
                    where,
                    field,
                    net.text,
                    f"overlaps {other_where} {other_field} {other.text}",
                )

    def check_duplicate_addresses(self):
        seen = {}
        entries = []
        for dc in self.model.datacenters.values():
            for rack in dc.racks.values():
                for index, tor in enumerate(rack.tors):
                    if tor["address"] is not None:
                        entries.append(
                            (
                                tor["address"],
                                rack.where(),
                                f"tors[{index}].address",
                                "ToR '{}'".format(tor["name"]),
                            )
                        )
            for index, core in enumerate(dc.bgp.get("core_routers") or []):
                if core is not None and core["address"] is not None:
                    entries.append(
                        (
                            core["address"],
                            dc.where(),
                            f"bgp.core_routers[{index}].address",
                            "core router '{}'".format(core["name"]),
                        )
                    )
        for host in self.model.hosts.values():
            if host.address is not None:
                entries.append((host.address, host.where(), "address", None))
        for address, where, field, what in entries:
            if address.value in seen:
                other_where, other_field, other_what = seen[address.value]
                self.add(
                    "duplicate-address",
                    where,
                    field,
                    address.text,
                    f"already the address of {other_where} {other_field}"
                    + (f" ({other_what})" if other_what else ""),
                )
            else:
                seen[address.value] = (where, field, what)

    def check_duplicate_asns(self):
        owners = {}  # asn -> (owner key, where, field)
        for dc in self.model.datacenters.values():
            uses = []
            core_asn = dc.bgp.get("core_asn")
            if core_asn is not None:
                uses.append((core_asn, (dc.name, None), dc.where(), "bgp.core_asn"))
            for rack in dc.racks.values():
                if rack.node_asn is not None:
                    uses.append((rack.node_asn, (dc.name, rack.name), rack.where(), "node_asn"))
                for index, tor in enumerate(rack.tors):
                    if tor["asn"] is not None:
                        uses.append((tor["asn"], (dc.name, rack.name), rack.where(), f"tors[{index}].asn"))
            for asn, owner, where, field in uses:
                if asn not in owners:
                    owners[asn] = (owner, where, field)
                    continue
                other_owner, other_where, other_field = owners[asn]
                if other_owner == owner:
                    continue  # within one rack: the AS scheme rule judges it
                self.add(
                    "duplicate-asn",
                    where,
                    field,
                    asn,
                    f"AS {asn} is already used by {other_where} {other_field}",
                )

    def check_duplicate_names(self):
        routers = {}
        consul = {}
        contexts = {}
        endpoints = {}
        for dc in self.model.datacenters.values():
            named = [
                (t["name"], rack.where(), f"tors[{i}].name")
                for rack in dc.racks.values()
                for i, t in enumerate(rack.tors)
            ]
            named += [
                (c["name"], dc.where(), f"bgp.core_routers[{i}].name")
                for i, c in enumerate(dc.bgp.get("core_routers") or [])
                if c
            ]
            for name, where, field in named:
                if name is None:
                    continue
                if name in routers:
                    self.add(
                        "duplicate-router",
                        where,
                        field,
                        name,
                        "router name also used by {} {}".format(*routers[name]),
                    )
                else:
                    routers[name] = (where, field)
            if dc.consul_datacenter in consul:
                self.add(
                    "duplicate-consul-datacenter",
                    dc.where(),
                    "consul_datacenter",
                    dc.consul_datacenter,
                    f"also the Consul datacenter of datacenter '{consul[dc.consul_datacenter]}'",
                )
            else:
                consul[dc.consul_datacenter] = dc.name
        for cluster in sorted(self.model.clusters.values(), key=lambda c: c.name):
            if cluster.context is not None:
                if cluster.context in contexts:
                    self.add(
                        "duplicate-context",
                        cluster.where(),
                        "context",
                        cluster.context,
                        f"also the context of cluster '{contexts[cluster.context]}'; "
                        "reconcile would write one cluster's objects into the other",
                    )
                else:
                    contexts[cluster.context] = cluster.name
            for field in ("vip", "dns_name"):
                value = cluster.api.get(field)
                if value is None:
                    continue
                key = (field, value.text if field == "vip" else value)
                if key in endpoints:
                    self.add(
                        "duplicate-api-endpoint",
                        cluster.where(),
                        f"api.{field}",
                        key[1],
                        f"also the api.{field} of cluster '{endpoints[key]}'",
                    )
                else:
                    endpoints[key] = cluster.name


def _datacenter_ranges(datacenters, clusters):
    """(net, where, field) of every datacenter-wide range: the datacenters' networks and the
    clusters' pod and service CIDRs."""
    ranges = []
    for dc in datacenters:
        for field in ("nodes", "fabric", "vip_pool", "local_address_pool"):
            net = dc.networks.get(field)
            if net is not None:
                ranges.append((net, dc.where(), f"networks.{field}"))
    for cluster in clusters:
        for field in ("pod_cidr", "service_cidr"):
            net = getattr(cluster, field)
            if net is not None:
                ranges.append((net, cluster.where(), field))
    return ranges


def _overlapping_pairs(items):
    """Pairs of (net, where, field) items whose ranges intersect; the later one first."""
    ordered = sorted(items, key=lambda i: (i[0].first, -i[0].last, i[1], i[2]))
    active = []
    pairs = []
    for item in ordered:
        net = item[0]
        active = [a for a in active if a[0].last >= net.first]
        for other in active:
            pairs.append((item, other))
        active.append(item)
    return pairs


def _valid_label_key(key):
    if "/" in key:
        prefix, name = key.split("/", 1)
        if not prefix or len(prefix) > 253 or not _LABEL_PREFIX_RE.match(prefix):
            return False
    else:
        name = key
    return 0 < len(name) <= 63 and bool(_LABEL_NAME_RE.match(name))


__all__ = ["read_model"]
