# -*- coding: utf-8 -*-
# Copyright: cloud58 platform team
# Apache License 2.0
"""Realservers from Kubernetes: Services and EndpointSlices -> the director's realservers.

What the sync service ``cloud58-lvs-sync`` decides, as pure functions over the API's JSON
(plain dicts as ``kubectl get -o json`` prints them):

* a Service is *selected* by the annotation ``lvs.cloud58.io/vip`` naming a VIP of the
  plan (its name or its address); the Service's TCP ports are the VIP ports it serves, and
  ``lvs.cloud58.io/scheduler``, when set, must be the director's scheduler (the scheduler
  is part of the table's structure, one for every VIP);
* its realservers are the *ready* endpoints of its EndpointSlices (label
  ``kubernetes.io/service-name``, address type IPv4): a ``ready`` condition that is unset
  counts as ready, a terminating endpoint is drained (it leaves the map, its established
  connections keep their conntrack entries); the realserver port is the slice's port of the
  same name as the Service port;
* :func:`realservers` returns the override of ``fullnat.director_state`` (``{VIP name:
  [{address, port, vip_port}]}``) and the problems found; a VIP whose Service cannot be
  used keeps the realservers it had (``previous``), so a bad edit never empties a VIP;
* :func:`update` turns the elements last applied and the new realservers into the one
  ``nft -f`` transaction of element commands, computing only the VIPs that changed.

Services of VIPs assigned to other directors are ignored; a VIP no Service claims keeps the
plan's realservers (what the role applies).
"""

from __future__ import annotations

from .announce import announced_vips, bird_config, healthy_json
from .fullnat import director_state, element_changes, element_commands
from .plan import LvsError, ipv4, realservers_by_port

ANNOTATION_VIP = "lvs.cloud58.io/vip"
ANNOTATION_SCHEDULER = "lvs.cloud58.io/scheduler"
SERVICE_NAME_LABEL = "kubernetes.io/service-name"


def _meta(obj):
    meta = obj.get("metadata") or {}
    return meta.get("namespace") or "", meta.get("name") or "", meta


def _vip_by_annotation(value, plan_vips):
    """The plan's VIP name for an annotation value (a VIP name or address), or None."""
    if value in plan_vips:
        return value
    for name in sorted(plan_vips):
        if plan_vips[name].get("address") == value:
            return name
    return None


def selected_services(services, lvs, director, scheduler):
    """The Services that claim a VIP of ``director``: ``({vip: claim}, problems)``.

    A claim is ``{"service": "ns/name", "ports": [(vip_port, service port name)]}``. A VIP
    claimed by two Services goes to the first in namespace/name order."""
    plan_vips = (lvs or {}).get("vips") or {}
    mine = set(((lvs or {}).get("directors") or {}).get(director, {}).get("vips") or [])
    claims, problems = {}, []
    for svc in sorted(services, key=lambda s: _meta(s)[:2]):
        namespace, name, meta = _meta(svc)
        value = (meta.get("annotations") or {}).get(ANNOTATION_VIP)
        if value is None:
            continue
        where = f"Service {namespace}/{name}: annotation {ANNOTATION_VIP}"
        vip = _vip_by_annotation(value, plan_vips)
        if vip is None:
            known = ", ".join(sorted(plan_vips)) or "none"
            problems.append(f"{where}: {value!r} is not a VIP of the plan (VIPs: {known})")
            continue
        if vip not in mine:
            continue
        wanted = (meta.get("annotations") or {}).get(ANNOTATION_SCHEDULER)
        if wanted is not None and wanted != scheduler:
            problems.append(
                f"Service {namespace}/{name}: annotation {ANNOTATION_SCHEDULER}: {wanted!r} is not the "
                f"scheduler of director {director!r} ({scheduler}); the Service is ignored"
            )
            continue
        if vip in claims:
            problems.append(f"{where}: VIP {vip!r} is already claimed by Service {claims[vip]['service']}")
            continue
        vip_ports = plan_vips[vip].get("ports") or []
        ports = []
        for entry in (svc.get("spec") or {}).get("ports") or []:
            if (entry.get("protocol") or "TCP") != "TCP":
                continue
            if entry.get("port") not in vip_ports:
                problems.append(
                    f"Service {namespace}/{name}: port {entry.get('port')!r} is not a port of VIP {vip!r} "
                    f"(ports: {', '.join(str(p) for p in vip_ports)}); the port is ignored"
                )
                continue
            ports.append((entry["port"], entry.get("name") or ""))
        claims[vip] = {"service": f"{namespace}/{name}", "ports": sorted(ports)}
    return claims, problems


def slices_by_service(slices):
    """``{"ns/name": [EndpointSlice]}`` by the label ``kubernetes.io/service-name``."""
    out = {}
    for sl in slices:
        namespace, _name, meta = _meta(sl)
        service = (meta.get("labels") or {}).get(SERVICE_NAME_LABEL)
        if service:
            out.setdefault(f"{namespace}/{service}", []).append(sl)
    return out


def ready_endpoints(slices, service):
    """``{port name: sorted [(address, port)]}`` of the ready, not terminating IPv4 endpoints
    of the EndpointSlices of ``service`` ("ns/name"); duplicates across slices collapse."""
    namespace, _slash, name = service.partition("/")
    out = {}
    for sl in slices:
        sl_ns, _sl_name, meta = _meta(sl)
        if sl_ns != namespace or (meta.get("labels") or {}).get(SERVICE_NAME_LABEL) != name:
            continue
        if sl.get("addressType") != "IPv4":
            continue
        ports = [
            (p.get("name") or "", p.get("port"))
            for p in sl.get("ports") or []
            if (p.get("protocol") or "TCP") == "TCP" and p.get("port") is not None
        ]
        for endpoint in sl.get("endpoints") or []:
            conditions = endpoint.get("conditions") or {}
            if conditions.get("ready") is False or conditions.get("terminating") is True:
                continue
            for address in endpoint.get("addresses") or []:
                for port_name, number in ports:
                    out.setdefault(port_name, set()).add((address, number))
    return {k: sorted(v) for k, v in sorted(out.items())}


def _same(entries, other):
    def as_set(items):
        return {(e["address"], e["port"], e["vip_port"]) for e in items}

    return as_set(entries) == as_set(other)


def realservers(services, slices, lvs, director, *, scheduler="rr", slots=256, previous=None):
    """The realservers of ``director``'s VIPs from the cluster: ``(overrides, problems)``.

    ``overrides`` is ``{VIP name: [{address, port, vip_port}]}`` for every VIP a Service
    claims (empty list: the Service has no ready endpoint), ordered by VIP port, address,
    port. A VIP whose endpoints break the plan's rules (a bad address, more realservers than
    ``slots``) keeps its entry of ``previous`` (or the plan's) and is reported."""
    claims, problems = selected_services(services, lvs, director, scheduler)
    plan_vips = lvs.get("vips") or {}
    previous = previous or {}
    by_service = slices_by_service(slices)
    overrides = {}
    for vip in sorted(claims):
        claim = claims[vip]
        endpoints = ready_endpoints(by_service.get(claim["service"], []), claim["service"])
        entries = []
        for vip_port, port_name in claim["ports"]:
            for address, number in endpoints.get(port_name, []):
                entries.append({"address": address, "port": number, "vip_port": vip_port})
        if vip in previous and _same(entries, previous[vip]):
            overrides[vip] = previous[vip]  # checked when it was computed
            continue
        field = f"Service {claim['service']} (VIP {vip})"
        try:
            for index, entry in enumerate(entries):
                ipv4(entry["address"], f"{field} endpoint [{index}]")
            by_port = realservers_by_port({"name": vip, **plan_vips[vip]}, entries, field)
            for vip_port, targets in by_port.items():
                if len(targets) > slots:
                    raise LvsError(
                        f"{field}: {len(targets)} ready endpoints for VIP port {vip_port} are more than "
                        f"the {slots} slots"
                    )
        except LvsError as e:
            problems.append(f"{e}; VIP {vip} keeps its realservers")
            if vip in previous:
                overrides[vip] = previous[vip]
            continue
        overrides[vip] = sorted(entries, key=lambda e: (e["vip_port"], ipv4(e["address"], field), e["port"]))
    return overrides, problems


def update(lvs, director, wanted, before, *, scheduler, slots, table):
    """The next transaction: ``(elements, nft -f text, {"delete": n, "add": n})``.

    ``before`` is ``{"wanted": realservers by VIP, "elements": the elements applied with
    them}``; only the VIPs whose entry of ``wanted`` differs are computed again (by
    ``fullnat.director_state`` on the plan restricted to them) and compared, so a change of
    one VIP costs that VIP's slots, not the table's. ``elements`` equal
    ``director_state(lvs, director, wanted, ...)["elements"]`` (in another order)."""
    entry = lvs["directors"][director]
    old = before["wanted"]
    changed = [n for n in entry.get("vips") or [] if wanted.get(n) != old.get(n)]
    if not changed:
        return before["elements"], "", {"delete": 0, "add": 0}
    subset = {"directors": {director: {**entry, "vips": changed}}, "vips": lvs["vips"]}
    part = director_state(subset, director, {n: wanted[n] for n in changed if n in wanted}, scheduler, slots)
    prefixes = tuple(f"{lvs['vips'][n]['address']} . " for n in changed)
    applied = before["elements"].get("realservers") or {}
    kept = {k: v for k, v in applied.items() if not k.startswith(prefixes)}
    mine = {k: v for k, v in applied.items() if k.startswith(prefixes)}
    changes = element_changes({"realservers": mine}, {"realservers": part["elements"]["realservers"]})
    elements = {**before["elements"], "realservers": {**kept, **part["elements"]["realservers"]}}
    counts = {verb: sum(len(c[verb]) for c in changes.values()) for verb in ("delete", "add")}
    return elements, element_commands(changes, table), counts


def announcement(lvs, director, wanted, bgp, options=None):
    """What BIRD announces for the realservers the data plane now has (``wanted``, as for
    :func:`update`; VIPs it leaves out keep the plan's): ``(healthy VIP addresses, the
    healthy file's text, bird.conf text)``. A VIP is healthy while it has at least one
    realserver, i.e. a ready endpoint when a Service claims it; ``bgp`` and ``options`` are
    the plan's ``hosts[director].bgp`` and the datacenter's ``bgp_options``."""
    healthy = announced_vips(lvs, director, None, wanted)
    conf = bird_config(lvs, director, bgp, healthy=healthy, realservers=wanted, options=options)
    return healthy, healthy_json(healthy), conf


# ---- counters (issue #14 item 5) -------------------------------------------------------------
# A second table of the sync's own: three sets with a counter per element, one element per
# VIP . realserver . realserver port, matched in the forward hook after DNAT. The data
# plane's table stays as fullnat.py renders it.
STATS_TABLE = "cloud58_fullnat_stats"
STATS_SETS = ("connections", "to_realservers", "from_realservers")
METRICS = (
    (
        "connections",
        "cloud58_lvs_connections_total",
        "packets",
        "New connections DNATed from a VIP to a realserver.",
    ),
    (
        "to_realservers",
        "cloud58_lvs_to_realserver_bytes_total",
        "bytes",
        "Bytes sent to a realserver for a VIP.",
    ),
    (
        "to_realservers",
        "cloud58_lvs_to_realserver_packets_total",
        "packets",
        "Packets sent to a realserver for a VIP.",
    ),
    (
        "from_realservers",
        "cloud58_lvs_from_realserver_bytes_total",
        "bytes",
        "Bytes a realserver answered for a VIP.",
    ),
    (
        "from_realservers",
        "cloud58_lvs_from_realserver_packets_total",
        "packets",
        "Packets a realserver answered for a VIP.",
    ),
)


def stats_keys(realservers_map):
    """The counter elements ``VIP . realserver . port`` of the ``realservers`` map's elements."""
    return sorted({f"{key.split(' . ', 1)[0]} . {value}" for key, value in realservers_map.items()})


def stats_ruleset(keys, table=STATS_TABLE):
    """The counters table for ``nft -f``."""
    lines = [f"table ip {table} {{"]
    for name in STATS_SETS:
        lines += [f"\tset {name} {{", "\t\ttype ipv4_addr . ipv4_addr . inet_service", "\t\tcounter"]
        if keys:
            lines.append("\t\telements = { " + ", ".join(keys) + " }")
        lines += ["\t}", ""]
    lines += [
        "\tchain forward {",
        "\t\ttype filter hook forward priority filter; policy accept;",
        "\t\tct status dnat ct direction original ct state new ct original ip daddr . ip daddr . tcp dport"
        " @connections",
        "\t\tct status dnat ct direction original ct original ip daddr . ip daddr . tcp dport"
        " @to_realservers",
        "\t\tct status dnat ct direction reply ct original ip daddr . ip saddr . tcp sport @from_realservers",
        "\t}",
        "}",
    ]
    return "\n".join(lines) + "\n"


def stats_commands(before, after, table=STATS_TABLE):
    """Element commands taking the counter elements ``before`` to ``after`` (a removed
    realserver's counters go with it)."""
    gone = sorted(set(before) - set(after))
    new = sorted(set(after) - set(before))
    lines = []
    for verb, keys in (("delete", gone), ("add", new)):
        if keys:
            lines += [f"{verb} element ip {table} {name} {{ {', '.join(keys)} }}" for name in STATS_SETS]
    return "\n".join(lines) + "\n" if lines else ""


def stats_counters(data, table=STATS_TABLE):
    """``nft -j list table ip <table>`` (parsed) -> ``{set: {key: {"packets", "bytes"}}}``."""
    out = {name: {} for name in STATS_SETS}
    for item in data.get("nftables", []) if isinstance(data, dict) else []:
        obj = item.get("set")
        if not obj or obj.get("table") != table or obj.get("name") not in out:
            continue
        for elem in obj.get("elem", []):
            inner = elem.get("elem", {}) if isinstance(elem, dict) else {}
            value = inner.get("val", {})
            parts = value.get("concat") if isinstance(value, dict) else None
            if not parts:
                continue
            counter = inner.get("counter") or {}
            key = " . ".join(str(p) for p in parts)
            out[obj["name"]][key] = {"packets": counter.get("packets", 0), "bytes": counter.get("bytes", 0)}
    return out


API_ERRORS = "cloud58_lvs_sync_api_errors_total"


def api_errors_text(errors, director):
    """The sync's failed calls to the API server in the Prometheus text format: ``errors`` is
    {(call, status): count}, call ``list`` or ``watch``, status the HTTP status or ``error``
    (no HTTP answer); one series per pair, in order."""
    lines = [
        f"# HELP {API_ERRORS} Calls to the API server that failed, by call and HTTP status (error: none).",
        f"# TYPE {API_ERRORS} counter",
    ]
    for (call, status), count in sorted(errors.items()):
        lines.append(f'{API_ERRORS}{{director="{director}",call="{call}",status="{status}"}} {count}')
    return "\n".join(lines) + "\n"


def prometheus_text(counters, director):
    """The counters in the Prometheus text format, one series per VIP and realserver."""
    lines = []
    for name, metric, field, help_text in METRICS:
        lines += [f"# HELP {metric} {help_text}", f"# TYPE {metric} counter"]
        for key in sorted(counters.get(name, {})):
            vip, realserver, port = key.split(" . ")
            labels = f'director="{director}",vip="{vip}",realserver="{realserver}",port="{port}"'
            lines.append(f"{metric}{{{labels}}} {counters[name][key][field]}")
    return "\n".join(lines) + "\n"
