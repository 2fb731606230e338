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
