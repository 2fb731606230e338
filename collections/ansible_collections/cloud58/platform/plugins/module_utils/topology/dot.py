# -*- coding: utf-8 -*-
# Copyright: cloud58 platform team
# Apache License 2.0
"""The picture of a datacenter, as Graphviz DOT source built from a plan.

``render_dot(plan, "bj1")`` draws the core routers, every rack (subnet, node AS) with its
two ToRs (AS), the hosts that matter one by one (masters, events etcd, LVS directors,
Consul servers) and the minions of a rack as one box, the BGP sessions (host-ToR and
ToR-core, with their AS numbers), the VIPs and the directors announcing them, and the
clusters' API endpoints. ``dot -Tsvg`` turns it into the SVG (scripts/topology.py).
The output is deterministic: the same plan gives the same DOT text.
"""

from __future__ import annotations

_ROLE_STYLE = {
    "master": ("#f4c542", "master"),
    "etcd_events": ("#f39c6b", "events etcd"),
    "lvs": ("#7fb3e6", "LVS director"),
    "consul_server": ("#9fd89f", "Consul server"),
}


def _q(text) -> str:
    """A DOT double-quoted string."""
    return '"' + str(text).replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'


def _attrs(**attrs) -> str:
    return "[" + ", ".join(f"{k}={_q(v)}" for k, v in attrs.items()) + "]"


def _node(name, indent="    ", **attrs) -> str:
    return f"{indent}{_q(name)} {_attrs(**attrs)};"


def _edge(tail, head, indent="    ", **attrs) -> str:
    return f"{indent}{_q(tail)} -> {_q(head)}" + (f" {_attrs(**attrs)}" if attrs else "") + ";"


def _short_range(addresses) -> str:
    """``10.16.1.101 - .117`` for a sorted list of addresses."""
    if not addresses:
        return ""
    if len(addresses) == 1:
        return addresses[0]
    return f"{addresses[0]} - .{addresses[-1].rsplit('.', 1)[1]}"


def render_dot(plan, datacenter) -> str:
    """DOT source of one datacenter of ``plan``; KeyError names a datacenter it lacks."""
    dc = plan["datacenters"][datacenter]
    hosts = plan["hosts"]
    clusters = [plan["clusters"][name] for name in dc["clusters"]]
    routers = dc["routers"]
    lines = [
        f"digraph {_q('datacenter ' + datacenter)} {{",
        "  graph [rankdir=TB, fontname=Helvetica, fontsize=11, nodesep=0.25, ranksep=0.9, newrank=true,",
        f"         labelloc=t, label={_q(_caption(dc, clusters))}];",
        '  node [fontname=Helvetica, fontsize=10, shape=box, style="rounded,filled", fillcolor=white];',
        '  edge [fontname=Helvetica, fontsize=8, arrowhead=none, color="#555555"];',
    ]
    # core routers
    lines.append("  subgraph cores {")
    lines.append("    rank=same;")
    for name, core in routers["cores"].items():
        label = f"{name}\ncore AS {core['asn']}\n{core['router_id']}"
        lines.append(f"    {_q(name)} {_attrs(label=label, shape='box3d', fillcolor='#d9d2e9')};")
    lines.append("  }")
    # racks: ToRs and hosts
    for rack_name, rack in dc["racks"].items():
        pools = ", ".join(f"{c}: {cidr}" for c, cidr in rack["pod_pools"].items())
        label = f"rack {rack_name}\n{rack['node_subnet']}  node AS {rack['node_asn']}"
        if pools:
            label += f"\npods {pools}"
        lines.append(f"  subgraph {_q('cluster_' + rack_name)} {{")
        lines.append(f'    label={_q(label)}; style=rounded; color="#888888";')
        tor_names = []
        for tor in rack["tors"]:
            tor_names.append(tor["name"])
            tor_label = f"{tor['name']}\nToR AS {tor['asn']}\n{tor['address']}"
            lines.append(_node(tor["name"], label=tor_label, shape="box3d", fillcolor="#e8e8e8"))
        minions = []
        for host_name in rack["hosts"]:
            host = hosts[host_name]
            roles = [r for r in host["roles"] if r in _ROLE_STYLE]
            if not roles:
                minions.append(host)
                continue
            color = _ROLE_STYLE[roles[0]][0]
            what = " + ".join(_ROLE_STYLE[r][1] for r in roles)
            host_label = f"{host_name}\n{what}\n{host['address']}"
            lines.append(f"    {_q(host_name)} {_attrs(label=host_label, fillcolor=color)};")
            for tor in tor_names:
                lines.append(f"    {_q(tor)} -> {_q(host_name)} [style=dashed];")
        if minions:
            node_id = f"{rack_name}/minions"
            functions = sorted({m["labels"].get("function", "") for m in minions} - {""})
            minion_label = (
                f"{len(minions)} minion{'s' if len(minions) != 1 else ''}\n"
                f"{_short_range(sorted((m['address'] for m in minions), key=_addr_key))}"
            )
            if functions:
                minion_label += "\n" + ", ".join(functions)
            lines.append(_node(node_id, label=minion_label, shape="folder", fillcolor="#eef5ff"))
            for tor in tor_names:
                lines.append(_edge(tor, node_id, style="dashed", label=f"{len(minions)} BGP"))
        lines.append("  }")
    # ToR <-> core sessions (the /31 of each link is in the plan, not in the picture)
    for tor_name, tor in routers["tors"].items():
        for uplink in tor["uplinks"]:
            core = routers["cores"][uplink["core"]]
            label = f"{tor['asn']}-{core['asn']}"
            lines.append(f"  {_q(uplink['core'])} -> {_q(tor_name)} {_attrs(label=label, color='#6a51a3')};")
    # VIPs and the directors that announce them
    if dc["lvs"]["vips"]:
        lines.append("  subgraph vips {")
        lines.append("    rank=same;")
        for vip_name, vip in dc["lvs"]["vips"].items():
            ports = ",".join(str(p) for p in vip["ports"])
            vip_label = f"VIP {vip_name}\n{vip['address']}:{ports}"
            lines.append(_node("vip/" + vip_name, label=vip_label, shape="note", fillcolor="#fff2cc"))
        lines.append("  }")
        for vip_name, vip in dc["lvs"]["vips"].items():
            for director in vip["directors"]:
                lines.append(
                    _edge(director, "vip/" + vip_name, "  ", style="dotted", color="#1f77b4", label="BGP")
                )
    lines.append("}")
    return "\n".join(lines) + "\n"


def _addr_key(text):
    return tuple(int(part) for part in text.split("."))


def _caption(dc, clusters) -> str:
    parts = [
        f"datacenter {dc['name']} (region {dc['region']})   "
        f"BGP {dc['bgp']['mode']}, core AS {dc['bgp']['core_asn']}   "
        f"Consul {dc['consul']['datacenter']}: {len(dc['consul']['servers'])} servers"
    ]
    for cluster in clusters:
        api = cluster["api"]
        parts.append(
            f"cluster {cluster['name']}: API {api['server']} (VIP {api['vip']})   "
            f"pods {cluster['pod_cidr']} /{cluster['pod_block_size']} blocks   "
            f"services {cluster['service_cidr']}"
        )
    return "\n".join(parts)
