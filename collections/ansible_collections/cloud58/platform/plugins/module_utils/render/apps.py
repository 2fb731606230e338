# -*- coding: utf-8 -*-
# Copyright: cloud58 platform team
# Apache License 2.0
"""App specs -> Deployment, Service, HorizontalPodAutoscaler, PodDisruptionBudget, ConfigMap.

Per-cluster weights split the replicas (or the autoscaling bounds) across clusters by
the largest-remainder method, ties broken by cluster name, every cluster getting at
least one pod: the same spec always gives the same split.
"""

from __future__ import annotations

import hashlib
import json
import math
from fractions import Fraction

from ..kube.quantity import parse_quantity
from ..node.crash import spec_annotations as crash_annotations
from .discovery import consul_annotations
from .platform import APP_PRIORITY_CLASS, TEAM_LABEL, meta
from .targets import NODE_LABEL_FUNCTION, NODE_LABEL_RACK, ClusterTarget
from .vips import VIP_PORT_NAME, vip_annotations

APP_LABEL = "app.kubernetes.io/name"
CONFIG_HASH_ANNOTATION = "cloud58.io/config-hash"
# The pod annotation of an app's pids_limit: the node agent writes it into the pod's cgroup pids.max.
PIDS_LIMIT_ANNOTATION = "cloud58.io/pids-limit"
# The pod annotations the CNI bandwidth plugin (through the kubelet) and cloud58-netshaper read.
BANDWIDTH_ANNOTATIONS = {
    "ingress": "kubernetes.io/ingress-bandwidth",
    "egress": "kubernetes.io/egress-bandwidth",
}
# Rolling updates add up to 25% extra pods (rounded up); quotas leave room for them.
SURGE = Fraction(1, 4)


def split_by_weight(total: int, weights: dict, minimum: int = 1) -> dict:
    """Split ``total`` over the keys of ``weights`` in proportion, each key getting at least ``minimum``.

    Raises ValueError when ``total`` cannot give every key its minimum.
    """
    names = sorted(weights)
    if total < minimum * len(names):
        raise ValueError(f"{total} cannot give each of {len(names)} clusters {minimum}")
    weight_sum = sum(weights[n] for n in names)
    exact = {n: Fraction(total * weights[n], weight_sum) for n in names}
    share = {n: math.floor(exact[n]) for n in names}
    left = total - sum(share.values())
    for n in sorted(names, key=lambda n: (-(exact[n] - share[n]), n))[:left]:
        share[n] += 1
    for n in names:
        while share[n] < minimum:
            donor = sorted((d for d in names if share[d] > minimum), key=lambda d: (-share[d], d))[0]
            share[donor] -= 1
            share[n] += 1
    return share


def replica_plan(spec: dict) -> dict:
    """Per cluster: {"replicas": n} (fixed) or {"min": a, "max": b} (autoscaled)."""
    weights = spec["clusters"]
    scaling = spec["autoscaling"]
    if not scaling["enabled"]:
        return {c: {"replicas": n} for c, n in split_by_weight(spec["replicas"], weights).items()}
    low = split_by_weight(scaling["min_replicas"], weights)
    high = split_by_weight(scaling["max_replicas"], weights)
    return {c: {"min": low[c], "max": max(high[c], low[c])} for c in sorted(weights)}


def peak_pods(share: dict) -> int:
    """Most pods an app can have in a cluster: its maximum plus the rolling-update surge."""
    most = share.get("max", share.get("replicas", 0))
    return most + math.ceil(most * SURGE)


def app_objects(spec: dict, target: ClusterTarget, share: dict) -> list[dict]:
    """The objects of one app in one cluster."""
    cluster = target.name
    name = spec["name"]
    ns = spec["namespace"]
    labels = {APP_LABEL: name, TEAM_LABEL: spec["team"]}
    annotations = {"cloud58.io/description": spec["description"]} if spec["description"] else None
    objs = []
    config_hash = ""
    if spec["config"]:
        data = dict(spec["config"])
        config_hash = hashlib.sha256(json.dumps(data, sort_keys=True).encode("utf-8")).hexdigest()[:16]
        objs.append(
            {
                "apiVersion": "v1",
                "kind": "ConfigMap",
                "metadata": meta(f"{name}-config", cluster, ns, labels),
                "data": data,
            }
        )
    objs.append(
        {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": meta(name, cluster, ns, labels, annotations),
            "spec": _deployment_spec(spec, target, share, labels, config_hash),
        }
    )
    if spec["service"]["enabled"]:
        ports = [{"name": "http", "port": spec["service"]["port"], "targetPort": "http", "protocol": "TCP"}]
        vip = spec.get("vip")
        if vip is not None and vip["port"] != spec["service"]["port"]:
            ports.append(
                {"name": VIP_PORT_NAME, "port": vip["port"], "targetPort": "http", "protocol": "TCP"}
            )
        objs.append(
            {
                "apiVersion": "v1",
                "kind": "Service",
                "metadata": meta(name, cluster, ns, labels, _service_annotations(spec)),
                "spec": {
                    "type": spec["service"]["type"],
                    "selector": {APP_LABEL: name},
                    "ports": ports,
                },
            }
        )
    if "min" in share:
        objs.append(
            {
                "apiVersion": "autoscaling/v2",
                "kind": "HorizontalPodAutoscaler",
                "metadata": meta(name, cluster, ns, labels),
                "spec": {
                    "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": name},
                    "minReplicas": share["min"],
                    "maxReplicas": share["max"],
                    "metrics": [
                        {
                            "type": "Resource",
                            "resource": {
                                "name": "cpu",
                                "target": {
                                    "type": "Utilization",
                                    "averageUtilization": spec["autoscaling"]["cpu_utilization"],
                                },
                            },
                        }
                    ],
                },
            }
        )
    objs.append(
        {
            "apiVersion": "policy/v1",
            "kind": "PodDisruptionBudget",
            "metadata": meta(name, cluster, ns, labels),
            "spec": {
                "maxUnavailable": spec["disruption"]["max_unavailable"],
                "selector": {"matchLabels": {APP_LABEL: name}},
            },
        }
    )
    return objs


def _service_annotations(spec: dict) -> dict | None:
    """The Service's annotations: the VIP's (cloud58-lvs-sync) and Consul's (cloud58-consul-sync)."""
    out = {}
    if spec.get("vip") is not None:
        out.update(vip_annotations(spec["vip"]))
    if spec.get("consul") is not None:
        out.update(consul_annotations(spec["consul"]))
    return out or None


def _deployment_spec(spec: dict, target: ClusterTarget, share: dict, labels: dict, config_hash: str) -> dict:
    name = spec["name"]
    probes = spec["probes"]
    shutdown = spec["graceful_shutdown"]
    container = {
        "name": name,
        "image": spec["image"],
        "ports": [{"name": "http", "containerPort": spec["port"], "protocol": "TCP"}],
        "resources": _resources(spec["resources"]),
        "readinessProbe": _http_probe(probes["readiness_path"] or probes["path"], probes),
        "livenessProbe": _http_probe(probes["path"], probes),
    }
    if spec["command"]:
        container["command"] = list(spec["command"])
    if spec["args"]:
        container["args"] = list(spec["args"])
    if spec["env"]:
        container["env"] = [{"name": k, "value": spec["env"][k]} for k in sorted(spec["env"])]
    if probes["warmup_seconds"]:
        startup = _http_probe(probes["path"], probes)
        startup["failureThreshold"] = max(1, math.ceil(probes["warmup_seconds"] / probes["period_seconds"]))
        container["startupProbe"] = startup
    if shutdown["pre_stop_sleep_seconds"]:
        container["lifecycle"] = {"preStop": {"sleep": {"seconds": shutdown["pre_stop_sleep_seconds"]}}}
    pod = {
        "priorityClassName": APP_PRIORITY_CLASS[spec["priority"]],
        "terminationGracePeriodSeconds": shutdown["termination_grace_period_seconds"],
        "containers": [container],
    }
    template_meta: dict = {"labels": dict(labels)}
    if config_hash:
        container["volumeMounts"] = [
            {"name": "config", "mountPath": spec["config_mount_path"], "readOnly": True}
        ]
        pod["volumes"] = [{"name": "config", "configMap": {"name": f"{name}-config"}}]
        template_meta["annotations"] = {CONFIG_HASH_ANNOTATION: config_hash}
    bandwidth = bandwidth_annotations(spec["bandwidth"])
    if bandwidth:
        template_meta.setdefault("annotations", {}).update(bandwidth)
    if spec.get("pids_limit") is not None:
        template_meta.setdefault("annotations", {})[PIDS_LIMIT_ANNOTATION] = str(spec["pids_limit"])
    crash = crash_annotations(spec["name"], spec.get("crash"))
    if crash:
        template_meta.setdefault("annotations", {}).update(crash)
    affinity = _node_affinity(spec["placement"], target)
    if affinity:
        pod["affinity"] = affinity
    if spec["placement"]["spread_racks"]:
        pod["topologySpreadConstraints"] = [
            {
                "maxSkew": 1,
                "topologyKey": NODE_LABEL_RACK,
                "whenUnsatisfiable": "ScheduleAnyway",
                "labelSelector": {"matchLabels": {APP_LABEL: name}},
            }
        ]
    out = {
        "selector": {"matchLabels": {APP_LABEL: name}},
        "minReadySeconds": spec["min_ready_seconds"],
        "revisionHistoryLimit": 5,
        "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": "25%", "maxUnavailable": 0}},
        "template": {"metadata": template_meta, "spec": pod},
    }
    if "replicas" in share:  # with an HPA the replica count belongs to the HPA, not to Git
        out["replicas"] = share["replicas"]
    return out


def bandwidth_annotations(bandwidth: dict) -> dict:
    """The pod annotations of an app's (or its namespace's) bandwidth limits; empty when unlimited."""
    return {BANDWIDTH_ANNOTATIONS[d]: str(bandwidth[d]) for d in ("ingress", "egress") if d in bandwidth}


def _resources(resources: dict) -> dict:
    out = {"requests": {k: str(v) for k, v in sorted(resources["requests"].items())}}
    out["limits"] = {k: str(v) for k, v in sorted(resources["limits"].items())}
    return out


def _http_probe(path: str, probes: dict) -> dict:
    return {
        "httpGet": {"path": path, "port": "http"},
        "periodSeconds": probes["period_seconds"],
        "timeoutSeconds": probes["timeout_seconds"],
        "failureThreshold": probes["failure_threshold"],
    }


def _node_affinity(placement: dict, target: ClusterTarget) -> dict | None:
    expressions = []
    if placement["function"]:
        expressions.append({"key": NODE_LABEL_FUNCTION, "operator": "In", "values": [placement["function"]]})
    racks = racks_in(placement, target)
    if racks:
        expressions.append({"key": NODE_LABEL_RACK, "operator": "In", "values": racks})
    if not expressions:
        return None
    return {
        "nodeAffinity": {
            "requiredDuringSchedulingIgnoredDuringExecution": {
                "nodeSelectorTerms": [{"matchExpressions": expressions}]
            }
        }
    }


def racks_in(placement: dict, target: ClusterTarget) -> list[str]:
    """The placement's racks that hold nodes of this cluster, sorted (empty: no rack rule)."""
    return sorted(r for r in placement["racks"] if r in target.racks)


def namespace_quota(apps: list[tuple[dict, dict]]) -> dict:
    """A namespace's quota in one cluster from its apps there: (spec, share) pairs.

    Room for every app at its maximum plus the rolling-update surge: pods, CPU and memory
    requests, memory limits.
    """
    pods = 0
    cpu = Fraction(0)
    memory = Fraction(0)
    memory_limit = Fraction(0)
    for spec, share in apps:
        peak = peak_pods(share)
        pods += peak
        cpu += peak * parse_quantity(spec["resources"]["requests"]["cpu"])
        memory += peak * parse_quantity(spec["resources"]["requests"]["memory"])
        memory_limit += peak * parse_quantity(spec["resources"]["limits"]["memory"])
    return {
        "pods": str(pods),
        "requests.cpu": format_cpu(cpu),
        "requests.memory": format_memory(memory),
        "limits.memory": format_memory(memory_limit),
    }


def format_cpu(cores: Fraction) -> str:
    milli = math.ceil(cores * 1000)
    return str(milli // 1000) if milli % 1000 == 0 else f"{milli}m"


def format_memory(size: Fraction) -> str:
    mebi = math.ceil(size / 2**20)
    return f"{mebi // 1024}Gi" if mebi % 1024 == 0 and mebi else f"{mebi}Mi"
