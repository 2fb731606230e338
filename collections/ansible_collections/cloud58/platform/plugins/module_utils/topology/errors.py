# -*- coding: utf-8 -*-
# Copyright: cloud58 platform team
# Apache License 2.0
"""The one domain exception of the planner, and the problems it carries.

The planner never stops at the first problem: it collects every problem of a run in a
:class:`Problems` list and raises one :class:`PlanError` at the end. Each problem names
where it is (datacenter, rack, host, cluster), the field, the offending value and, for a
conflict, the other party, so that a person can fix the inventory without reading code.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass

# Every kind of problem the planner reports, with a one-line description. The docs table
# (docs/inventory.md) and the tests are checked against this list.
ERROR_KINDS = {
    "ambiguous-cluster": "a Kubernetes host is in a datacenter with several clusters and names none",
    "asn-scheme": "AS numbers break the datacenter's BGP mode (eBGP: node AS differs from ToR AS; "
    "route_reflector: they are equal)",
    "cidr-host-bits": "a CIDR has bits set after the prefix (10.0.0.1/24 instead of 10.0.0.0/24)",
    "consul-server-count": "a datacenter has no Consul server or an even number of them",
    "directors-per-vip": "lvs.directors_per_vip asks for more directors than the datacenter has",
    "duplicate-address": "two hosts, ToRs or core routers use the same address",
    "duplicate-api-endpoint": "two clusters share an API VIP or DNS name",
    "duplicate-asn": "one AS number is used by two racks, ToR pairs or cores",
    "duplicate-cluster": "a cluster is defined by two inventories planned together",
    "duplicate-consul-datacenter": "two datacenters use the same Consul datacenter name",
    "duplicate-context": "two clusters share a kubectl context",
    "duplicate-datacenter": "a datacenter is defined by two inventories planned together",
    "duplicate-host": "a host name appears in two inventories planned together",
    "duplicate-rack": "a rack name is defined in two datacenters",
    "duplicate-router": "two routers (ToR or core) share a name",
    "duplicate-vip": "two VIPs share a name or an address",
    "even-etcd-members": "an etcd or events-etcd cluster has an even number of members",
    "fabric-exhausted": "networks.fabric has no room left for the ToR-to-core /31 links",
    "host-outside-rack": "a host address is not inside its rack's node subnet",
    "invalid-asn": "an AS number is not a usable (non-reserved) AS number",
    "invalid-choice": "a value is not one of the allowed choices",
    "invalid-label": "a node label key or value is not valid for Kubernetes",
    "invalid-name": "a name is not a lowercase DNS label",
    "label-conflict": "labels.rack disagrees with the host's rack",
    "local-address-pool-too-small": "the LVS local-address pool cannot give every director its range",
    "malformed-address": "a value is not an IPv4 address",
    "malformed-cidr": "a value is not an IPv4 network in CIDR notation",
    "missing-field": "a required field is missing",
    "no-cluster": "a datacenter has Kubernetes hosts but no cluster",
    "no-directors": "a datacenter has VIPs but no LVS director",
    "no-events-etcd": "a cluster has no events-etcd member",
    "no-hosts": "an inventory or a datacenter has no host at all",
    "out-of-range": "a number is outside its allowed range",
    "pod-block-too-small": "a pod block holds fewer addresses than max_pods",
    "pool-exhausted": "a cluster's pod CIDR cannot hold the per-rack pod pools",
    "reservation-outside-pool": "a fixed-IP reservation of cloud58_bgp_options is outside its "
    "cluster's pod pools",
    "reserved-address": "a host or ToR uses the network or broadcast address of its rack subnet",
    "role-conflict": "a host is in two role groups that exclude each other",
    "router-outside-network": "a ToR is outside its rack subnet or a core router outside networks.fabric",
    "service-cidr-size": "a service CIDR is larger than a /12 or smaller than a /28",
    "subnet-outside-network": "a rack subnet is outside networks.nodes, or a pod block outside pod_cidr",
    "subnet-overlap": "two networks overlap (racks, pods, services, VIPs, fabric; across datacenters)",
    "templated-value": "a topology field holds a Jinja expression; the planner needs literal values",
    "too-few-masters": "a cluster has fewer than 3 masters without the lab override",
    "tor-count": "a rack does not have exactly two ToR routers",
    "unknown-cluster": "a host names a cluster that is not defined in its datacenter",
    "unknown-datacenter": "a cluster names a datacenter that is not defined",
    "unknown-field": "a field is not part of the model (with a did-you-mean suggestion)",
    "unknown-group": "a group name looks like a misspelt role group",
    "unknown-rack": "a host names a rack that is not defined",
    "unreadable-inventory": "an inventory file cannot be read or parsed",
    "vip-outside-pool": "a VIP is not inside its datacenter's VIP pool",
    "wrong-type": "a value has the wrong type",
}


def error_kinds_markdown() -> str:
    """The table of problem kinds in docs/inventory.md (a unit test keeps the two in step)."""
    lines = ["| kind | what it means |", "|---|---|"]
    lines += [f"| `{kind}` | {text} |" for kind, text in sorted(ERROR_KINDS.items())]
    return "\n".join(lines) + "\n"


_SHOW_LIMIT = 120


def show(value) -> str:
    """Render an offending value the same way in every message (long values are cut)."""
    text = _show(value)
    return text if len(text) <= _SHOW_LIMIT else text[: _SHOW_LIMIT - 3] + "..."


def _show(value) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return "null"
    if isinstance(value, str):
        return f"'{value!s}'"
    if isinstance(value, int):
        return str(int(value))
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_show(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k!s}: {_show(v)}" for k, v in value.items()) + "}"
    return str(value)


def did_you_mean(word, candidates) -> str:
    """A ``; did you mean 'x'?`` suffix, or an empty string when nothing is close."""
    best = None
    for candidate in sorted({str(c) for c in candidates}):  # ties go to the first in order
        ratio = difflib.SequenceMatcher(None, str(word), candidate).ratio()
        if ratio >= 0.6 and (best is None or ratio > best[0]):
            best = (ratio, candidate)
    return f"; did you mean '{best[1]}'?" if best else ""


def where_text(datacenter=None, rack=None, host=None, cluster=None, extra=None) -> str:
    """``datacenter 'bj1', rack 'bj1-r01', host 'bj1-node-001'`` from whatever is known."""
    parts = []
    for label, value in (
        ("datacenter", datacenter),
        ("cluster", cluster),
        ("rack", rack),
        ("host", host),
    ):
        if value is not None:
            parts.append(f"{label} '{value}'")
    if extra:
        parts.append(extra)
    return ", ".join(parts) if parts else "inventory"


@dataclass(frozen=True, order=True)
class Problem:
    """One thing wrong with the inventory: ``<where>: <field> = <value>: <message> [<kind>]``."""

    where: str
    field: str
    value: str
    message: str
    kind: str

    def __str__(self) -> str:
        return f"{self.where}: {self.field} = {self.value}: {self.message} [{self.kind}]"

    def as_dict(self) -> dict:
        return {
            "kind": self.kind,
            "where": self.where,
            "field": self.field,
            "value": self.value,
            "message": self.message,
            "text": str(self),
        }


class TopologyError(Exception):
    """Base of every error the planner raises on purpose; adapters catch this one class."""


class MissingLibrary(TopologyError):
    """A Python library the planner needs (netaddr, PyYAML for files) is not installed."""


class PlanError(TopologyError):
    """The inventory cannot be planned. Carries every problem found in the run."""

    def __init__(self, problems) -> None:
        self.problems = sorted(set(problems))
        super().__init__(self.text())

    def text(self) -> str:
        count = len(self.problems)
        head = "the inventory has {} problem{}:".format(count, "" if count == 1 else "s")
        return "\n".join([head] + [f"  - {p}" for p in self.problems])

    def kinds(self) -> list:
        return sorted({p.kind for p in self.problems})


class Problems:
    """Collects problems during a run; ``raise_if_any()`` raises the one PlanError."""

    def __init__(self) -> None:
        self.items = []

    def add(self, kind, where, field, value, message) -> None:
        if kind not in ERROR_KINDS:  # a bug in the planner, not in the inventory
            raise ValueError(f"unknown problem kind {kind!r}")
        self.items.append(Problem(where=where, field=field, value=show(value), message=message, kind=kind))

    def __len__(self) -> int:
        return len(self.items)

    def raise_if_any(self) -> None:
        if self.items:
            raise PlanError(self.items)
