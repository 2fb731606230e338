# -*- coding: utf-8 -*-
# Copyright: cloud58 platform team
# Apache License 2.0
"""The app spec: the form a business team fills in, ``apps/<app>.yaml``.

``APP_SCHEMA`` (JSON Schema 2020-12) is the single source of truth: ``load_app_specs``
fills its defaults and validates with it, ``schemas/app.schema.json`` (for editors) and
``docs/apps.md`` are generated from it, and a unit test keeps both current.

Rules a schema cannot state (minimum not above maximum, limits covering requests, ...)
are checked afterwards and reported the same way: the file, the path inside it and the
rule broken, e.g. ``apps/checkout.yaml: autoscaling.max_replicas: 2 is less than
autoscaling.min_replicas (3) (rule: min-not-above-max)``.
"""

from __future__ import annotations

import copy
import os
import re

from ..kube.quantity import QUANTITY_PATTERN, parse_quantity
from .discovery import consul_label, consul_spec_problems
from .errors import AppSpecError, RenderError
from .vips import vip_label, vip_spec_problems

try:
    import yaml

    from ..kube.clusters_format import UniqueKeyLoader as _Loader

    HAS_YAML = True
except ImportError:  # pragma: no cover - reported by the module through missing_required_lib
    HAS_YAML = False

try:
    import jsonschema

    HAS_JSONSCHEMA = True
except ImportError:  # pragma: no cover - reported by the module through missing_required_lib
    HAS_JSONSCHEMA = False

_DNS_LABEL = "^[a-z]([-a-z0-9]{0,38}[a-z0-9])?$"
_IMAGE = r"^[a-z0-9]([a-z0-9._/:-]*[a-z0-9])?(:[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}|@sha256:[a-f0-9]{64})$"
RESERVED_NAMESPACES = ["default", "kube-system", "kube-public", "kube-node-lease", "cloud58-system"]


def _quantity(doc: str, examples: list) -> dict:
    return {
        "type": ["string", "number"],
        "minimum": 0,
        "pattern": QUANTITY_PATTERN,
        "description": doc,
        "examples": examples,
    }


def _bandwidth(doc: str) -> dict:
    return {
        "type": ["string", "integer"],
        "pattern": QUANTITY_PATTERN,
        "description": doc,
        "examples": ["10M", "1G"],
    }


# Limits of one pod's traffic in bits per second, as the CNI bandwidth plugin takes them from the
# pod annotations kubernetes.io/ingress-bandwidth and kubernetes.io/egress-bandwidth. The kubelet
# refuses values outside 1k..1P ("unreasonably small/large"), so the renderer does too.
BANDWIDTH_MIN = 10**3
BANDWIDTH_MAX = 10**15
BANDWIDTH_SCHEMA = {
    "type": "object",
    "additionalProperties": False,
    "default": {},
    "description": (
        "Bandwidth limits of each pod in bits per second, as Kubernetes quantities (`10M` is 10 Mbit/s; "
        "from 1k to 1P). Rendered as the pod annotations `kubernetes.io/ingress-bandwidth` and "
        "`kubernetes.io/egress-bandwidth`, enforced by the CNI bandwidth plugin and changed on running "
        "pods by the node agent cloud58-netshaper. A direction left out takes the namespace's default "
        "(`apps/namespaces/<namespace>.yaml`); none: unlimited."
    ),
    "properties": {
        "ingress": _bandwidth("Traffic into the pod."),
        "egress": _bandwidth("Traffic out of the pod."),
    },
}
# Process IDs (threads included) of one pod; the kernel's PID_MAX_LIMIT (4194304) bounds it.
PIDS_LIMIT_MAX = 4194304
PIDS_LIMIT_SCHEMA = {
    "type": ["integer", "null"],
    "minimum": 1,
    "maximum": PIDS_LIMIT_MAX,
    "default": None,
    "description": (
        "Process IDs (threads included) each pod may hold, instead of the node's `podPidsLimit` "
        "(kubelet role variable `kubelet_pod_pids_limits`, by node function). Rendered as the pod "
        "annotation `cloud58.io/pids-limit`, for the node agent to write into the pod's cgroup "
        "`pids.max`; null: the node's limit."
    ),
    "examples": [512],
}
# The app's VIP on the datacenter's LVS directors (issue #14): rendered as the Service annotations
# cloud58-lvs-sync selects on (render/vips.py); checked against the plan when rendering.
VIP_SCHEDULERS = ["rr", "random", "sh"]  # lvs/fullnat.py SCHEDULERS: the nftables data plane's
VIP_SCHEMA = {
    "type": "object",
    "additionalProperties": False,
    "required": ["address", "port"],
    "description": (
        "A VIP of the datacenter's LVS directors for the app's Service: clients reach "
        "`address:port`, the directors full-NAT them to the ready pods. The address must be a VIP of "
        "the inventory (`lvs.vips`, inside `networks.vip_pool`) with `port` among its ports, claimed "
        "by no other app; an app with a VIP runs in one cluster, of that datacenter. Rendered "
        "as the Service annotations `lvs.cloud58.io/vip`, `lvs.cloud58.io/scheduler` (when set) and "
        "`lvs.cloud58.io/toa`, and the Service port `vip` when `port` differs from `service.port`."
    ),
    "properties": {
        "address": {"type": "string", "description": "The VIP's IPv4 address.", "examples": ["198.18.2.10"]},
        "port": {
            "type": "integer",
            "minimum": 1,
            "maximum": 65535,
            "description": "The VIP port clients connect to.",
            "examples": [80],
        },
        "protocol": {
            "enum": ["TCP"],
            "default": "TCP",
            "description": "TCP only: the directors' data planes forward TCP.",
        },
        "scheduler": {
            "enum": [None, *VIP_SCHEDULERS],
            "default": None,
            "description": (
                "Must equal the directors' scheduler (`lvs_director_scheduler`; one per director), or "
                "cloud58-lvs-sync ignores the Service; null: whatever the directors use."
            ),
        },
        "toa": {
            "type": "boolean",
            "default": False,
            "description": (
                "The pods need the client's address by TOA (the annotation `lvs.cloud58.io/toa`; "
                "the role `toa` is configured from the inventory, nothing reads the annotation yet)."
            ),
        },
    },
}
# Registration in Consul (docs/service-discovery.md): rendered as the Service annotations
# cloud58-consul-sync selects on (render/discovery.py).
CONSUL_SCHEMA = {
    "type": ["object", "null"],
    "additionalProperties": False,
    "required": ["service"],
    "default": None,
    "description": (
        "Register the app's Service in Consul: cloud58-consul-sync writes its ready endpoints "
        "(the `http` port) into the catalog of the cluster's datacenter as instances of `service`, "
        "which HAProxy gateways and other datacenters find there. One Consul service belongs to one "
        "app. Rendered as the Service annotations `consul.cloud58.io/service`, "
        "`consul.cloud58.io/port` and `consul.cloud58.io/version` (when set); null: not registered."
    ),
    "properties": {
        "service": {
            "type": "string",
            "pattern": "^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$",
            "description": "The Consul service name: a DNS label (a-z, 0-9, '-', at most 63).",
            "examples": ["checkout"],
        },
        "version": {
            "type": ["string", "null"],
            "minLength": 1,
            "default": None,
            "description": "The instances' tag `version=<version>`; null: none.",
            "examples": ["1.4.2"],
        },
    },
}
# Crash-site preservation (docs/node-protection.md): the node agent cloud58-crashkeeper runs
# ``dump`` inside a failing container of a pod that carries the annotation cloud58.io/crash.
CRASH_SCHEMA = {
    "type": ["object", "null"],
    "additionalProperties": False,
    "required": ["dump"],
    "default": None,
    "description": (
        "Crash-site preservation: when a container of the app's pods fails, the node agent "
        "cloud58-crashkeeper runs `dump` inside it, keeps its output, the container's logs and its "
        "writable layer's listing under `/var/lib/cloud58/crash/<namespace>_<pod>/<UTC time>/`, cuts "
        "the pod's network and marks the pod Failed so that the Deployment replaces it. Rendered as "
        "the pod annotation `cloud58.io/crash`; null: no crash sites."
    ),
    "properties": {
        "dump": {
            "type": "array",
            "minItems": 1,
            "items": {"type": "string", "minLength": 1},
            "description": (
                "The dump command as a list of arguments (argv), run inside the container; its "
                "standard output is the dump."
            ),
            "examples": [["jcmd", "1", "Thread.print"]],
        },
        "timeout_s": {
            "type": "integer",
            "minimum": 1,
            "maximum": 3600,
            "default": 60,
            "description": "Seconds the dump may run before the agent stops it and keeps what it wrote.",
        },
        "keep": {
            "type": "integer",
            "minimum": 1,
            "maximum": 100,
            "default": 3,
            "description": "Crash sites of this app each node keeps (the newest), within the node's budget.",
        },
    },
}
# apps/namespaces/<namespace>.yaml: defaults every app of the namespace takes unless it sets its own.
NAMESPACE_SCHEMA = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "title": "cloud58 namespace defaults",
    "type": "object",
    "additionalProperties": False,
    "properties": {"bandwidth": BANDWIDTH_SCHEMA},
}
NAMESPACES_DIR = "namespaces"

APP_SCHEMA = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "$id": "https://cloud58.example/schemas/app.schema.json",
    "title": "cloud58 app spec",
    "description": (
        "One file per app, `apps/<name>.yaml`. The renderer turns it into a Deployment, a Service, "
        "a HorizontalPodAutoscaler, a PodDisruptionBudget and (when `config` is set) a ConfigMap "
        "in every cluster the app is weighted to."
    ),
    "type": "object",
    "additionalProperties": False,
    "required": ["name", "team", "namespace", "image", "resources", "clusters"],
    "properties": {
        "name": {
            "type": "string",
            "pattern": _DNS_LABEL,
            "description": "App name: a DNS label of at most 40 characters, the file name without `.yaml`.",
            "examples": ["checkout"],
        },
        "team": {
            "type": "string",
            "pattern": _DNS_LABEL,
            "description": (
                "Owning team. Its group `cloud58:team:<team>` gets the `edit` role in the namespace; "
                "every app of a namespace has the same team."
            ),
            "examples": ["payments"],
        },
        "namespace": {
            "type": "string",
            "pattern": _DNS_LABEL,
            "not": {"enum": RESERVED_NAMESPACES},
            "description": "Business namespace; created with a quota on every cluster its apps run in.",
            "examples": ["payments"],
        },
        "description": {"type": "string", "default": "", "description": "Free text, shown as an annotation."},
        "image": {
            "type": "string",
            "pattern": _IMAGE,
            "not": {"pattern": ":latest$"},
            "description": "Container image, pinned by a tag other than `latest` or by a digest.",
            "examples": ["registry.example/payments/checkout:1.4.2"],
        },
        "command": {
            "type": "array",
            "items": {"type": "string"},
            "default": [],
            "description": "Entrypoint override; empty keeps the image's.",
        },
        "args": {"type": "array", "items": {"type": "string"}, "default": [], "description": "Arguments."},
        "port": {
            "type": "integer",
            "minimum": 1,
            "maximum": 65535,
            "default": 8080,
            "description": "The container's HTTP port (named `http`); probes and the Service target it.",
        },
        "env": {
            "type": "object",
            "propertyNames": {"pattern": "^[A-Za-z_][A-Za-z0-9_]*$"},
            "additionalProperties": {"type": "string"},
            "default": {},
            "description": "Environment variables (string values).",
        },
        "config": {
            "type": "object",
            "propertyNames": {"pattern": "^[-._a-zA-Z0-9]+$"},
            "additionalProperties": {"type": "string"},
            "default": {},
            "description": (
                "Configuration files, file name to content. Rendered as ConfigMap `<name>-config`, mounted "
                "read-only at `config_mount_path`; pods restart when it changes."
            ),
        },
        "config_mount_path": {
            "type": "string",
            "pattern": "^/[^\\s]*$",
            "default": "/etc/app",
            "description": "Where `config` is mounted in the container.",
        },
        "resources": {
            "type": "object",
            "additionalProperties": False,
            "required": ["requests", "limits"],
            "description": "Per-pod resources. Quotas of the namespace are derived from them.",
            "properties": {
                "requests": {
                    "type": "object",
                    "additionalProperties": False,
                    "required": ["cpu", "memory"],
                    "properties": {
                        "cpu": _quantity("CPU request.", ["500m", 2]),
                        "memory": _quantity("Memory request.", ["512Mi"]),
                    },
                },
                "limits": {
                    "type": "object",
                    "additionalProperties": False,
                    "required": ["memory"],
                    "properties": {
                        "cpu": _quantity("CPU limit; omit to let the pod burst.", ["2"]),
                        "memory": _quantity("Memory limit, at least the request.", ["1Gi"]),
                    },
                },
            },
        },
        "replicas": {
            "type": "integer",
            "minimum": 1,
            "maximum": 10000,
            "default": 2,
            "description": "Total replicas when autoscaling is off, split by the `clusters` weights.",
        },
        "autoscaling": {
            "type": "object",
            "additionalProperties": False,
            "default": {},
            "description": "HorizontalPodAutoscaler on CPU; bounds are totals, split by the weights.",
            "properties": {
                "enabled": {"type": "boolean", "default": True, "description": "Off: fixed `replicas`."},
                "min_replicas": {"type": "integer", "minimum": 1, "maximum": 10000, "default": 2},
                "max_replicas": {"type": "integer", "minimum": 1, "maximum": 10000, "default": 6},
                "cpu_utilization": {
                    "type": "integer",
                    "minimum": 10,
                    "maximum": 100,
                    "default": 70,
                    "description": "Target average CPU utilization, percent of the request.",
                },
            },
        },
        "probes": {
            "type": "object",
            "additionalProperties": False,
            "default": {},
            "description": "HTTP probes on the `http` port, with a warm-up window (startup probe).",
            "properties": {
                "path": {
                    "type": "string",
                    "pattern": "^/",
                    "default": "/healthz",
                    "description": "Liveness path.",
                },
                "readiness_path": {
                    "type": ["string", "null"],
                    "pattern": "^/",
                    "default": None,
                    "description": "Readiness path; null means `path`.",
                },
                "warmup_seconds": {
                    "type": "integer",
                    "minimum": 0,
                    "maximum": 3600,
                    "default": 30,
                    "description": (
                        "How long the app may take to start: the startup probe allows this long before "
                        "liveness applies. 0: no startup probe."
                    ),
                },
                "period_seconds": {"type": "integer", "minimum": 1, "maximum": 300, "default": 10},
                "timeout_seconds": {"type": "integer", "minimum": 1, "maximum": 60, "default": 2},
                "failure_threshold": {"type": "integer", "minimum": 1, "maximum": 30, "default": 3},
            },
        },
        "min_ready_seconds": {
            "type": "integer",
            "minimum": 0,
            "maximum": 3600,
            "default": 10,
            "description": "A new pod counts as available only after being ready this long (rollout pacing).",
        },
        "graceful_shutdown": {
            "type": "object",
            "additionalProperties": False,
            "default": {},
            "description": "Stop without dropping requests: preStop sleep, then SIGTERM.",
            "properties": {
                "pre_stop_sleep_seconds": {
                    "type": "integer",
                    "minimum": 0,
                    "maximum": 300,
                    "default": 5,
                    "description": "Sleep before SIGTERM while load balancers drain. 0: no preStop.",
                },
                "termination_grace_period_seconds": {
                    "type": "integer",
                    "minimum": 1,
                    "maximum": 3600,
                    "default": 30,
                    "description": "Total time from the preStop hook to SIGKILL; more than the sleep.",
                },
            },
        },
        "disruption": {
            "type": "object",
            "additionalProperties": False,
            "default": {},
            "description": "PodDisruptionBudget: how many pods voluntary evictions may take down at once.",
            "properties": {
                "max_unavailable": {
                    "oneOf": [
                        {"type": "integer", "minimum": 0},
                        {"type": "string", "pattern": "^[0-9]{1,3}%$"},
                    ],
                    "default": 1,
                    "description": "A count or a percentage like `25%`.",
                },
            },
        },
        "service": {
            "type": "object",
            "additionalProperties": False,
            "default": {},
            "description": "The Service in front of the pods.",
            "properties": {
                "enabled": {"type": "boolean", "default": True},
                "port": {"type": "integer", "minimum": 1, "maximum": 65535, "default": 80},
                "type": {"enum": ["ClusterIP", "NodePort"], "default": "ClusterIP"},
            },
        },
        "priority": {
            "enum": ["high", "default", "low"],
            "default": "default",
            "description": (
                "PriorityClass: `high` (cloud58-business-high), `default`, `low` "
                "(cloud58-business-low, never preempts)."
            ),
        },
        "placement": {
            "type": "object",
            "additionalProperties": False,
            "default": {},
            "description": "Node affinity by the node labels the planner sets (`function`, `rack`).",
            "properties": {
                "function": {
                    "type": ["string", "null"],
                    "pattern": "^[a-z0-9]([-a-z0-9_.]*[a-z0-9])?$",
                    "default": None,
                    "description": "Only nodes whose `function` label has this value; null: any node.",
                },
                "racks": {
                    "type": "array",
                    "items": {"type": "string", "pattern": _DNS_LABEL},
                    "uniqueItems": True,
                    "default": [],
                    "description": (
                        "Only nodes of these racks (each cluster uses those it has); empty: any rack."
                    ),
                },
                "spread_racks": {
                    "type": "boolean",
                    "default": True,
                    "description": "Spread pods evenly across racks (topologySpreadConstraints on `rack`).",
                },
            },
        },
        "bandwidth": BANDWIDTH_SCHEMA,
        "pids_limit": PIDS_LIMIT_SCHEMA,
        "crash": CRASH_SCHEMA,
        "vip": VIP_SCHEMA,
        "consul": CONSUL_SCHEMA,
        "clusters": {
            "type": "object",
            "minProperties": 1,
            "propertyNames": {"pattern": _DNS_LABEL},
            "additionalProperties": {"type": "integer", "minimum": 1, "maximum": 1000},
            "description": (
                "Clusters the app runs in, with weights: `{bj1-prod: 2, sh1-prod: 1}` puts two thirds of the "
                "replicas (and of the autoscaling bounds) in bj1-prod. Every listed cluster gets at least "
                "one."
            ),
            "examples": [{"bj1-prod": 2, "sh1-prod": 1}],
        },
    },
}


def fill_defaults(schema: dict, instance):
    """A copy of ``instance`` with every missing property that has a ``default`` filled in, recursively."""
    if not isinstance(instance, dict) or schema.get("type") != "object":
        return instance
    out = dict(instance)
    for name, sub in (schema.get("properties") or {}).items():
        if name not in out and "default" in sub:
            out[name] = copy.deepcopy(sub["default"])
        if name in out:
            out[name] = fill_defaults(sub, out[name])
    return out


def schema_problems(rel: str, instance, schema: dict | None = None) -> list[str]:
    """Schema violations of one spec (or, with NAMESPACE_SCHEMA, namespace file), one line each:
    file, path, message, rule."""
    if not HAS_JSONSCHEMA:
        raise RenderError("the Python library jsonschema is required to validate app specs")
    validator = jsonschema.Draft202012Validator(APP_SCHEMA if schema is None else schema)
    problems = []
    for error in sorted(validator.iter_errors(instance), key=lambda e: (_path(e.absolute_path), e.validator)):
        problems.append(
            f"{rel}: {_path(error.absolute_path)}: {_message(error, instance)} (rule: {error.validator})"
        )
    return problems


def _path(parts) -> str:
    out = ""
    for part in parts:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "(top level)"


def _message(error, instance=None) -> str:
    if list(error.absolute_path)[:1] == ["vip"]:
        return f"{vip_label(instance)}: {_vip_message(error)}"
    if list(error.absolute_path)[:1] == ["consul"]:
        if error.validator == "pattern" and list(error.absolute_path) == ["consul", "service"]:
            return (
                f"{consul_label(instance)}: {error.instance!r} is not a DNS label (a-z, 0-9, '-', at most 63)"
            )
        return f"{consul_label(instance)}: {error.message}"
    if error.validator == "not" and error.schema.get("not", {}).get("pattern") == ":latest$":
        return f"{error.instance!r} uses the tag latest; pin a version or a digest"
    if error.validator == "not" and "enum" in error.schema.get("not", {}):
        return f"{error.instance!r} is reserved for the platform"
    if error.validator == "pattern" and list(error.absolute_path)[:1] == ["bandwidth"]:
        return f"{error.instance!r} is not a rate in bits per second as a Kubernetes quantity (like 10M, 1G)"
    if error.validator == "type" and list(error.absolute_path) == ["crash", "dump"]:
        return f"{error.instance!r} is not a list of arguments (argv), like [jcmd, '1', Thread.print]"
    if error.validator == "pattern" and error.schema.get("pattern") == QUANTITY_PATTERN:
        return f"{error.instance!r} is not a Kubernetes quantity (like 500m, 2, 512Mi)"
    return error.message


def _vip_message(error) -> str:
    field = list(error.absolute_path)[1:2]
    if field == ["scheduler"] and error.validator == "enum":
        return f"{error.instance!r} is not a scheduler of the directors ({', '.join(VIP_SCHEDULERS)})"
    if field == ["protocol"] and error.validator == "enum":
        return f"{error.instance!r} is not supported: the directors forward TCP only"
    if field == ["port"] and error.validator in ("minimum", "maximum", "type"):
        return f"{error.instance!r} is not a port (1-65535)"
    return error.message


def semantic_problems(rel: str, stem: str, spec: dict) -> list[str]:
    """Rules across fields, on a spec that already passed the schema (defaults filled)."""
    problems = []

    def bad(path, message, rule):
        problems.append(f"{rel}: {path}: {message} (rule: {rule})")

    if spec["name"] != stem:
        bad("name", f"{spec['name']!r} differs from the file name {stem!r}", "name-matches-file")
    scaling = spec["autoscaling"]
    if scaling["enabled"] and scaling["max_replicas"] < scaling["min_replicas"]:
        bad(
            "autoscaling.max_replicas",
            f"{scaling['max_replicas']} is less than autoscaling.min_replicas ({scaling['min_replicas']})",
            "min-not-above-max",
        )
    floor = scaling["min_replicas"] if scaling["enabled"] else spec["replicas"]
    field = "autoscaling.min_replicas" if scaling["enabled"] else "replicas"
    if floor < len(spec["clusters"]):
        bad(
            field,
            f"{floor} cannot give each of the {len(spec['clusters'])} clusters one pod",
            "replicas-cover-clusters",
        )
    requests = spec["resources"]["requests"]
    limits = spec["resources"]["limits"]
    for resource in ("cpu", "memory"):
        if resource in limits and parse_quantity(limits[resource]) < parse_quantity(requests[resource]):
            bad(
                f"resources.limits.{resource}",
                f"{limits[resource]!r} is below the request {requests[resource]!r}",
                "limits-cover-requests",
            )
    shutdown = spec["graceful_shutdown"]
    if shutdown["termination_grace_period_seconds"] <= shutdown["pre_stop_sleep_seconds"]:
        bad(
            "graceful_shutdown.termination_grace_period_seconds",
            f"{shutdown['termination_grace_period_seconds']} leaves no time after the "
            f"{shutdown['pre_stop_sleep_seconds']}s preStop sleep",
            "grace-covers-prestop",
        )
    problems.extend(bandwidth_problems(rel, spec["bandwidth"]))
    problems.extend(vip_spec_problems(rel, spec))
    problems.extend(consul_spec_problems(rel, spec))
    return problems


def bandwidth_problems(rel: str, bandwidth: dict) -> list[str]:
    """Rates outside what the kubelet passes to the CNI bandwidth plugin (1k..1P bits per second)."""
    problems = []
    for direction in ("ingress", "egress"):
        if direction not in bandwidth:
            continue
        value = bandwidth[direction]
        rate = parse_quantity(value)
        if rate < BANDWIDTH_MIN:
            message = f"{value!r} is below 1k (1 kbit/s), the smallest rate the kubelet accepts"
        elif rate > BANDWIDTH_MAX:
            message = f"{value!r} is above 1P (1 Pbit/s), the largest rate the kubelet accepts"
        else:
            continue
        problems.append(f"{rel}: bandwidth.{direction}: {message} (rule: bandwidth-in-range)")
    return problems


def load_app_specs(apps_dir: str) -> list[tuple[str, dict]]:
    """Every ``apps_dir/*.yaml`` as (file path relative to the repo, spec with defaults), sorted by name.

    The defaults of a namespace (``apps_dir/namespaces/<namespace>.yaml``) are filled into
    each app of that namespace that does not set the field itself.
    Raises AppSpecError listing every problem of every file.
    """
    if not HAS_YAML:
        raise RenderError("the Python library PyYAML is required to read app specs")
    if not os.path.isdir(apps_dir):
        return []
    specs = []
    problems: list[str] = []
    used: set[str] = set()  # namespaces named by the apps, valid or not
    base = os.path.basename(os.path.normpath(apps_dir))
    for filename in _yaml_files(apps_dir):
        rel = f"{base}/{filename}"
        stem = re.sub(r"\.ya?ml$", "", filename)
        raw = _read_yaml(os.path.join(apps_dir, filename), rel, problems)
        if raw is _UNREADABLE:
            continue
        if isinstance(raw, dict) and isinstance(raw.get("namespace"), str):
            used.add(raw["namespace"])
        spec = fill_defaults(APP_SCHEMA, raw)
        found = schema_problems(rel, spec)
        if not found:
            found = semantic_problems(rel, stem, spec)
        if found:
            problems.extend(found)
            continue
        specs.append((rel, spec))
    defaults = _namespace_defaults(apps_dir, f"{base}/{NAMESPACES_DIR}", used, problems)
    if problems:
        raise AppSpecError(problems)
    for _rel, spec in specs:
        spec["bandwidth"] = {**defaults.get(spec["namespace"], {}).get("bandwidth", {}), **spec["bandwidth"]}
    return specs


_UNREADABLE = object()


def _yaml_files(directory: str) -> list[str]:
    return [
        f
        for f in sorted(os.listdir(directory))
        if not f.startswith((".", "_"))
        and f.endswith((".yaml", ".yml"))
        and os.path.isfile(os.path.join(directory, f))
    ]


def _read_yaml(path: str, rel: str, problems: list[str]):
    """The document of one file, or _UNREADABLE after adding the YAML problem to ``problems``."""
    try:
        with open(path, encoding="utf-8") as handle:
            return yaml.load(handle, Loader=_Loader)
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f"line {mark.line + 1} column {mark.column + 1}" if mark is not None else "(top level)"
        problems.append(f"{rel}: {where}: not valid YAML: {getattr(e, 'problem', None) or e} (rule: yaml)")
        return _UNREADABLE


def _namespace_defaults(apps_dir: str, rel_dir: str, used: set, problems: list[str]) -> dict:
    """namespace -> its defaults (``namespaces/<namespace>.yaml``); problems added to ``problems``."""
    directory = os.path.join(apps_dir, NAMESPACES_DIR)
    if not os.path.isdir(directory):
        return {}
    out = {}
    for filename in _yaml_files(directory):
        rel = f"{rel_dir}/{filename}"
        namespace = re.sub(r"\.ya?ml$", "", filename)
        raw = _read_yaml(os.path.join(directory, filename), rel, problems)
        if raw is _UNREADABLE:
            continue
        raw = {} if raw is None else raw
        found = schema_problems(rel, raw, NAMESPACE_SCHEMA)
        if not found:
            found = bandwidth_problems(rel, raw.get("bandwidth", {}))
        if not found and namespace not in used:
            found = [
                f"{rel}: (top level): no app runs in namespace {namespace!r}; the apps use "
                f"{', '.join(sorted(used)) or 'none'} (rule: namespace-has-apps)"
            ]
        problems.extend(found)
        if not found:
            out[namespace] = raw
    return out
