# -*- coding: utf-8 -*-
# Copyright: cloud58 platform team
# Apache License 2.0
"""The knobs of BGP rendering, shared by the router configs and the Calico objects.

One set of options feeds both sides on purpose: what Calico advertises (service ranges,
LoadBalancer ranges) is exactly what the ToR prefix filters accept, so the two can never
disagree. :func:`bgp_options` fills defaults and rejects unknown or ill-typed keys with a
message that names the key.
"""

from __future__ import annotations

import ipaddress

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


def _cidrs(key, value):
    if not isinstance(value, list):
        raise BgpError(f"option {key}: expected a list of CIDRs, got {value!r}")
    out = []
    for item in value:
        try:
            out.append(str(ipaddress.ip_network(str(item))))
        except ValueError as e:
            raise BgpError(f"option {key}: {item!r} is not a CIDR: {e}") from e
    return out


def bgp_options(options=None) -> dict:
    """``options`` over :data:`DEFAULTS`; raises :class:`BgpError` naming a bad key."""
    options = dict(options or {})
    unknown = sorted(set(options) - set(DEFAULTS))
    if unknown:
        raise BgpError(
            "unknown BGP option(s) {}; known: {}".format(", ".join(unknown), ", ".join(sorted(DEFAULTS)))
        )
    out = dict(DEFAULTS)
    for key, value in options.items():
        default = DEFAULTS[key]
        if isinstance(default, bool):
            if not isinstance(value, bool):
                raise BgpError(f"option {key}: expected true or false, got {value!r}")
        elif isinstance(default, int):
            if isinstance(value, bool) or not isinstance(value, int):
                raise BgpError(f"option {key}: expected an integer, got {value!r}")
            low, high = _RANGES[key]
            if not low <= value <= high:
                raise BgpError(f"option {key}: {value} is outside {low}..{high}")
        elif isinstance(default, list):
            value = _cidrs(key, value)  # noqa: PLW2901 - normalised CIDR text
        elif isinstance(default, dict):
            if not isinstance(value, dict):
                raise BgpError(f"option {key}: expected a mapping, got {value!r}")
        elif not isinstance(value, str):
            raise BgpError(f"option {key}: expected a string, got {value!r}")
        if key in _CHOICES and value not in _CHOICES[key]:
            raise BgpError("option {}: {!r} is not one of {}".format(key, value, ", ".join(_CHOICES[key])))
        out[key] = value
    if out["keepalive"] * 3 > out["hold"]:
        raise BgpError(f"option keepalive: {out['keepalive']} is more than a third of hold {out['hold']}")
    return out
