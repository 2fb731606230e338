# -*- coding: utf-8 -*-
# Copyright: cloud58 platform team
# Apache License 2.0
"""What the LVS director's exporter (``cloud58-lvs-exporter``, role lvs_director) serves.

The exporter reads the director's full-NAT table (``nft -j list table ip cloud58_fullnat``,
parsed by :func:`fullnat.read_table`) at each scrape and answers in the Prometheus text
format (job ``lvs`` of the datacenter's Prometheus, alert ``LvsVipWithoutRealservers``):

* ``cloud58_lvs_table_present{director}``: 1 while the table exists, else 0 (and no VIP
  series: a director whose table is gone is not "a VIP without realservers");
* ``cloud58_lvs_vip_realservers{director,vip}``: per address of the set ``vips``, the
  distinct ``realserver . port`` values of its entries in the map ``realservers``, 0 for a
  VIP with none;
* ``cloud58_lvs_vip_ports{director,vip}``: the VIP's distinct ports in that map;

and, when it is given BIRD's control socket, the director's BGP sessions (alert
``BgpSessionDown``), from ``birdc show protocols all`` (parsed by :func:`bird_bgp_sessions`):

* ``cloud58_bgp_speaker_up{director}``: 1 while BIRD answers on its socket, else 0 (and no
  session series);
* ``cloud58_bgp_session_up{director,peer,neighbor}``: per BGP protocol, 1 while its state is
  ``Established``, else 0; ``peer`` is the router's name, the last word of the protocol's
  description (``announce.py`` writes ``ToR <name>``), else the protocol's name.

Pure: plain data in, text out.
"""

from __future__ import annotations

from .fullnat import element_order


def vip_realservers(state) -> dict:
    """:func:`fullnat.read_table`'s state -> ``{vip: {"realservers": n, "ports": n}}`` for every
    address of the set ``vips`` (and any VIP the map names beyond it), in address order."""
    elements = state.get("elements", {})
    seen = {vip: (set(), set()) for vip in elements.get("vips", {})}
    for key, value in elements.get("realservers", {}).items():
        vip, port, _slot = key.split(" . ")
        realservers, ports = seen.setdefault(vip, (set(), set()))
        realservers.add(value)
        ports.add(port)
    return {
        vip: {"realservers": len(seen[vip][0]), "ports": len(seen[vip][1])}
        for vip in sorted(seen, key=element_order)
    }


def metrics_text(state, director) -> str:
    """The exporter's answer for ``state`` (``None``: the table does not exist)."""
    present = state is not None
    lines = [
        "# HELP cloud58_lvs_table_present 1 while the director's full-NAT table exists.",
        "# TYPE cloud58_lvs_table_present gauge",
        f'cloud58_lvs_table_present{{director="{director}"}} {int(present)}',
    ]
    vips = vip_realservers(state) if present else {}
    for field, help_text in (
        (
            "realservers",
            "Distinct realservers (address and port) in the VIP's entries of the realservers map.",
        ),
        ("ports", "Distinct ports of the VIP in the realservers map."),
    ):
        metric = f"cloud58_lvs_vip_{field}"
        lines += [f"# HELP {metric} {help_text}", f"# TYPE {metric} gauge"]
        lines += [
            f'{metric}{{director="{director}",vip="{vip}"}} {counts[field]}' for vip, counts in vips.items()
        ]
    return "\n".join(lines) + "\n"


def bird_bgp_sessions(text: str) -> list:
    """``birdc show protocols all`` -> ``[{"protocol", "peer", "neighbor", "state"}]`` for its BGP
    protocols, in the order BIRD lists them. ``state`` is the ``BGP state:`` line (``Established``,
    ``Active``, ``Connect``, ...; ``Down`` for a protocol without one, e.g. disabled)."""
    sessions, current = [], None
    for line in text.splitlines():
        if not line.strip():
            continue
        if not line[0].isspace():
            words = line.split()
            current = None
            if len(words) >= 2 and words[1] == "BGP":  # a protocol's line: name, proto, table, state...
                current = {"protocol": words[0], "peer": words[0], "neighbor": "", "state": "Down"}
                sessions.append(current)
            continue
        if current is None:
            continue
        key, sep, value = line.strip().partition(":")
        if not sep:
            continue
        value = value.strip()
        if key == "Description" and value:
            current["peer"] = value.split()[-1]
        elif key == "BGP state":
            current["state"] = value
        elif key == "Neighbor address":
            current["neighbor"] = value
    return sessions


def bgp_metrics_text(sessions, director) -> str:
    """The BGP part of the exporter's answer (``sessions``: :func:`bird_bgp_sessions`' list, or
    ``None`` when BIRD did not answer)."""
    lines = [
        "# HELP cloud58_bgp_speaker_up 1 while the director's BIRD answers on its control socket.",
        "# TYPE cloud58_bgp_speaker_up gauge",
        f'cloud58_bgp_speaker_up{{director="{director}"}} {int(sessions is not None)}',
        "# HELP cloud58_bgp_session_up 1 while the BGP session to the peer is established.",
        "# TYPE cloud58_bgp_session_up gauge",
    ]
    lines += [
        f'cloud58_bgp_session_up{{director="{director}",peer="{s["peer"]}",neighbor="{s["neighbor"]}"}} '
        f"{int(s['state'] == 'Established')}"
        for s in sessions or []
    ]
    return "\n".join(lines) + "\n"
