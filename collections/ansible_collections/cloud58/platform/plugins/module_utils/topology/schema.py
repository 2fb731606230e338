# -*- coding: utf-8 -*-
# Copyright: cloud58 platform team
# Apache License 2.0
"""The inventory model: every field the planner reads, its type, default and meaning.

The specs below are the single source of truth for the inventory format. ``parse`` checks a
raw value against a spec (types, ranges, names, CIDRs, unknown fields with a did-you-mean)
and returns plain dicts with defaults filled in; ``model_markdown`` renders the field tables
of ``docs/inventory.md`` (a unit test keeps the two in step).

Parsed addresses and networks are :class:`Addr` and :class:`Net` tuples: the planner does
its arithmetic on integers, netaddr only parses and formats.
"""

from __future__ import annotations

import re
from collections import namedtuple

from .errors import did_you_mean

try:
    import netaddr

    HAS_NETADDR = True
    NETADDR_IMPORT_ERROR = None
except ImportError as exc:  # pragma: no cover - exercised only without netaddr
    netaddr = None
    HAS_NETADDR = False
    NETADDR_IMPORT_ERROR = exc

NETADDR_MISSING = (
    "the cloud58 topology planner needs the Python library netaddr on the Ansible controller: "
    "pip install netaddr (or apt-get install python3-netaddr)"
)

# The variables an inventory defines for the planner. Datacenter-level ones live in
# group_vars/all; host-level ones anywhere Ansible puts host variables.
DATACENTERS_VAR = "cloud58_datacenters"
CLUSTERS_VAR = "cloud58_clusters"

# The role groups of hosts.yml, and the role each one gives a host in the plan.
ROLE_GROUPS = {
    "masters": "master",
    "etcd_events": "etcd_events",
    "minions": "minion",
    "lvs": "lvs",
    "consul_servers": "consul_server",
}
# Groups whose hosts are Kubernetes nodes of a cluster (run a kubelet, get a pod pool).
NODE_ROLES = ("master", "minion")
# Roles that belong to a cluster (and so need one).
CLUSTER_ROLES = ("master", "minion", "etcd_events")

Addr = namedtuple("Addr", "text value")
Net = namedtuple("Net", "text first last prefix")

_NAME_RE = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
_DNS_RE = re.compile(r"^(?=.{1,253}$)[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
# AS numbers that are never usable on a session: 0, AS_TRANS, the last 16-bit and 32-bit
# values, and the ranges reserved for documentation (RFC 5398).
_RESERVED_ASNS = (
    (0, 0, "AS 0 is reserved (RFC 7607)"),
    (23456, 23456, "AS 23456 is AS_TRANS (RFC 6793)"),
    (64496, 64511, "64496-64511 are reserved for documentation (RFC 5398)"),
    (65535, 65535, "AS 65535 is reserved (RFC 7300)"),
    (65536, 65551, "65536-65551 are reserved for documentation (RFC 5398)"),
    (4294967295, 4294967295, "AS 4294967295 is reserved (RFC 7300)"),
)
_MAX_ASN = 4294967295


class Field:
    """One field of a spec: how to check it and how the docs describe it."""

    __slots__ = ("choices", "default", "doc", "kind", "maximum", "minimum", "name", "required", "spec")

    def __init__(
        self,
        name,
        kind,
        doc,
        *,
        required=False,
        default=None,
        choices=None,
        minimum=None,
        maximum=None,
        spec=None,
    ):
        self.name = name
        self.kind = kind
        self.doc = doc
        self.required = required
        self.default = default
        self.choices = choices
        self.minimum = minimum
        self.maximum = maximum
        self.spec = spec


class Spec:
    """A named set of fields (one kind of object in the inventory)."""

    def __init__(self, title, fields, doc=""):
        self.title = title
        self.doc = doc
        self.fields = {f.name: f for f in fields}


# ---- the specs --------------------------------------------------------------------------

CORE_ROUTER = Spec(
    "core router",
    [
        Field("name", "name", "Router name, unique in the whole fabric.", required=True),
        Field(
            "address",
            "ipv4",
            "Loopback / router-id, inside `networks.fabric`; other datacenters' cores peer with it.",
            required=True,
        ),
    ],
)

TOR = Spec(
    "ToR router",
    [
        Field("name", "name", "Router name, unique in the whole fabric.", required=True),
        Field(
            "address",
            "ipv4",
            "Address inside the rack's node subnet; the rack's hosts peer with it.",
            required=True,
        ),
        Field(
            "asn",
            "asn",
            "AS number of this ToR. Both ToRs of a rack may share one. In `route_reflector` mode "
            "it equals the rack's `node_asn`.",
            required=True,
        ),
    ],
)

RACK = Spec(
    "rack",
    [
        Field("node_subnet", "cidr", "The rack's host subnet, inside `networks.nodes`.", required=True),
        Field("node_asn", "asn", "AS number every host of the rack speaks BGP with.", required=True),
        Field("tors", "list", "Exactly two ToR routers.", required=True, spec=TOR),
    ],
)

NETWORKS = Spec(
    "datacenter networks",
    [
        Field("nodes", "cidr", "Summary of every rack's node subnet.", required=True),
        Field(
            "fabric",
            "cidr",
            "Core router addresses and the /31 ToR-to-core links the planner derives.",
            required=True,
        ),
        Field(
            "vip_pool", "cidr", "Every VIP of the datacenter (API VIPs included) lies here.", required=True
        ),
        Field(
            "local_address_pool",
            "cidr",
            "LVS full-NAT local addresses, split into one range per director.",
            required=True,
        ),
    ],
)

BGP = Spec(
    "datacenter BGP scheme",
    [
        Field(
            "mode",
            "choice",
            "`ebgp`: hosts of a rack share the rack's AS and peer by eBGP with ToRs of another AS. "
            "`route_reflector`: hosts and ToRs share the rack's AS, the ToRs reflect routes (iBGP).",
            default="ebgp",
            choices=("ebgp", "route_reflector"),
        ),
        Field("core_asn", "asn", "AS number of the datacenter's core / spine routers.", required=True),
        Field(
            "core_routers",
            "list",
            "The core / spine routers every ToR peers with.",
            required=True,
            spec=CORE_ROUTER,
        ),
    ],
)

VIP = Spec(
    "VIP",
    [
        Field("name", "name", "VIP name, unique in the datacenter.", required=True),
        Field("address", "ipv4", "Address inside `networks.vip_pool`.", required=True),
        Field("ports", "ports", "TCP ports the directors serve on it.", default=[80, 443]),
    ],
)

LVS = Spec(
    "datacenter LVS",
    [
        Field(
            "vips",
            "list",
            "Service VIPs besides the clusters' API VIPs (which are added by the planner).",
            default=[],
            spec=VIP,
        ),
        Field(
            "local_addresses_per_director",
            "int",
            "Full-NAT local addresses each director gets from `networks.local_address_pool`.",
            default=8,
            minimum=1,
            maximum=65536,
        ),
        Field(
            "directors_per_vip",
            "int",
            "How many directors announce each VIP (chosen by rendezvous hashing); null: all of them.",
            default=None,
            minimum=1,
            maximum=1024,
        ),
    ],
)

DATACENTER = Spec(
    "datacenter",
    [
        Field(
            "region",
            "name",
            "Region the datacenter is in (a node label and a picture caption).",
            required=True,
        ),
        Field(
            "consul_datacenter",
            "name",
            "Consul datacenter name, unique across the fabric; defaults to the datacenter name.",
        ),
        Field("networks", "object", "Address plan of the datacenter.", required=True, spec=NETWORKS),
        Field("bgp", "object", "AS scheme of the datacenter.", required=True, spec=BGP),
        Field("racks", "map", "Racks by name (unique in the whole fabric).", required=True, spec=RACK),
        Field("lvs", "object", "LVS directors' settings.", default={}, spec=LVS),
    ],
)

API = Spec(
    "cluster API endpoint",
    [
        Field("vip", "ipv4", "API VIP, inside the datacenter's `networks.vip_pool`.", required=True),
        Field(
            "dns_name",
            "dns",
            "DNS name of the API; kubeconfigs use https://<dns_name>:<port>.",
            required=True,
        ),
        Field(
            "port", "int", "API port on the VIP and on the masters.", default=6443, minimum=1, maximum=65535
        ),
    ],
)

LAB_OVERRIDES = Spec(
    "cluster lab overrides",
    [
        Field(
            "allow_fewer_than_3_masters",
            "bool",
            "Accept 1 master (the member count must still be odd). For labs only.",
            default=False,
        ),
        Field(
            "events_etcd_on_masters",
            "bool",
            "Let masters also be in `etcd_events` (events etcd then shares their disks). For labs only.",
            default=False,
        ),
    ],
)

CLUSTER = Spec(
    "cluster",
    [
        Field("datacenter", "name", "Datacenter the cluster runs in.", required=True),
        Field(
            "context",
            "text",
            "kubectl context that reaches this cluster, unique across clusters.",
            required=True,
        ),
        Field("api", "object", "API endpoint.", required=True, spec=API),
        Field("pod_cidr", "cidr", "Pod network; the planner carves per-rack pools out of it.", required=True),
        Field("service_cidr", "cidr", "Service network (a /12 to a /28).", required=True),
        Field(
            "pod_block_size",
            "int",
            "Prefix length of the pod block a node gets (Calico blockSize); holds at least max_pods.",
            default=24,
            minimum=20,
            maximum=32,
        ),
        Field("max_pods", "int", "Pods per node (kubelet maxPods).", default=110, minimum=1, maximum=2048),
        Field(
            "pool_headroom_percent",
            "int",
            "Extra nodes a rack's pod pool leaves room for, in percent of its current nodes.",
            default=50,
            minimum=0,
            maximum=1000,
        ),
        Field("lab_overrides", "object", "Relaxations for labs.", default={}, spec=LAB_OVERRIDES),
    ],
)

HOST = Spec(
    "host",
    [
        Field("rack", "name", "Rack the host is in.", required=True),
        Field(
            "address", "ipv4", "Node address inside the rack's subnet (BGP, kubelet, etcd).", required=True
        ),
        Field(
            "labels",
            "labels",
            "Node labels: `function` (defaults to the host's first role), `location` (defaults to "
            "the datacenter), `rack` (always the host's rack), and any valid extra label.",
            default={},
        ),
        Field(
            "cluster",
            "name",
            "Cluster of a master, minion or events-etcd host; needed only when its datacenter has several.",
        ),
    ],
)

ALL_SPECS = (DATACENTER, NETWORKS, BGP, CORE_ROUTER, RACK, TOR, LVS, VIP, CLUSTER, API, LAB_OVERRIDES, HOST)

_KIND_DOC = {
    "name": "name",
    "dns": "DNS name",
    "text": "string",
    "int": "integer",
    "bool": "boolean",
    "asn": "AS number",
    "ipv4": "IPv4 address",
    "cidr": "IPv4 CIDR",
    "ports": "list of ports",
    "labels": "mapping",
    "choice": "choice",
    "object": "mapping",
    "map": "mapping of name to",
    "list": "list of",
}


# ---- checking ---------------------------------------------------------------------------


def is_templated(value) -> bool:
    return isinstance(value, str) and ("{{" in value or "{%" in value)


def parse_addr(text):
    """An :class:`Addr` from a dotted quad, or a message saying why not."""
    if not isinstance(text, str):
        return None, f"expected an IPv4 address, got {type_name(text)}"
    try:
        ip = netaddr.IPAddress(text)
    except (netaddr.AddrFormatError, ValueError, TypeError):
        return None, "not an IPv4 address"
    if ip.version != 4:
        return None, "not an IPv4 address (IPv6 is not supported yet)"
    return Addr(str(ip), int(ip)), None


def parse_net(text):
    """A :class:`Net` from ``a.b.c.d/len``; (None, kind, message) when it is not one."""
    if not isinstance(text, str):
        return None, "wrong-type", f"expected an IPv4 CIDR, got {type_name(text)}"
    if "/" not in text:
        return None, "malformed-cidr", "not an IPv4 CIDR: the prefix length (/N) is missing"
    try:
        net = netaddr.IPNetwork(text.strip())
    except (netaddr.AddrFormatError, ValueError, TypeError):
        return None, "malformed-cidr", "not an IPv4 CIDR"
    if net.version != 4:
        return None, "malformed-cidr", "not an IPv4 CIDR (IPv6 is not supported yet)"
    if net.ip != net.network:
        return (
            None,
            "cidr-host-bits",
            f"has bits set after the prefix; did you mean {net.network}/{net.prefixlen}?",
        )
    return Net(str(net.cidr), int(net.first), int(net.last), net.prefixlen), None, None


def asn_problem(value):
    """Why an integer is not a usable AS number, or None."""
    if value < 1 or value > _MAX_ASN:
        return "AS numbers run from 1 to %s" % (_MAX_ASN - 1)
    for low, high, why in _RESERVED_ASNS:
        if low <= value <= high:
            return f"reserved: {why}"
    return None


def type_name(value) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int):
        return "an integer"
    if isinstance(value, float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, (list, tuple)):
        return "a list"
    if isinstance(value, dict):
        return "a mapping"
    return type(value).__name__


def name_problem(value):
    """Why a string is not a lowercase DNS label, or None."""
    if not _NAME_RE.match(value) or len(value) > 63:
        return "names are lowercase DNS labels: a-z, 0-9 and '-', at most 63 characters"
    return None


class Parser:
    """Checks raw values against specs; every problem goes to ``problems``."""

    def __init__(self, problems):
        self.problems = problems

    def parse(self, spec, raw, where, prefix=""):
        """Parse a mapping against ``spec``; returns a dict (invalid fields are None)."""
        out = {}
        if not isinstance(raw, dict):
            self.problems.add(
                "wrong-type",
                where,
                prefix.rstrip(".") or spec.title,
                raw,
                f"expected a mapping, got {type_name(raw)}",
            )
            return None
        fields = spec.fields
        for key in raw:
            if key not in fields:
                self.problems.add(
                    "unknown-field",
                    where,
                    prefix + str(key),
                    raw[key],
                    f"unknown field of a {spec.title}{did_you_mean(key, fields)}",
                )
        for name, field in fields.items():
            path = prefix + name
            if name not in raw or raw[name] is None:
                if field.required:
                    self.problems.add(
                        "missing-field", where, path, None, f"required field of a {spec.title} is missing"
                    )
                    out[name] = None
                else:
                    out[name] = self.default(field, where, path)
                continue
            out[name] = self.value(field, raw[name], where, path)
        return out

    def default(self, field, where, path):
        if field.kind == "object":
            return self.parse(field.spec, {}, where, path + ".")
        if isinstance(field.default, list):
            return list(field.default)
        if isinstance(field.default, dict):
            return dict(field.default)
        return field.default

    def value(self, field, raw, where, path):
        kind = field.kind
        add = self.problems.add
        if is_templated(raw):
            add(
                "templated-value",
                where,
                path,
                raw,
                "the planner needs a literal value, not a Jinja expression",
            )
            return None
        if kind in ("name", "dns", "text", "choice"):
            if not isinstance(raw, str):
                add("wrong-type", where, path, raw, f"expected a string, got {type_name(raw)}")
                return None
            if kind == "name":
                why = name_problem(raw)
                if why:
                    add("invalid-name", where, path, raw, why)
                    return None
            elif kind == "dns":
                if not _DNS_RE.match(raw):
                    add("invalid-name", where, path, raw, "not a lowercase DNS name")
                    return None
            elif kind == "choice":
                if raw not in field.choices:
                    add(
                        "invalid-choice",
                        where,
                        path,
                        raw,
                        "must be one of {}{}".format(
                            ", ".join(field.choices), did_you_mean(raw, field.choices)
                        ),
                    )
                    return None
            elif not raw.strip():
                add("missing-field", where, path, raw, "must not be empty")
                return None
            return str(raw)
        if kind in ("int", "asn"):
            if isinstance(raw, bool) or not isinstance(raw, int):
                add("wrong-type", where, path, raw, f"expected an integer, got {type_name(raw)}")
                return None
            if kind == "asn":
                why = asn_problem(raw)
                if why:
                    add("invalid-asn", where, path, raw, f"not a usable AS number: {why}")
                    return None
                return int(raw)
            if (field.minimum is not None and raw < field.minimum) or (
                field.maximum is not None and raw > field.maximum
            ):
                add(
                    "out-of-range",
                    where,
                    path,
                    raw,
                    f"must be between {field.minimum} and {field.maximum}",
                )
                return None
            return int(raw)
        if kind == "bool":
            if not isinstance(raw, bool):
                add("wrong-type", where, path, raw, f"expected true or false, got {type_name(raw)}")
                return None
            return raw
        if kind == "ipv4":
            addr, why = parse_addr(raw)
            if why:
                add("wrong-type" if not isinstance(raw, str) else "malformed-address", where, path, raw, why)
            return addr
        if kind == "cidr":
            net, problem_kind, why = parse_net(raw)
            if why:
                add(problem_kind, where, path, raw, why)
            return net
        if kind == "ports":
            if not isinstance(raw, list):
                add("wrong-type", where, path, raw, f"expected a list of ports, got {type_name(raw)}")
                return None
            ports = []
            for index, port in enumerate(raw):
                if isinstance(port, bool) or not isinstance(port, int):
                    add(
                        "wrong-type",
                        where,
                        f"{path}[{index}]",
                        port,
                        f"expected a port number, got {type_name(port)}",
                    )
                elif not 1 <= port <= 65535:
                    add("out-of-range", where, f"{path}[{index}]", port, "must be between 1 and 65535")
                else:
                    ports.append(int(port))
            return sorted(set(ports))
        if kind == "labels":
            if not isinstance(raw, dict):
                add(
                    "wrong-type",
                    where,
                    path,
                    raw,
                    f"expected a mapping of label to value, got {type_name(raw)}",
                )
                return None
            return dict(raw)
        if kind == "object":
            return self.parse(field.spec, raw, where, path + ".")
        if kind == "map":
            if not isinstance(raw, dict):
                add(
                    "wrong-type",
                    where,
                    path,
                    raw,
                    f"expected a mapping of name to {field.spec.title}, got {type_name(raw)}",
                )
                return None
            return {str(k): v for k, v in raw.items()}  # items are parsed by the caller (they need a name)
        if kind == "list":
            if not isinstance(raw, list):
                add(
                    "wrong-type",
                    where,
                    path,
                    raw,
                    f"expected a list of {field.spec.title}, got {type_name(raw)}",
                )
                return None
            items = []
            for index, item in enumerate(raw):
                items.append(self.parse(field.spec, item, where, f"{path}[{index}]."))
            return items
        raise ValueError(f"unknown field kind {kind!r}")  # a bug in a spec


# ---- docs --------------------------------------------------------------------------------


def _default_text(field):
    if field.required:
        return "**required**"
    if field.kind == "object":
        return "see below"
    if field.default is None:
        return "null"
    if isinstance(field.default, bool):
        return "`%s`" % ("true" if field.default else "false")
    if isinstance(field.default, list):
        return "`[{}]`".format(", ".join(str(v) for v in field.default))
    if isinstance(field.default, dict):
        return "`{}`"
    return f"`{field.default}`"


def _type_text(field):
    text = _KIND_DOC[field.kind]
    if field.kind in ("map", "list"):
        text = f"{text} {field.spec.title}"
    if field.kind == "choice":
        text = "one of {}".format(", ".join(f"`{c}`" for c in field.choices))
    if field.kind == "int" and field.minimum is not None:
        text = f"{text} {field.minimum}..{field.maximum}"
    return text


def model_markdown() -> str:
    """The field tables of docs/inventory.md, generated from the specs."""
    lines = []
    for spec in ALL_SPECS:
        lines.append(f"#### {spec.title}")
        lines.append("")
        lines.append("| field | type | default | meaning |")
        lines.append("|---|---|---|---|")
        for field in spec.fields.values():
            lines.append(f"| `{field.name}` | {_type_text(field)} | {_default_text(field)} | {field.doc} |")
        lines.append("")
    return "\n".join(lines).rstrip("\n") + "\n"
