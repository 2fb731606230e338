# -*- coding: utf-8 -*-
# Copyright: cloud58 platform team
# Apache License 2.0
"""Per-pod bandwidth limits on both ends of a pod's veth pair (the node agent cloud58-netshaper).

A pod's limits are its annotations ``kubernetes.io/ingress-bandwidth`` and
``kubernetes.io/egress-bandwidth`` (bits per second, Kubernetes quantities), the ones the CNI
bandwidth plugin applies when the pod starts. This module turns them into tc commands for the
host side of the pod's veth pair, so that a changed annotation takes effect on a running pod:

* **into the pod** (ingress): a ``tbf`` root qdisc on the host-side veth; what the host sends
  into the veth leaves through it.
* **out of the pod** (egress): what the pod sends arrives on the host-side veth's *ingress*,
  where nothing can queue. An ``ingress`` qdisc with a u32 match-all filter redirects it
  (``mirred egress redirect``) to an ``ifb`` device whose ``tbf`` root qdisc shapes it. This is
  the CNI bandwidth plugin's own layout, so the agent changes what the plugin set up in place.
  A ``police`` action on the ingress qdisc would need no extra device but drops every packet
  over the rate instead of queueing it: TCP then backs off in saw-teeth and falls well short
  of the rate, and the drops are the only signal. Shaping through the ifb keeps a queue, so
  TCP settles at the rate.

Nothing here runs a program: ``read_state`` parses ``tc -j`` output, ``plan`` compares the state
with the wanted limits and returns only the commands for what differs (nothing when they
match), ``apply`` runs them through a ``run(argv) -> (rc, stdout, stderr)`` callable that the
agent passes in (tests and the benchmark pass a subprocess wrapper, ``ip netns exec`` included).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass

from ..kube.quantity import parse_quantity

INGRESS_ANNOTATION = "kubernetes.io/ingress-bandwidth"
EGRESS_ANNOTATION = "kubernetes.io/egress-bandwidth"
# What the kubelet accepts for these annotations (it refuses the pod otherwise), bits per second.
MIN_RATE = 10**3
MAX_RATE = 10**15
# tbf: the bucket holds 10 ms at the rate but at least 64 KiB (a GSO packet of a veth), and a
# packet may wait LATENCY_US in the queue before tbf drops it.
BURST_MIN = 65536
BURST_MS = 10
LATENCY_US = 50_000
# Our ifb devices: the prefix and a hash of the host-side veth (15 characters, the kernel's
# limit). The CNI bandwidth plugin names its own "bwp..."; an ifb the redirect already points
# to is used whatever its name, and only ours are deleted when the egress limit goes.
IFB_PREFIX = "c58s"
# What ``tc -j filter show`` gives as a mirred action's target once that device is deleted.
GONE_DEVICE = "*"
# tc reports burst and latency back from the kernel's time units: a few units of rounding.
_TOLERANCE = 0.02


class ShaperError(ValueError):
    """Annotations, device names or tc state that cannot be shaped; names the pod or device and value."""


@dataclass(frozen=True)
class Tbf:
    """A tbf qdisc: rate in bytes per second, bucket in bytes, queue latency in microseconds."""

    rate: int
    burst: int
    latency_us: int

    def matches(self, other: Tbf | None) -> bool:
        return (
            other is not None
            and other.rate == self.rate
            and _close(other.burst, self.burst)
            and _close(other.latency_us, self.latency_us)
        )

    def args(self) -> list[str]:
        return [
            "tbf",
            "rate",
            f"{self.rate * 8}bit",
            "burst",
            str(self.burst),
            "latency",
            f"{self.latency_us}us",
        ]


@dataclass(frozen=True)
class VethState:
    """What tc shows on the host-side veth (and the ifb its ingress redirects to)."""

    root_tbf: Tbf | None = None
    root_kind: str | None = None  # kind of the root qdisc the veth has (None: the default)
    ingress_qdisc: bool = False
    redirect_to: str | None = None  # the ifb the ingress filter redirects to
    # The filter's redirect points at a device that is gone: tc shows its target as "*" once the
    # device is deleted (the CNI bandwidth plugin's DEL removes its ifb before the veth goes).
    stale_redirect: bool = False
    ifb_exists: bool = False
    ifb_tbf: Tbf | None = None
    ifb_root_kind: str | None = None


def _close(got: int, want: int) -> bool:
    return abs(got - want) <= max(2, want * _TOLERANCE)


def parse_rate(value, where: str) -> int:
    """A rate in bits per second from an annotation value (``10M``, ``1G``); ShaperError naming ``where``."""
    try:
        rate = parse_quantity(value)
    except ValueError:
        raise ShaperError(
            f"{where}: {value!r} is not a rate in bits per second as a Kubernetes quantity (like 10M, 1G)"
        ) from None
    if rate < MIN_RATE:
        raise ShaperError(f"{where}: {value!r} is below 1k (1 kbit/s), the smallest rate the kubelet accepts")
    if rate > MAX_RATE:
        raise ShaperError(f"{where}: {value!r} is above 1P (1 Pbit/s), the largest rate the kubelet accepts")
    return int(rate)


def limits_from_annotations(pod: str, annotations: dict) -> dict:
    """``{"ingress": bits or None, "egress": bits or None}`` from a pod's annotations."""
    out = {}
    for direction, key in (("ingress", INGRESS_ANNOTATION), ("egress", EGRESS_ANNOTATION)):
        value = (annotations or {}).get(key)
        out[direction] = None if value is None else parse_rate(value, f"pod {pod}: annotation {key}")
    return out


def tbf_for(bits: int) -> Tbf:
    """The tbf that holds traffic to ``bits`` per second."""
    rate = max(1, bits // 8)
    return Tbf(rate=rate, burst=max(BURST_MIN, rate * BURST_MS // 1000), latency_us=LATENCY_US)


def ifb_name(veth: str) -> str:
    """Our ifb device for a host-side veth: ``c58s`` and 11 hex digits of its name's hash."""
    return IFB_PREFIX + hashlib.sha256(veth.encode("utf-8")).hexdigest()[:11]


def check_device(name: str, what: str) -> str:
    """A network device name as the kernel allows it; ShaperError naming it otherwise."""
    if (
        not isinstance(name, str)
        or not 0 < len(name) <= 15
        or any(c in name for c in "/ \t\n:")
        or name in {".", ".."}
    ):
        raise ShaperError(
            f"{what}: {name!r} is not a network device name (1 to 15 characters, no '/', ':' or space)"
        )
    return name


def _tbf_of(qdisc: dict) -> Tbf:
    options = qdisc.get("options") or {}
    return Tbf(
        rate=int(options.get("rate", 0)),
        burst=int(options.get("burst", 0)),
        latency_us=int(options.get("lat", 0)),
    )


def _root(qdiscs: list) -> dict | None:
    return next((q for q in qdiscs if q.get("root")), None)


def read_state(veth_qdiscs: str, veth_filters: str, ifb_qdiscs: str | None) -> VethState:
    """The state from ``tc -j qdisc show dev <veth>``, ``tc -j filter show dev <veth> ingress`` and
    ``tc -j qdisc show dev <ifb>`` (None: no ifb is redirected to, or it does not exist)."""
    qdiscs = json.loads(veth_qdiscs or "[]")
    root = _root(qdiscs)
    redirect, stale = None, False
    for flt in json.loads(veth_filters or "[]"):
        for action in (flt.get("options") or {}).get("actions") or []:
            if action.get("kind") == "mirred" and action.get("mirred_action") == "redirect":
                redirect = action.get("to_dev")
    if redirect == GONE_DEVICE:  # never a name to create a device by: the kernel accepts "*"
        redirect, stale = None, True
    ifb_root = _root(json.loads(ifb_qdiscs)) if ifb_qdiscs is not None else None
    return VethState(
        root_tbf=_tbf_of(root) if root and root.get("kind") == "tbf" else None,
        root_kind=root.get("kind") if root else None,
        ingress_qdisc=any(q.get("kind") == "ingress" for q in qdiscs),
        redirect_to=redirect,
        stale_redirect=stale,
        ifb_exists=ifb_qdiscs is not None,
        ifb_tbf=_tbf_of(ifb_root) if ifb_root and ifb_root.get("kind") == "tbf" else None,
        ifb_root_kind=ifb_root.get("kind") if ifb_root else None,
    )


def plan(veth: str, state: VethState, limits: dict) -> list[list[str]]:
    """The commands (argv lists) that bring ``state`` to ``limits`` (bits per second or None).

    Only what differs: [] when the state already holds the limits.
    """
    check_device(veth, "veth")
    commands: list[list[str]] = []
    ingress = limits.get("ingress")
    if ingress is not None:
        want = tbf_for(ingress)
        if not want.matches(state.root_tbf):
            commands.append(["tc", "qdisc", "replace", "dev", veth, "root", *want.args()])
    elif state.root_tbf is not None:
        commands.append(["tc", "qdisc", "del", "dev", veth, "root"])

    egress = limits.get("egress")
    ifb = state.redirect_to or ifb_name(veth)
    if egress is not None:
        want = tbf_for(egress)
        ingress_qdisc = state.ingress_qdisc
        if state.stale_redirect:  # the filter leads nowhere: drop it with its qdisc, redirect anew
            commands.append(["tc", "qdisc", "del", "dev", veth, "ingress"])
            ingress_qdisc = False
        if not state.ifb_exists:
            commands.append(["ip", "link", "add", ifb, "type", "ifb"])
            commands.append(["ip", "link", "set", ifb, "up"])
        if not want.matches(state.ifb_tbf):
            commands.append(["tc", "qdisc", "replace", "dev", ifb, "root", *want.args()])
        if state.redirect_to is None:
            if not ingress_qdisc:
                commands.append(["tc", "qdisc", "add", "dev", veth, "ingress"])
            commands.append(
                [
                    "tc", "filter", "add", "dev", veth, "parent", "ffff:", "protocol", "all",
                    "u32", "match", "u32", "0", "0", "action", "mirred", "egress", "redirect", "dev", ifb,
                ]
            )  # fmt: skip
    else:
        if state.ingress_qdisc:
            commands.append(["tc", "qdisc", "del", "dev", veth, "ingress"])
        if state.redirect_to and state.redirect_to.startswith(IFB_PREFIX) and state.ifb_exists:
            commands.append(["ip", "link", "del", state.redirect_to])
    return commands


def applied(state: VethState) -> dict:
    """The limits ``state`` enforces, bits per second: ``{"ingress": n or None, "egress": n or None}``."""
    egress = state.ifb_tbf if state.redirect_to and state.ifb_exists else None
    return {
        "ingress": state.root_tbf.rate * 8 if state.root_tbf else None,
        "egress": egress.rate * 8 if egress else None,
    }


def orphan_ifbs(links: str) -> list[str]:
    """Our ifb devices whose veth is gone, from ``ip -j -d link show``: a pod deleted while its
    egress went through an ifb of ours leaves it behind, as the veth's deletion does not take it.
    Only ``c58s`` ifbs (``ifb_name`` of no link present) are named; the CNI plugin's are its own."""
    present = json.loads(links or "[]")
    wanted = {ifb_name(link["ifname"]) for link in present if link.get("ifname")}
    return sorted(
        link["ifname"]
        for link in present
        if str(link.get("ifname", "")).startswith(IFB_PREFIX)
        and (link.get("linkinfo") or {}).get("info_kind") == "ifb"
        and link["ifname"] not in wanted
    )


def show_commands(veth: str, ifb: str | None) -> list[list[str]]:
    """The ``tc -j`` commands whose output ``read_state`` takes (the ifb's only when there is one)."""
    commands = [
        ["tc", "-j", "-s", "qdisc", "show", "dev", veth],
        ["tc", "-j", "filter", "show", "dev", veth, "ingress"],
    ]
    if ifb:
        commands.append(["tc", "-j", "-s", "qdisc", "show", "dev", ifb])
    return commands


def current_state(veth: str, run) -> VethState:
    """Read the veth's (and its ifb's) tc state through ``run``."""
    check_device(veth, "veth")
    qdiscs = _must(run, show_commands(veth, None)[0])
    filters = _must(run, show_commands(veth, None)[1])
    redirect = read_state("[]", filters, None).redirect_to
    ifb = redirect or ifb_name(veth)
    rc, out, _err = run(["tc", "-j", "-s", "qdisc", "show", "dev", ifb])
    return read_state(qdiscs, filters, out if rc == 0 else None)


def apply(veth: str, limits: dict, run) -> dict:
    """Bring the veth to ``limits``; ``{"changed", "commands", "applied"}``. Runs nothing when it holds."""
    state = current_state(veth, run)
    commands = plan(veth, state, limits)
    for argv in commands:
        _must(run, argv)
    return {"changed": bool(commands), "commands": [" ".join(c) for c in commands], "applied": limits}


def drops(veth_qdiscs: str, ifb_qdiscs: str | None) -> dict:
    """Packets the shaping qdiscs dropped: ``{"ingress": n, "egress": n}`` from ``tc -j -s qdisc show``."""
    root = _root(json.loads(veth_qdiscs or "[]"))
    ifb_root = _root(json.loads(ifb_qdiscs)) if ifb_qdiscs else None
    return {
        "ingress": int(root.get("drops", 0)) if root and root.get("kind") == "tbf" else 0,
        "egress": int(ifb_root.get("drops", 0)) if ifb_root and ifb_root.get("kind") == "tbf" else 0,
    }


def _must(run, argv: list[str]) -> str:
    rc, out, err = run(argv)
    if rc != 0:
        raise ShaperError(f"{' '.join(argv)}: {(err or out or '').strip() or f'exit status {rc}'}")
    return out
