# -*- coding: utf-8 -*-
# Copyright: cloud58 platform team
# Apache License 2.0
"""The pods of a node as the node agent cloud58-netshaper follows them (``watch``).

Pure functions over pod objects as the API server returns them (plain dicts): which pods the
agent acts on, the host-side veth of a pod, the pod's PID limit and the path of its cgroup's
``pids.max``, and the agent's metrics in the Prometheus text format. The watch, tc and the
cgroup files are the agent's (agents/cloud58_netshaper.py); the tc commands are shaper.py's.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass

from . import exposition
from .shaper import ShaperError, limits_from_annotations

# The pod annotation of an app's pids_limit (render/apps.py writes it; the same name).
PIDS_LIMIT_ANNOTATION = "cloud58.io/pids-limit"
PIDS_LIMIT_MAX = 4194304  # the kernel's pid_max on 64-bit hosts
# Calico's host-side veth of a workload: the prefix (FELIX_INTERFACEPREFIX) and 11 hex digits
# of sha1("<namespace>.<pod>") (libcalico-go's VethNameForWorkload).
VETH_PREFIX = "cali"
# How the agent finds a pod's host-side veth: by Calico's name, by the pod's address (the peer
# of the interface that holds status.podIP in one of the node's network namespaces: any CNI
# plugin's veth, the bridge plugin's veth<hex> included), or the name first, then the address.
VETH_LOOKUPS = ("calico", "address", "auto")
CGROUP_DRIVERS = ("cgroupfs", "systemd")
_QOS = {"Guaranteed": "", "Burstable": "burstable", "BestEffort": "besteffort"}


@dataclass(frozen=True)
class PodView:
    """What the agent needs of one pod: its key, veth, limits, PID limit and cgroup."""

    key: str  # namespace/name
    uid: str
    veth: str
    limits: dict  # {"ingress": bits or None, "egress": bits or None}
    pids_limit: int | None
    qos: str
    address: str = ""  # status.podIP ("" until the pod has one)


def pod_key(pod: dict) -> str:
    meta = pod.get("metadata") or {}
    return f"{meta.get('namespace', '')}/{meta.get('name', '')}"


def calico_veth(namespace: str, name: str, prefix: str = VETH_PREFIX) -> str:
    """The host-side veth Calico's CNI plugin gives pod ``namespace/name``."""
    digest = hashlib.sha1(f"{namespace}.{name}".encode(), usedforsecurity=False).hexdigest()
    return prefix + digest[:11]


def pids_limit_from_annotations(pod: str, annotations: dict) -> int | None:
    """The pod's ``cloud58.io/pids-limit`` (1..4194304), None without one; ShaperError naming the pod."""
    value = (annotations or {}).get(PIDS_LIMIT_ANNOTATION)
    if value is None:
        return None
    where = f"pod {pod}: annotation {PIDS_LIMIT_ANNOTATION}"
    text = str(value).strip()
    if not text.isdigit():
        raise ShaperError(f"{where}: {value!r} is not a whole number of processes")
    limit = int(text)
    if not 1 <= limit <= PIDS_LIMIT_MAX:
        raise ShaperError(f"{where}: {value!r} is not between 1 and {PIDS_LIMIT_MAX}")
    return limit


def view(pod: dict, veth_prefix: str = VETH_PREFIX) -> PodView | None:
    """The agent's view of a pod; None for a pod with nothing to shape (host network, finished,
    being deleted: the kubelet tears its sandbox down, and shaping it then would race the CNI
    plugins' DEL, which removes the bandwidth plugin's ifb before the veth).

    ShaperError (naming the pod, the annotation and the value) for a bad annotation.
    """
    meta = pod.get("metadata") or {}
    spec = pod.get("spec") or {}
    status = pod.get("status") or {}
    if (
        spec.get("hostNetwork")
        or status.get("phase") in ("Succeeded", "Failed")
        or meta.get("deletionTimestamp")
    ):
        return None
    key = pod_key(pod)
    annotations = meta.get("annotations") or {}
    return PodView(
        key=key,
        uid=meta.get("uid", ""),
        veth=calico_veth(meta.get("namespace", ""), meta.get("name", ""), veth_prefix),
        limits=limits_from_annotations(key, annotations),
        pids_limit=pids_limit_from_annotations(key, annotations),
        qos=status.get("qosClass") or "BestEffort",
        address=status.get("podIP") or "",
    )


def veths_by_address(namespaces: dict, host_links: str) -> dict:
    """``{address: host-side veth}`` of the pods on this host.

    ``namespaces``: network namespace -> ``ip -j addr show`` inside it; ``host_links``:
    ``ip -j link show`` where the agent shapes. An interface of a namespace whose peer is a
    link here gives that link to each of its addresses. Peer means both ends name each other:
    the link's ifindex is the interface's link_index and the link's link_index the
    interface's ifindex (an ifindex alone recurs in every namespace).
    """
    peers = {
        (link.get("ifindex"), link.get("link_index")): link.get("ifname")
        for link in json.loads(host_links or "[]")
    }
    found = {}
    for name in sorted(namespaces):
        for link in json.loads(namespaces[name] or "[]"):
            veth = peers.get((link.get("link_index"), link.get("ifindex")))
            if veth is None:
                continue
            for address in link.get("addr_info") or []:
                if address.get("local"):
                    found.setdefault(address["local"], veth)
    return found


def pod_cgroup(uid: str, qos: str, driver: str = "cgroupfs") -> str:
    """The pod's cgroup relative to the hierarchy's root, as the kubelet names it.

    cgroupfs: ``kubepods/besteffort/pod<uid>`` (Guaranteed pods directly under ``kubepods``);
    systemd: ``kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod<uid_>.slice``.
    """
    if driver not in CGROUP_DRIVERS:
        raise ShaperError(f"--cgroup-driver: {driver!r} is not one of {', '.join(CGROUP_DRIVERS)}")
    if qos not in _QOS:
        raise ShaperError(f"pod uid {uid}: QoS class {qos!r} is not one of {', '.join(_QOS)}")
    tier = _QOS[qos]
    if driver == "cgroupfs":
        return "/".join(p for p in ("kubepods", tier, f"pod{uid}") if p)
    escaped = uid.replace("-", "_")
    if not tier:
        return f"kubepods.slice/kubepods-pod{escaped}.slice"
    return f"kubepods.slice/kubepods-{tier}.slice/kubepods-{tier}-pod{escaped}.slice"


def default_cgroup_root(unified_marker: str = "/sys/fs/cgroup/cgroup.controllers") -> str:
    """The root of the hierarchy with ``pids.max``: cgroup v2's unified one, else v1's pids controller."""
    return "/sys/fs/cgroup" if os.path.exists(unified_marker) else "/sys/fs/cgroup/pids"


def pids_max_path(root: str, uid: str, qos: str, driver: str = "cgroupfs") -> str:
    return os.path.join(root, pod_cgroup(uid, qos, driver), "pids.max")


def metrics_text(node: str, pods: dict) -> str:
    """Prometheus text of ``{pod key: {"veth", "applied": {...}, "drops": {...}, "pids_max": n or None}}``.

    Applied rates in bits per second (a direction without a limit has no series), drops of the
    shaping qdiscs, and the pids.max the agent wrote.
    """
    directions = ("ingress", "egress")
    rates, drops, pids = [], [], []
    for key in sorted(pods):
        entry = pods[key]
        for direction in directions:
            where = {"node": node, "pod": key, "veth": entry["veth"], "direction": direction}
            rate = (entry.get("applied") or {}).get(direction)
            if rate is not None:
                rates.append((where, rate))
            drops.append((where, (entry.get("drops") or {}).get(direction, 0)))
        if entry.get("pids_max") is not None:
            pids.append(({"node": node, "pod": key}, entry["pids_max"]))
    return exposition.text(
        [
            exposition.family(
                "cloud58_netshaper_rate_bits",
                "gauge",
                "Bandwidth limit on the pod's veth pair, bits per second.",
                rates,
            ),
            exposition.family(
                "cloud58_netshaper_drops_total",
                "counter",
                "Packets dropped by the shaping qdiscs of the pod's veth pair.",
                drops,
            ),
            exposition.family(
                "cloud58_netshaper_pids_max", "gauge", "pids.max the agent wrote into the pod's cgroup.", pids
            ),
        ]
    )
