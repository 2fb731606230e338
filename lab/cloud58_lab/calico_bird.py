# -*- coding: utf-8 -*-
# Copyright: cloud58 platform team
# Apache License 2.0
"""The BIRD configuration calico-node derives for one node, from the rendered Calico objects.

calico-node turns the Calico API into ``bird.cfg`` with confd templates (BIRD 1.6 syntax,
Calico's fork of BIRD). The BGP lab cannot run calico-node, so :func:`node_speaker_config`
performs the same derivation and writes it in BIRD 2 syntax (Debian's ``bird2``), section
by section, with the object each section comes from in a comment. docs/calico-bgp.md has
the mapping as a table and lists what is not emulated (mesh, peerSelector, passwords,
BGPFilter, communities); those raise :class:`BgpError` instead of being ignored.

Inputs are exactly what a node sees: the objects (``calico_objects``), its Node facts
(name, address, labels, the AS from its ``projectcalico.org/ASNumber`` annotation) and the
IPAM blocks affine to it.
"""

from __future__ import annotations

import ipaddress

from ansible_collections.cloud58.platform.plugins.module_utils.bgp import selector
from ansible_collections.cloud58.platform.plugins.module_utils.bgp.fabric import BgpError

# Calico's template timers (bird.cfg.template: connect delay 2, connect retry 5, error wait 5,30).
CALICO_TIMERS = {"connect_delay": 2, "connect_retry": 5, "error_wait": (5, 30)}
_UNSUPPORTED_PEER_FIELDS = ("peerSelector", "password", "filters", "reachableBy", "localASNumber")


def _by_kind(objects, kind):
    return [o for o in objects if o.get("kind") == kind]


def _proto_name(prefix: str, address: str) -> str:
    return prefix + address.replace(".", "_").replace(":", "_")


def selected_peers(objects, node: dict) -> list:
    """The BGPPeers that apply to ``node`` (node name, nodeSelector on its labels, or global)."""
    peers = []
    for peer in _by_kind(objects, "BGPPeer"):
        spec = peer.get("spec", {})
        bad = [f for f in _UNSUPPORTED_PEER_FIELDS if f in spec]
        if bad:
            raise BgpError(f"BGPPeer {peer['metadata']['name']}: {', '.join(bad)} is not emulated")
        if spec.get("node"):
            if spec["node"] == node["name"]:
                peers.append(("Node_", peer))
        elif spec.get("nodeSelector"):
            if selector.matches(spec["nodeSelector"], node.get("labels", {})):
                peers.append(("Node_", peer))
        else:
            peers.append(("Global_", peer))
    return sorted(peers, key=lambda p: ipaddress.ip_address(p[1]["spec"]["peerIP"]))


def _prefix_set(cidrs, more_specific=True) -> str:
    suffix = "+" if more_specific else ""
    return "[ " + ", ".join(f"{c}{suffix}" for c in cidrs) + " ]"


def node_speaker_config(objects, node: dict, blocks, overrides=None) -> str:
    """BIRD 2 configuration text of ``node``.

    ``node``: ``{"name", "address", "labels": {...}, "asn": int or None}`` (``asn`` is the
    node's ``projectcalico.org/ASNumber`` annotation; None falls back to the default AS).
    ``blocks``: the IPAM blocks affine to the node (CIDR texts).
    ``overrides``: lab-only timer changes, e.g. ``{"connect_retry": 2}``.
    """
    timers = dict(CALICO_TIMERS, **(overrides or {}))
    configs = [o for o in _by_kind(objects, "BGPConfiguration") if o["metadata"]["name"] == "default"]
    bgp = configs[0]["spec"] if configs else {}
    if bgp.get("nodeToNodeMeshEnabled", True):
        raise BgpError(
            "BGPConfiguration default: the node-to-node mesh is on; "
            "the emulation covers peering with ToRs only"
        )
    node_as = node.get("asn") or bgp.get("asNumber", 64512)
    as_source = (
        "Node annotation projectcalico.org/ASNumber" if node.get("asn") else "BGPConfiguration asNumber"
    )
    pools = [p["spec"] for p in _by_kind(objects, "IPPool") if not p["spec"].get("disabled")]
    exported_pools = [p["cidr"] for p in pools if not p.get("disableBGPExport")]
    services = [
        block["cidr"]
        for key in ("serviceClusterIPs", "serviceExternalIPs", "serviceLoadBalancerIPs")
        for block in bgp.get(key, [])
    ]
    blocks = [str(ipaddress.ip_network(b)) for b in blocks]
    for block in blocks:
        if not any(ipaddress.ip_network(block).subnet_of(ipaddress.ip_network(p["cidr"])) for p in pools):
            raise BgpError(f"node {node['name']}: block {block} is in no enabled IPPool")

    out = [
        f"# BIRD 2 configuration that calico-node derives for node {node['name']} (cloud58 emulation).",
        "# Source of each section in brackets; see docs/calico-bgp.md.",
        f"router id {node['address']};  # [Node address]",
        "",
        "# [IPPools] the pools this cluster assigns pod addresses from",
    ]
    out.append(f"define CALICO_POOLS = {_prefix_set(exported_pools)};" if exported_pools else "")
    out += [
        "",
        "# [IPAM blocks of this node] announce each block as one route, never its /32s",
        "function calico_aggr() {",
    ]
    for block in blocks:
        out.append(f"  if net = {block} then accept;")
        out.append(f"  if net ~ [ {block}+ ] then reject;")
    out += ["}", ""]
    out += [
        "# [IPPools + BGPConfiguration service ranges] what the node tells its peers",
        "filter calico_export_to_bgp_peers {",
        "  calico_aggr();",
    ]
    if exported_pools:
        out.append("  if net ~ CALICO_POOLS then accept;")
    if services:
        out.append(f"  if net ~ {_prefix_set(services)} then accept;")
    out += ["  reject;", "}", ""]
    out += [
        "# [calico-node] what goes into the kernel: learnt routes and the block blackholes",
        "filter calico_kernel_programming {",
        "  if source = RTS_DEVICE then reject;",
    ]
    if services:
        out.append('  if proto = "services" then reject;')
    out += ["  accept;", "}", ""]
    out += [
        "protocol device { scan time 2; }",
        "",
        "# ECMP: equal routes from both ToRs become one multipath kernel route",
        "protocol kernel {",
        "  learn;",
        "  persist;",
        "  scan time 2;",
        "  graceful restart;",
        "  merge paths yes;",
        "  ipv4 { import all; export filter calico_kernel_programming; };",
        "}",
        "",
        "protocol direct {",
        "  ipv4;",
        '  interface -"cali*", -"kube-ipvs*", "*";',
        "}",
        "",
    ]
    if blocks:
        out.append("# [IPAM block affinity] a blackhole per block: unassigned addresses stop here")
        out.append("protocol static blocks {")
        out.append("  ipv4;")
        out += [f"  route {b} blackhole;" for b in blocks]
        out += ["}", ""]
    if services:
        out.append("# [BGPConfiguration service*IPs] advertised from every node")
        out.append("protocol static services {")
        out.append("  ipv4;")
        out += [f"  route {c} blackhole;" for c in services]
        out += ["}", ""]
    out += [
        "template bgp bgp_template {",
        '  description "Connection to BGP peer";',
        f"  local as {node_as};  # [{as_source}]",
        "  multihop;",
        "  graceful restart;",
        f"  connect delay time {timers['connect_delay']};",
        f"  connect retry time {timers['connect_retry']};",
        f"  error wait time {timers['error_wait'][0]},{timers['error_wait'][1]};",
        "  ipv4 {",
        "    gateway recursive;",
        "    import all;",
        "    export filter calico_export_to_bgp_peers;",
        "    add paths on;",
        "  };",
        "}",
        "",
    ]
    for prefix, peer in selected_peers(objects, node):
        spec = peer["spec"]
        address = spec["peerIP"].split(":")[0]
        out.append(f"# [BGPPeer {peer['metadata']['name']}]")
        out.append(f"protocol bgp {_proto_name(prefix, address)} from bgp_template {{")
        out.append(f"  neighbor {address} as {spec['asNumber']};")
        if spec.get("sourceAddress", "UseNodeIP") == "UseNodeIP":
            out.append(f"  source address {node['address']};")
        if spec.get("maxRestartTime"):
            seconds = _seconds(spec["maxRestartTime"])
            out.append(f"  graceful restart time {seconds};")
        if spec.get("numAllowedLocalASNumbers"):
            out.append(f"  allow local as {int(spec['numAllowedLocalASNumbers'])};")
        out.append("  ipv4 { next hop %s; };" % ("keep" if spec.get("keepOriginalNextHop") else "self"))
        out.append("}")
        out.append("")
    return "\n".join(line for line in out if line is not None) + "\n"


def _seconds(duration: str) -> int:
    units = {"h": 3600, "m": 60, "s": 1}
    total = 0.0
    number = ""
    for char in duration:
        if char.isdigit() or char == ".":
            number += char
        elif char in units:
            total += float(number) * units[char]
            number = ""
        else:
            raise BgpError(f"duration {duration!r}: only h, m and s are understood")
    return int(total)


def block_assignment(fabric, cluster: str) -> dict:
    """The lab's IPAM: ``{node: [block]}``, each node of a rack the next block of its rack's pool."""
    out = {}
    for rack in fabric.racks:
        pools = [p for p in rack.pod_pools if p.cluster == cluster]
        nodes = sorted((n for n in rack.nodes if n.cluster == cluster), key=lambda n: n.name)
        for pool in pools:
            subnets = ipaddress.ip_network(pool.cidr).subnets(new_prefix=pool.block_size)
            for node, block in zip(nodes, subnets, strict=False):
                out[node.name] = [str(block)]
    return out
