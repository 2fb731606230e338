# -*- coding: utf-8 -*-
# Copyright: cloud58 platform team
# Apache License 2.0
"""Settings of a control plane: what the plan does not say (versions, images, paths, tuning).

``settings_from(raw)`` fills defaults and checks every field, raising one
:class:`ControlPlaneError` with every problem. The roles pass their ``control_plane_*`` /
``etcd_*`` variables here; the defaults below are the roles' defaults too.
"""

from __future__ import annotations

import copy
import re

from .errors import ControlPlaneError
from .versions import etcd_version_for, parse_version

COMPANY_REGISTRY = "registry.cloud58.internal/kubernetes"

DEFAULTS = {
    # One version pins every kube-* image; etcd follows it (versions.ETCD_FOR_MINOR).
    "version": "v1.36.3",
    "etcd_version": "",
    "image_registry": COMPANY_REGISTRY,
    # Per-component image replacing the computed one (a hotfix build); checked for skew.
    "image_overrides": {},
    "cluster_domain": "cluster.local",
    "config_dir": "/etc/kubernetes",
    "etcd_data_dir": "/var/lib/etcd",
    "etcd_events_data_dir": "/var/lib/etcd-events",
    "etcd_metrics_port": 2381,
    "etcd_events_metrics_port": 2384,
    "etcd_quota_backend_bytes": 8589934592,
    "etcd_snapshot_count": 10000,
    "audit_log_dir": "/var/log/kubernetes/audit",
    "audit_log_maxage": 7,
    "audit_log_maxbackup": 10,
    "audit_log_maxsize": 100,
    # node lifecycle controller (kube-controller-manager)
    "eviction": {
        "node_monitor_grace_period": "40s",
        "node_eviction_rate": 0.1,
        "secondary_node_eviction_rate": 0.01,
        "unhealthy_zone_threshold": 0.55,
        "large_cluster_size_threshold": 50,
    },
    "leader_election": {
        "lease_duration": "15s",
        "renew_deadline": "10s",
        "retry_period": "2s",
    },
    # Where components on a master reach the API: their own apiserver (kubeadm's choice:
    # a master stays useful while the VIP is down).
    "admin_server": "",
    "apiserver_extra_args": {},
    "controller_manager_extra_args": {},
    "scheduler_extra_args": {},
    "etcd_extra_args": {},
    # Extra subject alternative names of the apiserver's serving certificate.
    "extra_sans": [],
}

_DURATION = re.compile(r"^(\d+(\.\d+)?(ns|us|ms|s|m|h))+$")
_FLAG = re.compile(r"^[a-z0-9][a-z0-9-]*$")
_REGISTRY = re.compile(r"^[a-z0-9]([a-z0-9.-]*[a-z0-9])?(:\d+)?(/[a-z0-9]([a-z0-9._-]*[a-z0-9])?)*$")
_ABS_PATH = re.compile(r"^/[^\0\n]*$")
IMAGE_COMPONENTS = ("etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler")


def _merge(defaults: dict, raw: dict) -> dict:
    out = copy.deepcopy(defaults)
    for key, value in raw.items():
        if (
            key in out
            and isinstance(out[key], dict)
            and isinstance(value, dict)
            and key in ("eviction", "leader_election")
        ):
            out[key].update(value)
        else:
            out[key] = value
    return out


def settings_from(raw, where: str = "control plane settings") -> dict:
    """Defaults filled in and every field checked; ControlPlaneError lists the problems."""
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise ControlPlaneError(where, [f"expected a mapping of settings, got {type(raw).__name__}"])
    problems = []
    for key in sorted(set(raw) - set(DEFAULTS)):
        problems.append(f"unknown setting {key!r} (known: {', '.join(sorted(DEFAULTS))})")
    for group in ("eviction", "leader_election"):
        if group in raw and isinstance(raw[group], dict):
            for key in sorted(set(raw[group]) - set(DEFAULTS[group])):
                problems.append(
                    f"unknown setting {group}.{key} (known: {', '.join(sorted(DEFAULTS[group]))})"
                )
    s = _merge(DEFAULTS, {k: v for k, v in raw.items() if k in DEFAULTS})

    try:
        parse_version(s["version"], "version")
    except ValueError as e:
        problems.append(str(e))
    else:
        try:
            s["etcd_version"] = etcd_version_for(s["version"], s["etcd_version"] or "")
        except ValueError as e:
            problems.append(str(e))
    if not isinstance(s["image_registry"], str) or not _REGISTRY.match(s["image_registry"]):
        problems.append(
            f"image_registry {s['image_registry']!r} is not a registry/path like registry.example/k8s"
        )
    if not isinstance(s["image_overrides"], dict):
        problems.append("image_overrides must map a component to an image")
    else:
        for component, image in sorted(s["image_overrides"].items()):
            if component not in IMAGE_COMPONENTS:
                problems.append(
                    f"image_overrides: unknown component {component!r} (known: {', '.join(IMAGE_COMPONENTS)})"
                )
            elif not isinstance(image, str) or ":" not in image.rsplit("/", 1)[-1]:
                problems.append(f"image_overrides.{component}: {image!r} must name a tag (image:vX.Y.Z)")
    if not isinstance(s["cluster_domain"], str) or not re.match(
        r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$", s["cluster_domain"]
    ):
        problems.append(f"cluster_domain {s['cluster_domain']!r} is not a DNS domain")
    for key in ("config_dir", "etcd_data_dir", "etcd_events_data_dir", "audit_log_dir"):
        if (
            not isinstance(s[key], str)
            or not _ABS_PATH.match(s[key])
            or s[key] != s[key].rstrip("/")
            or s[key] == "/"
        ):
            problems.append(f"{key} {s[key]!r} must be an absolute directory path without a trailing slash")
    if s["etcd_data_dir"] == s["etcd_events_data_dir"]:
        problems.append(
            f"etcd_data_dir and etcd_events_data_dir are both {s['etcd_data_dir']!r}; each etcd needs its own"
        )
    for key in ("etcd_metrics_port", "etcd_events_metrics_port"):
        if not _int_in(s[key], 1, 65535):
            problems.append(f"{key} {s[key]!r} must be a port number")
    if s["etcd_metrics_port"] == s["etcd_events_metrics_port"]:
        problems.append(
            "etcd_metrics_port and etcd_events_metrics_port must differ (both etcds may share a host)"
        )
    for key, low, high in (
        ("etcd_quota_backend_bytes", 1 << 20, 100 << 30),
        ("etcd_snapshot_count", 100, 10000000),
        ("audit_log_maxage", 0, 3650),
        ("audit_log_maxbackup", 0, 10000),
        ("audit_log_maxsize", 1, 100000),
    ):
        if not _int_in(s[key], low, high):
            problems.append(f"{key} {s[key]!r} must be an integer from {low} to {high}")

    ev = s["eviction"]
    if isinstance(ev, dict):
        problems += _eviction_problems(ev)
    else:
        problems.append("eviction must be a mapping")
    le = s["leader_election"]
    if isinstance(le, dict):
        seconds = {}
        for key in ("lease_duration", "renew_deadline", "retry_period"):
            if not _duration(le[key]):
                problems.append(f"leader_election.{key} {le[key]!r} is not a duration like 15s")
            else:
                seconds[key] = duration_seconds(le[key])
        if (
            len(seconds) == 3
            and not seconds["retry_period"] < seconds["renew_deadline"] < seconds["lease_duration"]
        ):
            problems.append(
                "leader_election: retry_period < renew_deadline < lease_duration must hold "
                f"(got {le['retry_period']}, {le['renew_deadline']}, {le['lease_duration']})"
            )
    else:
        problems.append("leader_election must be a mapping")
    if s["admin_server"] and not (
        isinstance(s["admin_server"], str) and s["admin_server"].startswith("https://")
    ):
        problems.append(
            f"admin_server {s['admin_server']!r} must be an https:// URL (empty: the plan's API server)"
        )
    for key in (
        "apiserver_extra_args",
        "controller_manager_extra_args",
        "scheduler_extra_args",
        "etcd_extra_args",
    ):
        if not isinstance(s[key], dict):
            problems.append(f"{key} must map a flag name (without --) to a value")
            continue
        for flag, value in sorted(s[key].items()):
            if not isinstance(flag, str) or not _FLAG.match(flag):
                problems.append(f"{key}: {flag!r} is not a flag name (lowercase, digits, '-', no leading --)")
            if not isinstance(value, (str, int, float, bool)):
                problems.append(f"{key}.{flag}: {value!r} must be a string, number or boolean")
    if not isinstance(s["extra_sans"], list) or not all(isinstance(x, str) for x in s["extra_sans"]):
        problems.append("extra_sans must be a list of DNS names and IP addresses")
    if problems:
        raise ControlPlaneError(where, problems)
    return s


def _eviction_problems(ev: dict) -> list:
    problems = []
    grace = ev["node_monitor_grace_period"]
    if not _duration(grace):
        problems.append(f"eviction.node_monitor_grace_period {grace!r} is not a duration like 40s")
    for key in ("node_eviction_rate", "secondary_node_eviction_rate"):
        if not _number_in(ev[key], 0, 1000):
            problems.append(f"eviction.{key} {ev[key]!r} must be a number of nodes per second, 0 or more")
    zone = ev["unhealthy_zone_threshold"]
    if not _number_in(zone, 0, 1) or zone == 0:
        problems.append(f"eviction.unhealthy_zone_threshold {zone!r} must be a fraction in (0, 1]")
    large = ev["large_cluster_size_threshold"]
    if not _int_in(large, 1, 1000000):
        problems.append(f"eviction.large_cluster_size_threshold {large!r} must be a positive integer")
    first, second = ev["node_eviction_rate"], ev["secondary_node_eviction_rate"]
    if _number_in(first, 0, 1000) and _number_in(second, 0, 1000) and second > first:
        problems.append(
            f"eviction.secondary_node_eviction_rate {second} is above node_eviction_rate {first}: "
            "an unhealthy zone would evict faster than a healthy one"
        )
    return problems


def _int_in(value, low, high) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and low <= value <= high


def _number_in(value, low, high) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and low <= value <= high


def _duration(value) -> bool:
    return isinstance(value, str) and bool(_DURATION.match(value))


_UNITS = {"ns": 1e-9, "us": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}


def duration_seconds(text: str) -> float:
    """Seconds of a Go duration (``1m30s``)."""
    return sum(float(m[0]) * _UNITS[m[2]] for m in re.findall(r"(\d+(\.\d+)?)(ns|us|ms|s|m|h)", text))


def image_for(settings: dict, component: str) -> str:
    """The image of a component: an override, else ``<registry>/<component>:<version>``."""
    override = settings["image_overrides"].get(component)
    if override:
        return override
    if component == "etcd":
        return f"{settings['image_registry']}/etcd:v{settings['etcd_version']}"
    return f"{settings['image_registry']}/{component}:{settings['version']}"


def image_version(image: str) -> str:
    """The tag of an image reference (``reg/kube-apiserver:v1.36.3`` -> ``v1.36.3``)."""
    last = image.rsplit("/", 1)[-1]
    return last.split(":", 1)[1].split("@", 1)[0] if ":" in last else ""
