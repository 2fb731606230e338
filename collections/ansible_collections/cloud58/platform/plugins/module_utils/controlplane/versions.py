# -*- coding: utf-8 -*-
# Copyright: cloud58 platform team
# Apache License 2.0
"""Versions of the control plane and the Kubernetes version skew policy.

One variable pins the control plane (``v1.36.3``): every kube-* image carries it, and the
etcd image comes from :data:`ETCD_FOR_MINOR` unless an etcd version is pinned too. The
skew rules are those of https://kubernetes.io/releases/version-skew-policy/:

* kube-apiserver instances of one cluster: at most 1 minor version apart;
* kube-controller-manager and kube-scheduler: never newer than the oldest apiserver,
  at most 1 minor older;
* kubelet: never newer than the oldest apiserver, at most 3 minors older;
* an upgrade moves one minor version at a time (1.35 to 1.36, never 1.34 to 1.36), and
  never downgrades a minor version;
* etcd: a version the Kubernetes minor supports (:data:`ETCD_SUPPORTED`).
"""

from __future__ import annotations

import re

_VERSION = re.compile(r"^v?(\d+)\.(\d+)\.(\d+)(?:[-+][0-9A-Za-z.-]+)?$")

# The etcd release the control plane runs for a Kubernetes minor: the one upstream/go.mod
# pins next to that Kubernetes (so the lab runs exactly what production gets). Other minors
# need control_plane_etcd_version.
ETCD_FOR_MINOR = {
    (1, 36): "3.6.8",
}
# Oldest etcd (major, minor) each Kubernetes minor supports as its store.
ETCD_SUPPORTED = {
    (1, 33): (3, 5),
    (1, 34): (3, 5),
    (1, 35): (3, 5),
    (1, 36): (3, 5),
}
CONTROLLER_COMPONENTS = ("kube-controller-manager", "kube-scheduler")
# How far behind the apiserver a component may run (minor versions).
MAX_BEHIND = {"kube-controller-manager": 1, "kube-scheduler": 1, "kubelet": 3}


def parse_version(text, what="version"):
    """``(major, minor, patch)`` of ``v1.36.3`` / ``1.36.3``; ValueError naming ``what`` otherwise."""
    if not isinstance(text, str):
        raise ValueError(f"{what}: expected a version string like v1.36.3, got {text!r}")
    match = _VERSION.match(text.strip())
    if not match:
        raise ValueError(f"{what}: {text!r} is not a version like v1.36.3")
    return tuple(int(part) for part in match.groups())


def minor_text(version) -> str:
    return f"{version[0]}.{version[1]}"


def etcd_version_for(kubernetes_version: str, pinned: str = "") -> str:
    """The etcd version (``3.6.8``, no ``v``) for a Kubernetes version, or the pinned one."""
    if pinned:
        major, minor, patch = parse_version(pinned, "etcd version")
        return f"{major}.{minor}.{patch}"
    version = parse_version(kubernetes_version, "Kubernetes version")
    key = version[:2]
    if key not in ETCD_FOR_MINOR:
        known = ", ".join(minor_text(k) for k in sorted(ETCD_FOR_MINOR))
        raise ValueError(
            f"Kubernetes {kubernetes_version}: no etcd version is known for {minor_text(key)} "
            f"(known: {known}); pin one with control_plane_etcd_version"
        )
    return ETCD_FOR_MINOR[key]


def _minor_distance(newer, older) -> int:
    """Minor versions from ``older`` to ``newer`` (negative when ``older`` is newer)."""
    if newer[0] != older[0]:
        return (newer[0] - older[0]) * 1000
    return newer[1] - older[1]


def skew_problems(target: str, running=None, kubelets=None, etcd: str = "") -> list:
    """Every way a control plane at ``target`` would break the skew policy.

    ``running`` maps a master to the versions its components run now
    (``{"lab1-m1": {"kube-apiserver": "v1.35.2", ...}}``; empty for a new cluster).
    ``kubelets`` maps a node to its kubelet version. ``etcd`` is the etcd version the
    control plane will use. Each problem names the host and the versions.
    """
    problems = []
    try:
        want = parse_version(target, "control plane version")
    except ValueError as e:
        return [str(e)]
    running = running or {}
    kubelets = kubelets or {}

    # An upgrade: one minor at a time, never a minor downgrade.
    etcd_target = None
    if etcd:
        try:
            etcd_target = parse_version(etcd)
        except ValueError:
            etcd_target = None  # reported below
    for host in sorted(running):
        for component in sorted(running[host]):
            text = running[host][component]
            if not text:
                continue
            try:
                have = parse_version(text, f"host {host!r}: {component}")
            except ValueError as e:
                problems.append(str(e))
                continue
            # etcd moves along its own versions, by the same one-minor rule.
            goal, goal_text = (etcd_target, f"v{etcd}") if component.startswith("etcd") else (want, target)
            if goal is None:
                continue
            distance = _minor_distance(goal, have)
            if distance > 1:
                problems.append(
                    f"host {host!r}: {component} runs {text}; {goal_text} skips a minor version "
                    f"(upgrade one minor at a time: {minor_text(have)} -> "
                    f"{have[0]}.{have[1] + 1} -> ... -> {minor_text(goal)})"
                )
            elif distance < 0:
                problems.append(
                    f"host {host!r}: {component} runs {text}; {goal_text} would downgrade it by a minor "
                    "version, which the skew policy does not support"
                )

    # During a rolling upgrade the apiservers run the target and the older version side by
    # side; the oldest apiserver bounds everything that talks to it.
    apiservers = {host: target for host in running} or {"": target}
    for host, versions in running.items():
        if versions.get("kube-apiserver"):
            apiservers[f"{host}, before its upgrade"] = versions["kube-apiserver"]
    parsed = {}
    for host, text in apiservers.items():
        try:
            parsed[host] = parse_version(text)
        except ValueError:
            continue  # reported above
    oldest_host = min(parsed, key=lambda h: parsed[h])
    newest_host = max(parsed, key=lambda h: parsed[h])
    oldest, newest = parsed[oldest_host], parsed[newest_host]
    if _minor_distance(newest, oldest) > 1:
        problems.append(
            f"kube-apiservers would run {apiservers[oldest_host]} ({oldest_host}) and "
            f"{apiservers[newest_host]} ({newest_host}) side by side: more than 1 minor version apart"
        )
    oldest_text = apiservers[oldest_host] + (f" ({oldest_host})" if "before" in oldest_host else "")

    for node in sorted(kubelets):
        text = kubelets[node]
        try:
            have = parse_version(text, f"host {node!r}: kubelet")
        except ValueError as e:
            problems.append(str(e))
            continue
        behind = _minor_distance(newest, have)
        if _minor_distance(have, oldest) > 0:
            problems.append(
                f"host {node!r}: kubelet {text} is newer than kube-apiserver {oldest_text}; "
                "upgrade the control plane first"
            )
        elif behind > MAX_BEHIND["kubelet"]:
            problems.append(
                f"host {node!r}: kubelet {text} is {behind} minor versions older than kube-apiserver "
                f"{apiservers[newest_host]}; at most {MAX_BEHIND['kubelet']} are supported, "
                "upgrade the kubelet first"
            )

    if etcd:
        try:
            etcd_version = parse_version(etcd, "etcd version")
        except ValueError as e:
            problems.append(str(e))
        else:
            minimum = ETCD_SUPPORTED.get(want[:2])
            if minimum is None:
                known = ", ".join(minor_text(k) for k in sorted(ETCD_SUPPORTED))
                problems.append(
                    f"Kubernetes {target}: etcd support of {minor_text(want)} is not known (known: {known})"
                )
            elif etcd_version[:2] < minimum or etcd_version[0] != minimum[0]:
                problems.append(
                    f"etcd {etcd} cannot store Kubernetes {target}: it needs etcd "
                    f"{minimum[0]}.{minimum[1]} or a newer {minimum[0]}.x"
                )
    return problems


def component_skew_problems(apiserver: str, components) -> list:
    """Controller-manager / scheduler versions against the apiserver they talk to."""
    problems = []
    api = parse_version(apiserver, "kube-apiserver version")
    for component in sorted(components):
        text = components[component]
        have = parse_version(text, component)
        ahead = _minor_distance(have, api)
        if ahead > 0:
            problems.append(f"{component} {text} is newer than kube-apiserver {apiserver}")
        elif -ahead > MAX_BEHIND.get(component, 1):
            problems.append(
                f"{component} {text} is {-ahead} minor versions older than kube-apiserver {apiserver}; "
                f"at most {MAX_BEHIND.get(component, 1)} is supported"
            )
    return problems
