# -*- coding: utf-8 -*-
# Copyright: cloud58 platform team
# Apache License 2.0
"""An app's ``vip:`` section: the Service annotations cloud58-lvs-sync selects on, and the
checks against the plan that need every app and every datacenter at once.

``vip: {address, port, protocol, scheduler, toa}`` claims ``address:port`` of the
datacenter's LVS directors for the app's Service. The renderer annotates the Service with
``lvs.cloud58.io/vip`` (the address), ``lvs.cloud58.io/scheduler`` (when set) and
``lvs.cloud58.io/toa``, and gives it the VIP port (``name: vip``) when it differs from
``service.port``. Every message names the file, the app, the VIP and the port.
"""

from __future__ import annotations

import ipaddress

from ..lvs.sync import ANNOTATION_SCHEDULER, ANNOTATION_VIP

ANNOTATION_TOA = "lvs.cloud58.io/toa"
VIP_PORT_NAME = "vip"


def vip_label(spec_or_raw) -> str:
    """``app <name>, VIP <address>:<port>`` of a spec (or a raw document), for messages."""
    raw = spec_or_raw if isinstance(spec_or_raw, dict) else {}
    vip = raw.get("vip")
    if not isinstance(vip, dict):
        return f"app {raw.get('name')}"
    return f"app {raw.get('name')}, VIP {vip.get('address')}:{vip.get('port')}"


def vip_annotations(vip: dict) -> dict:
    """The Service annotations of a ``vip:`` section (defaults filled)."""
    out = {ANNOTATION_VIP: vip["address"], ANNOTATION_TOA: "true" if vip["toa"] else "false"}
    if vip["scheduler"] is not None:
        out[ANNOTATION_SCHEDULER] = vip["scheduler"]
    return out


def vip_spec_problems(rel: str, spec: dict) -> list[str]:
    """Rules of one spec's ``vip:`` that need no plan (the schema has passed)."""
    vip = spec.get("vip")
    if vip is None:
        return []
    problems = []
    label = vip_label(spec)
    try:
        ipaddress.IPv4Address(vip["address"])
    except ValueError:
        problems.append(
            f"{rel}: vip.address: {label}: {vip['address']!r} is not an IPv4 address (rule: vip-ipv4)"
        )
    if not spec["service"]["enabled"]:
        problems.append(
            f"{rel}: vip: {label}: service.enabled is false; the directors find the realservers "
            "through the app's Service (rule: vip-needs-service)"
        )
    return problems


def vip_plan_problems(specs: list[tuple[str, dict]], targets: dict) -> list[str]:
    """Each app's VIP against the plan of each cluster it runs in: inside the datacenter's
    VIP range, a VIP of the plan, one of its ports, and claimed by one app in one cluster
    (cloud58-lvs-sync gives a VIP to one Service). ``targets``: cluster name -> ClusterTarget;
    clusters without a plan (made by hand) are skipped."""
    problems = []
    # (datacenter, address) -> (file, app, cluster, port) of the first claim
    claims: dict[tuple[str, str], tuple[str, str, str, int]] = {}
    for rel, spec in specs:
        vip = spec.get("vip")
        if vip is None:
            continue
        label = vip_label(spec)
        address = ipaddress.IPv4Address(vip["address"])
        for cluster in sorted(spec["clusters"]):
            target = targets.get(cluster)
            if target is None or target.plan is None:
                continue
            dc = target.datacenter
            where = f"{rel}: vip.address: {label}"
            dc_plan = target.plan["datacenters"][dc]
            pool = dc_plan["networks"].get("vip_pool")
            if pool is None or address not in ipaddress.IPv4Network(pool):
                problems.append(
                    f"{where}: outside the VIP range {pool or '(none)'} of datacenter {dc} "
                    f"(cluster {cluster}) (rule: vip-in-range)"
                )
                continue
            plan_vips = dc_plan["lvs"]["vips"]
            name = next((n for n in sorted(plan_vips) if plan_vips[n]["address"] == vip["address"]), None)
            if name is None:
                known = ", ".join(f"{n} {plan_vips[n]['address']}" for n in sorted(plan_vips)) or "none"
                problems.append(
                    f"{where}: not a VIP of datacenter {dc} in the inventory (its VIPs: {known}) "
                    "(rule: vip-in-plan)"
                )
                continue
            clusters = target.plan["clusters"]
            api = [c for c in dc_plan["clusters"] if clusters[c]["api"].get("vip_name") == name]
            if api:
                problems.append(
                    f"{where}: VIP {name} is the API VIP of cluster {api[0]} (rule: one-claim-per-vip)"
                )
                continue
            ports = plan_vips[name]["ports"]
            if vip["port"] not in ports:
                problems.append(
                    f"{rel}: vip.port: {label}: not a port of VIP {name} "
                    f"(ports: {', '.join(str(p) for p in ports)}) (rule: vip-port-in-plan)"
                )
                continue
            other = claims.setdefault((dc, vip["address"]), (rel, spec["name"], cluster, vip["port"]))
            if other[:3] != (rel, spec["name"], cluster):
                by = f"app {other[1]} ({other[0]})" if other[1] != spec["name"] else "this app"
                problems.append(
                    f"{where}: VIP {name} is already claimed by {by} in cluster {other[2]}, port "
                    f"{other[3]}; a VIP belongs to one app in one cluster (rule: one-claim-per-vip)"
                )
    return problems
