# -*- coding: utf-8 -*-
# Copyright: cloud58 platform team
# Apache License 2.0
"""What one LVS director serves, read from the plan's ``lvs`` section (plain data).

Shared by both data planes: ``fullnat.py`` (nftables) and ``keepalived.py`` (IPVS FNAT).
Pure: plain data in, plain data out; :class:`LvsError` names the field and the bad value.
"""

from __future__ import annotations

import ipaddress


class LvsError(Exception):
    """Bad input for an LVS data plane; the message names the field and the value."""


def ipv4(value, field):
    try:
        return ipaddress.IPv4Address(value)
    except (ipaddress.AddressValueError, ValueError, TypeError) as e:
        raise LvsError(f"{field}: {value!r} is not an IPv4 address") from e


def port(value, field):
    if isinstance(value, bool) or not isinstance(value, int) or not 0 < value < 65536:
        raise LvsError(f"{field}: {value!r} is not a TCP port (1-65535)")
    return value


def local_addresses(director, name):
    """The director's local addresses, in order (``director`` is ``lvs.directors[name]``)."""
    pool = director.get("local_addresses")
    field = f"lvs.directors.{name}.local_addresses"
    if not pool:
        raise LvsError(
            f"{field}: director {name!r} has no local-address range in the plan "
            "(set networks.local_address_pool and lvs.local_addresses_per_director)"
        )
    first = ipv4(pool.get("first"), f"{field}.first")
    count = pool.get("count")
    if isinstance(count, bool) or not isinstance(count, int) or count < 1:
        raise LvsError(f"{field}.count: {count!r} is not a positive number of addresses")
    return [str(first + i) for i in range(count)]


def realservers_by_port(vip, entries, field):
    """``entries`` (dicts with address, port and optional vip_port) -> {vip_port: [(addr, port)]}."""
    out = {p: [] for p in vip["ports"]}
    if not isinstance(entries, list):
        raise LvsError(f"{field}: {entries!r} is not a list of realservers")
    for index, entry in enumerate(entries):
        where = f"{field}[{index}]"
        if not isinstance(entry, dict):
            raise LvsError(f"{where}: {entry!r} is not a mapping with address and port")
        address = ipv4(entry.get("address"), f"{where}.address")
        rs_port = port(entry.get("port"), f"{where}.port")
        vip_port = entry.get("vip_port")
        vip_port = rs_port if vip_port is None else port(vip_port, f"{where}.vip_port")
        if vip_port not in out:
            raise LvsError(
                f"{where}.vip_port: {vip_port} is not a port of VIP {vip['name']!r} "
                f"(ports: {', '.join(str(p) for p in vip['ports'])})"
            )
        target = (address, rs_port)
        if target in out[vip_port]:
            raise LvsError(f"{where}: {address}:{rs_port} is listed twice for {vip['name']}:{vip_port}")
        out[vip_port].append(target)
    return out


def check_director(lvs, director, realservers=None):
    """``director`` is a director of the plan and ``realservers`` names only its VIPs.

    Returns ``(the director's plan entry, the plan's VIPs, the overrides as a dict)``.
    """
    directors = (lvs or {}).get("directors") or {}
    if director not in directors:
        known = ", ".join(sorted(directors)) or "none"
        raise LvsError(f"director: {director!r} is not an LVS director of the plan (directors: {known})")
    plan_vips = lvs.get("vips") or {}
    mine = directors[director].get("vips") or []
    overrides = dict(realservers or {})
    for name in sorted(overrides):
        if name not in plan_vips:
            known = ", ".join(sorted(plan_vips)) or "none"
            raise LvsError(f"realservers: VIP {name!r} is not in the plan's lvs.vips (VIPs: {known})")
        if name not in mine:
            raise LvsError(
                f"realservers: VIP {name!r} is not assigned to director {director!r} "
                f"(its directors: {', '.join(plan_vips[name].get('directors') or []) or 'none'})"
            )
    return directors[director], plan_vips, overrides


def director_vips(director_entry, plan_vips, overrides):
    """The director's VIPs in address order: ``[(name, address, {vip_port: [(addr, port)] sorted})]``,
    the realservers from ``overrides`` where it names the VIP, else from the plan."""
    out = []
    mine = director_entry.get("vips") or []
    for name in sorted(mine, key=lambda n: (ipv4(plan_vips[n]["address"], f"lvs.vips.{n}.address"), n)):
        vip = plan_vips[name]
        address = ipv4(vip["address"], f"lvs.vips.{name}.address")
        if name in overrides:
            by_port = realservers_by_port(vip, overrides[name], f"realservers.{name}")
        else:
            by_port = realservers_by_port(vip, vip.get("real_servers") or [], f"lvs.vips.{name}.real_servers")
        out.append((name, address, {p: sorted(by_port[p]) for p in sorted(by_port)}))
    return out


def director_cluster(plan, director, chosen=""):
    """The cluster whose Services ``director``'s cloud58-lvs-sync reads: ``chosen`` (a cluster
    of the director's datacenter) when given, else the datacenter's only cluster.

    A director is no node of a cluster, so the plan gives it none; a datacenter with several
    clusters must name one (the inventory's ``site_lvs_sync_cluster``)."""
    host = (plan.get("hosts") or {}).get(director) if isinstance(director, str) else None
    if host is None or director not in (
        (plan["datacenters"][host["datacenter"]].get("lvs") or {}).get("directors") or {}
    ):
        raise LvsError(f"{director!r} is not an LVS director of the plan")
    datacenter = host["datacenter"]
    clusters = sorted(n for n, c in (plan.get("clusters") or {}).items() if c.get("datacenter") == datacenter)
    if chosen:
        if chosen not in clusters:
            raise LvsError(
                f"site_lvs_sync_cluster of {director}: {chosen!r} is not a cluster of datacenter "
                f"{datacenter} (clusters: {', '.join(clusters) or 'none'})"
            )
        return chosen
    if len(clusters) != 1:
        raise LvsError(
            f"site_lvs_sync_cluster of {director}: datacenter {datacenter} has "
            f"{len(clusters)} clusters ({', '.join(clusters) or 'none'}); name the one whose "
            "Services the director serves"
        )
    return clusters[0]
