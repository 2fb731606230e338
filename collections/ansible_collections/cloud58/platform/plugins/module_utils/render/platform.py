# -*- coding: utf-8 -*-
# Copyright: cloud58 platform team
# Apache License 2.0
"""Platform objects every cluster gets, as plain dicts.

* the cluster identity ConfigMap (``kube-system/cloud58-identity``) the engine checks
  before writing anything;
* the ``cloud58-system`` namespace, and RBAC for the platform's own components: the
  reconciler (server-side apply of anything Git holds, dry-runs for merge requests) and
  a read-only observer for dashboards and audits;
* the PriorityClasses apps choose from;
* per business namespace: the Namespace, a ResourceQuota derived from the apps it runs
  there, and the owning team's ``edit`` RoleBinding.

The Calico objects come from ``module_utils/bgp`` (see ``render/tree.py``); later issues
(LVS, Consul) add theirs the same way. ``labels_for`` (from ``kube/objects.py``) gives every
producer the same ownership labels.
"""

from __future__ import annotations

from ..controlplane.pki_plan import CONSUL_SYNC_USER, LVS_SYNC_USER, NODE_AGENTS, PROMETHEUS_USER, agent_user
from ..kube.objects import IDENTITY_NAME, IDENTITY_NAMESPACE, labels_for

SYSTEM_NAMESPACE = "cloud58-system"
RBAC_GROUP = "rbac.authorization.k8s.io"
TEAM_LABEL = "cloud58.io/team"
RECONCILER = "cloud58-reconciler"
OBSERVER = "cloud58-observer"
# cloud58-lvs-sync on the LVS directors (role lvs_director, outside the cluster) reads Services and
# EndpointSlices, nothing else, with a client certificate of the cluster's CA (controlplane/pki_plan.py).
LVS_SYNC = "cloud58-lvs-sync"
LVS_SYNC_RULES = [
    {"apiGroups": [""], "resources": ["services"], "verbs": ["get", "list", "watch"]},
    {"apiGroups": ["discovery.k8s.io"], "resources": ["endpointslices"], "verbs": ["get", "list", "watch"]},
]
# The datacenter's Prometheus (role prometheus) scrapes with a client certificate of the
# cluster's CA (controlplane/pki_plan.py): /metrics of the apiservers, controller-managers and
# schedulers (a non-resource URL), and the kubelets' /metrics (nodes/metrics); nothing else.
PROMETHEUS = "cloud58-prometheus"
PROMETHEUS_RULES = [
    {"nonResourceURLs": ["/metrics"], "verbs": ["get"]},
    {"apiGroups": [""], "resources": ["nodes/metrics"], "verbs": ["get"]},
]

# cloud58-consul-sync (role consul_sync, one per cluster, outside the cluster) reads Services and
# EndpointSlices with a client certificate of the cluster's CA (controlplane/pki_plan.py).
CONSUL_SYNC = "cloud58-consul-sync"
CONSUL_SYNC_RULES = [
    {"apiGroups": [""], "resources": ["services"], "verbs": ["get", "list", "watch"]},
    {"apiGroups": ["discovery.k8s.io"], "resources": ["endpointslices"], "verbs": ["get", "list", "watch"]},
]

# The node agents (role node_agents), each minion's certificate in the agent's group
# (controlplane/pki_plan.py): netshaper lists and watches the pods of its node (field selector),
# overload reads its Node and patches its taints and its condition, crashkeeper marks a crashed
# pod Failed (a patch of pods/status; it reads the pod's identity from containerd, not the API)
# and watches the kubelets' Unhealthy Events (a failed liveness probe: the moment of a live dump),
# loadannotator reads its Node and patches its cloud58.io/load-* annotations.
AGENT_RULES = {
    "netshaper": [{"apiGroups": [""], "resources": ["pods"], "verbs": ["get", "list", "watch"]}],
    "overload": [
        {"apiGroups": [""], "resources": ["nodes"], "verbs": ["get", "patch"]},
        {"apiGroups": [""], "resources": ["nodes/status"], "verbs": ["patch"]},
    ],
    "crashkeeper": [
        {"apiGroups": [""], "resources": ["pods/status"], "verbs": ["patch"]},
        {"apiGroups": [""], "resources": ["events"], "verbs": ["list", "watch"]},
    ],
    "loadannotator": [{"apiGroups": [""], "resources": ["nodes"], "verbs": ["get", "patch"]}],
}

# name -> (value, description, preemption policy)
PRIORITY_CLASSES = {
    "cloud58-platform-critical": (
        1000000,
        "Platform components (network, load balancing, discovery); preempts business pods.",
        "PreemptLowerPriority",
    ),
    "cloud58-business-high": (
        100000,
        "Business apps on the critical path (priority: high).",
        "PreemptLowerPriority",
    ),
    "cloud58-business-default": (10000, "Business apps (priority: default).", "PreemptLowerPriority"),
    "cloud58-business-low": (1000, "Batch and best-effort apps (priority: low); never preempts.", "Never"),
}
APP_PRIORITY_CLASS = {
    "high": "cloud58-business-high",
    "default": "cloud58-business-default",
    "low": "cloud58-business-low",
}


def meta(name: str, cluster: str, namespace: str = "", labels: dict | None = None, annotations=None) -> dict:
    out = {"name": name, "labels": labels_for(cluster, labels)}
    if namespace:
        out["namespace"] = namespace
    if annotations:
        out["annotations"] = dict(annotations)
    return out


def identity_configmap(cluster: str, datacenter: str, uid: str) -> dict:
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": meta(IDENTITY_NAME, cluster, IDENTITY_NAMESPACE),
        "data": {"cluster": cluster, "datacenter": datacenter, "uid": uid},
    }


def namespace(name: str, cluster: str, labels: dict | None = None) -> dict:
    return {"apiVersion": "v1", "kind": "Namespace", "metadata": meta(name, cluster, labels=labels)}


def platform_objects(cluster: str, datacenter: str, uid: str) -> list[dict]:
    """Objects every cluster gets, whatever apps run on it."""
    objs = [
        identity_configmap(cluster, datacenter, uid),
        namespace(SYSTEM_NAMESPACE, cluster),
    ]
    for name, (value, description, preemption) in sorted(PRIORITY_CLASSES.items()):
        # No globalDefault: false is its default, which the API server does not store, and a
        # field sent but never stored stays owned by cloud58's field manager: anyone else's
        # `kubectl apply --server-side` of the same object would then conflict on it.
        objs.append(
            {
                "apiVersion": "scheduling.k8s.io/v1",
                "kind": "PriorityClass",
                "metadata": meta(name, cluster),
                "value": value,
                "description": description,
                "preemptionPolicy": preemption,
            }
        )
    objs.extend(_component_rbac(cluster))
    objs.extend(prometheus_rbac(cluster))
    objs.extend(consul_sync_rbac(cluster))
    for agent in NODE_AGENTS:
        objs.extend(agent_rbac(cluster, agent))
    return objs


def _component_rbac(cluster: str) -> list[dict]:
    reconciler_rules = [
        {
            "apiGroups": ["*"],
            "resources": ["*"],
            "verbs": ["get", "list", "watch", "create", "patch", "update", "delete"],
        }
    ]
    observer_rules = [
        {
            "apiGroups": ["", "apps", "autoscaling", "policy", "batch", "networking.k8s.io"],
            "resources": [
                "configmaps",
                "deployments",
                "endpoints",
                "events",
                "horizontalpodautoscalers",
                "jobs",
                "namespaces",
                "nodes",
                "poddisruptionbudgets",
                "pods",
                "replicasets",
                "resourcequotas",
                "services",
                "statefulsets",
                "daemonsets",
                "networkpolicies",
            ],
            "verbs": ["get", "list", "watch"],
        }
    ]
    objs = []
    for component, rules in ((RECONCILER, reconciler_rules), (OBSERVER, observer_rules)):
        objs.extend(_component(cluster, component, rules))
    return objs


def lvs_sync_rbac(cluster: str) -> list[dict]:
    """ClusterRole ``cloud58-lvs-sync`` (get, list and watch of Services and EndpointSlices in
    every namespace, ``LVS_SYNC_RULES``, nothing more) bound to the user of the sync's client
    certificate; no ServiceAccount: it runs on the directors, outside the cluster."""
    subject = {"apiGroup": RBAC_GROUP, "kind": "User", "name": LVS_SYNC_USER}
    return _role_and_binding(cluster, LVS_SYNC, LVS_SYNC_RULES, subject)


def prometheus_rbac(cluster: str) -> list[dict]:
    """ClusterRole ``cloud58-prometheus`` (``PROMETHEUS_RULES``) bound to the user of
    Prometheus' client certificate; no ServiceAccount: Prometheus runs outside the cluster."""
    subject = {"apiGroup": RBAC_GROUP, "kind": "User", "name": PROMETHEUS_USER}
    return _role_and_binding(cluster, PROMETHEUS, PROMETHEUS_RULES, subject)


def consul_sync_rbac(cluster: str) -> list[dict]:
    """ClusterRole ``cloud58-consul-sync`` (get, list and watch of Services and EndpointSlices)
    bound to the user of the sync's client certificate; no ServiceAccount: it runs outside."""
    subject = {"apiGroup": RBAC_GROUP, "kind": "User", "name": CONSUL_SYNC_USER}
    return _role_and_binding(cluster, CONSUL_SYNC, CONSUL_SYNC_RULES, subject)


def agent_rbac(cluster: str, agent: str) -> list[dict]:
    """ClusterRole ``cloud58-<agent>`` (``AGENT_RULES``) bound to the group of the agent's
    certificates on every minion."""
    group = agent_user(agent, "")[1]
    return _role_and_binding(
        cluster,
        f"cloud58-{agent}",
        AGENT_RULES[agent],
        {"apiGroup": RBAC_GROUP, "kind": "Group", "name": group},
    )


def _role_and_binding(cluster: str, name: str, rules: list[dict], subject: dict) -> list[dict]:
    """ClusterRole ``name`` with ``rules`` and its ClusterRoleBinding to ``subject``."""
    labels = {"app.kubernetes.io/component": name}
    return [
        {
            "apiVersion": f"{RBAC_GROUP}/v1",
            "kind": "ClusterRole",
            "metadata": meta(name, cluster, labels=labels),
            "rules": rules,
        },
        {
            "apiVersion": f"{RBAC_GROUP}/v1",
            "kind": "ClusterRoleBinding",
            "metadata": meta(name, cluster, labels=labels),
            "roleRef": {"apiGroup": RBAC_GROUP, "kind": "ClusterRole", "name": name},
            "subjects": [subject],
        },
    ]


def _component(cluster: str, component: str, rules: list[dict]) -> list[dict]:
    """ServiceAccount, ClusterRole and ClusterRoleBinding of a platform component."""
    account = {
        "apiVersion": "v1",
        "kind": "ServiceAccount",
        "metadata": meta(component, cluster, SYSTEM_NAMESPACE, {"app.kubernetes.io/component": component}),
    }
    subject = {"kind": "ServiceAccount", "name": component, "namespace": SYSTEM_NAMESPACE}
    return [account, *_role_and_binding(cluster, component, rules, subject)]


def business_namespace_objects(cluster: str, name: str, team: str, quota: dict) -> list[dict]:
    """A business namespace: the Namespace, its ResourceQuota and the team's edit RoleBinding."""
    team_labels = {TEAM_LABEL: team}
    return [
        namespace(name, cluster, team_labels),
        {
            "apiVersion": "v1",
            "kind": "ResourceQuota",
            "metadata": meta("cloud58-quota", cluster, name, team_labels),
            "spec": {"hard": dict(quota)},
        },
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "RoleBinding",
            "metadata": meta("cloud58-team-edit", cluster, name, team_labels),
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "edit"},
            "subjects": [
                {"apiGroup": "rbac.authorization.k8s.io", "kind": "Group", "name": f"cloud58:team:{team}"}
            ],
        },
    ]
