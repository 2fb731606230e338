# -*- coding: utf-8 -*-
# Copyright: cloud58 platform team
# Apache License 2.0
"""The knobs of BGP rendering, shared by the router configs and the Calico objects.

One set of options feeds both sides on purpose: what Calico advertises (service ranges,
LoadBalancer ranges) is exactly what the ToR prefix filters accept, so the two can never
disagree. :func:`bgp_options` fills defaults and rejects unknown or ill-typed keys with a
message that names the key; :func:`option_problems` lists every bad key (the planner
reports them as problems of ``cloud58_bgp_options``).
"""

from __future__ import annotations

import difflib
import ipaddress
from collections.abc import Mapping

from .fabric import BgpError

DEFAULTS = {
    # BGP timers of every fabric session (ToR-node, ToR-core), in seconds. Calico's BIRD
    # takes the hold time the ToR offers (the lower one wins) and keeps alive every third.
    "keepalive": 3,
    "hold": 9,
    "connect_retry": 2,
    # ECMP: paths a router installs for one prefix.
    "maximum_paths": 8,
    # How a ToR knows its nodes: "per_node" (one neighbor line per host, the ToR also
    # connects) or "listen_range" (the rack subnet, the nodes connect; fewer lines).
    "node_neighbors": "per_node",
    # BFD on the ToR-core links (Calico's BIRD does not run BFD to the nodes).
    "bfd": False,
    "bfd_interval_ms": 300,
    "bfd_multiplier": 3,
    # BGP graceful restart on the ToRs and cores. Off: with it, the peers of a router that
    # dies keep its routes for the restart time (120 s) and ECMP keeps sending half of the
    # flows into the dead router; the second ToR is the redundancy, not GR.
    "graceful_restart": False,
    # Keep what each node sent before the import filter (for `show ... received-routes`).
    "soft_reconfiguration": False,
    # Calico: advertise the cluster's service CIDR from every node.
    "advertise_service_cluster_ips": False,
    # Calico: CIDRs of Service externalIPs and LoadBalancer IPs that nodes may advertise.
    "service_external_ips": [],
    "service_loadbalancer_ips": [],
    # Prefixes of the clients outside the datacenter that reach its VIPs through the core
    # routers (a campus, another datacenter, the Internet edge; 0.0.0.0/0 for a default
    # route), as the cores' upstream announces them. The cores pass exactly these to the
    # ToRs and the ToRs to the LVS directors, so a director's full-NAT answer goes back
    # through the fabric. None by default: then the fabric's filters refuse any route from
    # the cores that is not the datacenter's own. A prefix inside a range of the datacenter
    # is a planner error.
    "client_prefixes": [],
    # Calico: the default AS a node speaks with when it has no projectcalico.org/ASNumber
    # annotation. No ToR accepts it, so an unannotated node never peers by mistake.
    "calico_default_asn": 64512,
    # Calico: graceful-restart time BIRD announces to the ToRs (BGPPeer maxRestartTime);
    # empty: BIRD's default (120s).
    "calico_max_restart_time": "",
    # Calico Felix: keep established flows whose conntrack entry is gone (table full,
    # Felix restart) instead of dropping them as INVALID; LVS full-NAT flows are long-lived.
    "felix_disable_conntrack_invalid_check": True,
    # Calico IPAM: addresses no pod gets automatically (fixed-IP workloads ask for them by
    # the cni.projectcalico.org/ipAddrs annotation). {cluster: {name: [address or CIDR]}}.
    "fixed_ip_reservations": {},
}

_CHOICES = {"node_neighbors": ("per_node", "listen_range")}
_RANGES = {
    "keepalive": (1, 3600),
    "hold": (3, 65535),
    "connect_retry": (1, 65535),
    "maximum_paths": (1, 128),
    "bfd_interval_ms": (10, 60000),
    "bfd_multiplier": (2, 255),
    "calico_default_asn": (1, 4294967294),
}


class BgpOptionError(BgpError):
    """One bad option: its ``key``, the bad ``value``, what is wrong (``reason``) and the
    planner's problem ``kind`` for it (unknown-field, wrong-type, out-of-range,
    invalid-choice, malformed-cidr), so that the planner reports it like any other field."""

    def __init__(self, key: str, value, kind: str, reason: str) -> None:
        self.key = key
        self.value = value
        self.kind = kind
        self.reason = reason
        super().__init__(f"option {key} = {value!r}: {reason}")


def _plain(value):
    """Plain dicts and lists from a frozen plan's mappings and tuples (or from plain data)."""
    if isinstance(value, Mapping):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


def _cidrs(key, value):
    if not isinstance(value, (list, tuple)):
        raise BgpOptionError(key, value, "wrong-type", "expected a list of CIDRs")
    out = []
    for index, item in enumerate(value):
        try:
            out.append(str(ipaddress.ip_network(str(item))))
        except ValueError as e:
            detail = "" if "does not appear" in str(e) else f": {e}"  # ipaddress repeats the value
            raise BgpOptionError(f"{key}[{index}]", item, "malformed-cidr", f"not a CIDR{detail}") from e
    return out


def _check(key, value):
    """``value`` of option ``key``, normalised; raises :class:`BgpOptionError`."""
    if key not in DEFAULTS:
        close = difflib.get_close_matches(str(key), list(DEFAULTS), n=1, cutoff=0.6)
        hint = f"did you mean '{close[0]}'?" if close else "known: " + ", ".join(sorted(DEFAULTS))
        raise BgpOptionError(key, value, "unknown-field", f"unknown BGP option; {hint}")
    default = DEFAULTS[key]
    if isinstance(default, bool):
        if not isinstance(value, bool):
            raise BgpOptionError(key, value, "wrong-type", "expected true or false")
    elif isinstance(default, int):
        if isinstance(value, bool) or not isinstance(value, int):
            raise BgpOptionError(key, value, "wrong-type", "expected an integer")
        low, high = _RANGES[key]
        if not low <= value <= high:
            raise BgpOptionError(key, value, "out-of-range", f"outside {low}..{high}")
    elif isinstance(default, list):
        return _cidrs(key, value)
    elif isinstance(default, dict):
        if not isinstance(value, Mapping):
            raise BgpOptionError(key, value, "wrong-type", "expected a mapping")
        return _plain(value)
    elif not isinstance(value, str):
        raise BgpOptionError(key, value, "wrong-type", "expected a string")
    if key in _CHOICES and value not in _CHOICES[key]:
        raise BgpOptionError(key, value, "invalid-choice", "not one of " + ", ".join(_CHOICES[key]))
    return value


def option_problems(options) -> tuple[dict, list]:
    """(``options`` over :data:`DEFAULTS`, every :class:`BgpOptionError` of them).

    Each key is judged on its own, so one run reports every bad key; the keepalive/hold
    rule is judged only when both are valid. The planner reports the problems with the
    rest of the inventory's; :func:`bgp_options` raises the first.
    """
    out = dict(DEFAULTS)
    problems = []
    for key in sorted(options or {}, key=str):
        try:
            out[key] = _check(key, options[key])
        except BgpOptionError as e:
            problems.append(e)
    bad = {e.key for e in problems}
    if not {"keepalive", "hold"} & bad and out["keepalive"] * 3 > out["hold"]:
        problems.append(
            BgpOptionError(
                "keepalive", out["keepalive"], "out-of-range", f"more than a third of hold {out['hold']}"
            )
        )
    return out, problems


def bgp_options(options=None) -> dict:
    """``options`` over :data:`DEFAULTS`; raises :class:`BgpOptionError` naming a bad key."""
    if options is not None and not isinstance(options, Mapping):
        raise BgpError(f"BGP options must be a mapping of option to value, got {options!r}")
    out, problems = option_problems(options)
    if problems:
        raise problems[0]
    return out
