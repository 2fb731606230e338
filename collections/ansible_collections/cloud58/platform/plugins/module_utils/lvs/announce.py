# -*- coding: utf-8 -*-
# Copyright: cloud58 platform team
# Apache License 2.0
"""VIP announcement: the BIRD 2 configuration with which an LVS director announces its VIPs.

A director announces the /32 of each of its VIPs that has at least one healthy realserver,
and its range of full-NAT local addresses (the plan's ``local_addresses.cidr``: realservers
answer those addresses, so the answers must reach this director and no other), by eBGP
(iBGP in ``route_reflector`` datacenters) to the ToRs of its rack. From them it learns the
datacenter's pod routes and installs them in the kernel (one route with both ToRs as next
hops): the way to realservers and clients in pods. The ToRs accept exactly /32s inside the
datacenter's VIP pool and ranges inside its local-address pool from their directors, send
them the pod routes only (``module_utils/bgp/routers.py``), and spread a VIP over every
director that announces it (ECMP).

The healthy set is an input: a list of VIP addresses (the health checker writes it, for
example ``/run/cloud58/lvs-healthy.json`` as ``{"healthy_vips": ["198.18.2.10"]}``); without
one, the VIPs that have realservers in the data plane's configuration count as healthy.
Only the ``static`` protocol of the VIPs changes with the healthy set, so a new file
followed by ``birdc configure`` withdraws or announces a VIP without touching the BGP
sessions.

Pure: plain data in, text out; :class:`~.plan.LvsError` names the field and the bad value.
"""

from __future__ import annotations

import ipaddress
import json
import re

from .plan import LvsError, check_director, director_vips, ipv4

STATIC = "cloud58_vips"
LOCAL_STATIC = "cloud58_local_addresses"
EXPORT_FILTER = "cloud58_vips_out"
KERNEL = "cloud58_kernel"
TIMER_DEFAULTS = {"hold": 9, "keepalive": 3, "connect_retry": 2}


def healthy_from_json(text, path):
    """The VIP addresses of a healthy file (``{"healthy_vips": [address, ...]}``)."""
    try:
        data = json.loads(text)
    except ValueError as e:
        raise LvsError(f"{path}: not JSON ({e})") from e
    if not isinstance(data, dict) or not isinstance(data.get("healthy_vips"), list):
        raise LvsError(f"{path}: expected a mapping with a list healthy_vips, got {text.strip()[:80]!r}")
    return [str(ipv4(v, f"{path}: healthy_vips")) for v in data["healthy_vips"]]


def healthy_json(addresses):
    """The healthy file's text for ``addresses`` (what :func:`healthy_from_json` reads)."""
    return json.dumps({"healthy_vips": [str(a) for a in addresses]}) + "\n"


def announced_vips(lvs, director, healthy=None, realservers=None, source="healthy"):
    """The addresses the director announces now, in address order.

    ``healthy`` is a list of VIP addresses (None: every VIP of the director with at least one
    realserver, from the plan or ``realservers``); each must be a VIP of the director.
    ``source`` names where ``healthy`` came from in errors (a file, a variable).
    """
    entry, plan_vips, overrides = check_director(lvs, director, realservers)
    vips = director_vips(entry, plan_vips, overrides)
    mine = {str(address): name for name, address, _by_port in vips}
    if healthy is None:
        return [str(address) for _name, address, by_port in vips if any(by_port.values())]
    if not isinstance(healthy, (list, tuple, set, frozenset)):
        raise LvsError(f"{source}: {healthy!r} is not a list of VIP addresses")
    wanted = set()
    for value in healthy:
        address = str(ipv4(value, source))
        if address not in mine:
            known = ", ".join(f"{a} ({n})" for a, n in mine.items()) or "none"
            raise LvsError(f"{source}: {address} is not a VIP of director {director!r} (its VIPs: {known})")
        wanted.add(address)
    return [str(address) for _name, address, _by_port in vips if str(address) in wanted]


def _symbol(name):
    return re.sub(r"[^A-Za-z0-9_]", "_", name)


def _timers(options):
    timers = dict(TIMER_DEFAULTS)
    for key in TIMER_DEFAULTS:
        value = (options or {}).get(key, timers[key])
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise LvsError(f"bgp_options.{key}: {value!r} is not a positive number of seconds")
        timers[key] = value
    return timers


def _peers(bgp, director):
    if not isinstance(bgp, dict) or not bgp.get("peers"):
        raise LvsError(f"hosts.{director}.bgp: director {director!r} has no BGP peers (the ToRs of its rack)")
    asn = bgp.get("asn")
    if isinstance(asn, bool) or not isinstance(asn, int) or not 0 < asn < 2**32:
        raise LvsError(f"hosts.{director}.bgp.asn: {asn!r} is not an AS number")
    peers = []
    for index, peer in enumerate(bgp["peers"]):
        where = f"hosts.{director}.bgp.peers[{index}]"
        address = ipv4(peer.get("address"), f"{where}.address")
        peer_asn = peer.get("asn")
        if isinstance(peer_asn, bool) or not isinstance(peer_asn, int) or not 0 < peer_asn < 2**32:
            raise LvsError(f"{where}.asn: {peer_asn!r} is not an AS number")
        peers.append((str(peer.get("name") or address), str(address), peer_asn))
    return asn, sorted(peers, key=lambda p: (ipv4(p[1], "peer"), p[0]))


def local_range(entry, director):
    """The network of the director's local addresses (the plan's ``local_addresses.cidr``), or
    None when the plan gives it none (the ``fnat`` and ``nftables`` data planes then refuse the
    director; the announcement alone does not need it)."""
    pool = (entry or {}).get("local_addresses")
    if not pool:
        return None
    field = f"lvs.directors.{director}.local_addresses.cidr"
    try:
        network = ipaddress.IPv4Network(pool.get("cidr"))
    except (ipaddress.AddressValueError, ipaddress.NetmaskValueError, ValueError, TypeError) as e:
        raise LvsError(f"{field}: {pool.get('cidr')!r} is not an IPv4 network") from e
    return str(network)


def bird_config(
    lvs, director, bgp, *, healthy=None, realservers=None, options=None, healthy_source="healthy"
):
    """bird.conf text of ``director``.

    ``lvs`` is the plan's ``datacenters[dc].lvs``, ``bgp`` the plan's ``hosts[director].bgp``
    (``asn`` and ``peers``: the rack's ToRs), ``options`` the datacenter's ``bgp_options``
    (``hold``, ``keepalive``, ``connect_retry``: the ToRs' timers).
    """
    announced = announced_vips(lvs, director, healthy, realservers, healthy_source)
    asn, peers = _peers(bgp, director)
    timers = _timers(options)
    router_id = ipv4(lvs["directors"][director].get("address"), f"lvs.directors.{director}.address")
    local = local_range(lvs["directors"][director], director)
    lines = [
        f"# BIRD 2 configuration of LVS director {director}: VIP announcement to the ToRs of its rack.",
        "# Managed by cloud58.platform.lvs_director; edit the inventory or the healthy set, not this file.",
        "# Only the static protocol below follows the healthy set: `birdc configure` applies a new",
        "# one without restarting the BGP sessions.",
        f"router id {router_id};",
        "",
        "protocol device {",
        "}",
        "",
        "# The VIPs with at least one healthy realserver. Blackholes exported to BGP only (the",
        "# kernel protocol takes BGP routes alone): the VIPs themselves sit on lo.",
        f"protocol static {STATIC} {{",
        "\tipv4;",
        *(f"\troute {address}/32 blackhole;" for address in announced),
        "}",
        "",
    ]
    if local:
        lines += [
            "# The local addresses of this director's full NAT, announced while BIRD runs: the",
            "# realservers' answers to them come back here, where conntrack undoes the NAT.",
            f"protocol static {LOCAL_STATIC} {{",
            "\tipv4;",
            f"\troute {local} blackhole;",
            "}",
            "",
        ]
    lines += [
        f"filter {EXPORT_FILTER} {{",
        f'\tif proto = "{STATIC}" && net.len = 32 then accept;',
        *([f'\tif proto = "{LOCAL_STATIC}" && net = {local} then accept;'] if local else []),
        "\treject;",
        "}",
        "",
        "# What the ToRs send (the datacenter's pod routes, their filter C58-TO-DIRECTORS) goes into",
        "# the kernel; equal routes from both ToRs become one route with two next hops.",
        f"protocol kernel {KERNEL} {{",
        "\tmerge paths yes;",
        "\tipv4 {",
        "\t\timport none;",
        "\t\texport where source = RTS_BGP;",
        "\t};",
        "}",
        "",
    ]
    for name, address, peer_asn in peers:
        lines += [
            f"protocol bgp tor_{_symbol(name)} {{",
            f'\tdescription "ToR {name}";',
            f"\tlocal {router_id} as {asn};",
            f"\tneighbor {address} as {peer_asn};",
            f"\thold time {timers['hold']};",
            f"\tkeepalive time {timers['keepalive']};",
            f"\tconnect retry time {timers['connect_retry']};",
            "\tipv4 {",
            "\t\timport all;",
            f"\t\texport filter {EXPORT_FILTER};",
            "\t\tnext hop self;",
            "\t\tgateway direct;",
            "\t};",
            "}",
            "",
        ]
    return "\n".join(lines)
