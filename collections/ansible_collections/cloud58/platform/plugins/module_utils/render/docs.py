# -*- coding: utf-8 -*-
# Copyright: cloud58 platform team
# Apache License 2.0
"""``docs/apps.md`` and ``schemas/app.schema.json``, generated from ``APP_SCHEMA``.

``scripts/ci/gen_app_docs.py`` writes them; a unit test fails when either is stale.
"""

from __future__ import annotations

import json

from .app_schema import APP_SCHEMA

SEMANTIC_RULES = [
    ("name-matches-file", "`name` equals the file name without `.yaml`."),
    ("min-not-above-max", "`autoscaling.max_replicas` is at least `autoscaling.min_replicas`."),
    (
        "replicas-cover-clusters",
        "`replicas` (or `autoscaling.min_replicas`) is at least the number of clusters: each gets a pod.",
    ),
    ("limits-cover-requests", "Each limit is at least the matching request."),
    (
        "grace-covers-prestop",
        "`graceful_shutdown.termination_grace_period_seconds` exceeds `pre_stop_sleep_seconds`.",
    ),
    ("known-cluster", "Every cluster under `clusters` is defined by an inventory."),
    ("known-rack", "`placement.racks` names at least one rack holding nodes of each cluster."),
    ("known-function", "Some node of each cluster has the `placement.function` label value."),
    ("one-team-per-namespace", "All apps of a namespace have the same `team`."),
    (
        "bandwidth-in-range",
        "`bandwidth.ingress` and `bandwidth.egress` (of an app or a namespace) lie between 1k and 1P bits "
        "per second, what the kubelet accepts.",
    ),
    ("vip-ipv4", "`vip.address` is an IPv4 address."),
    ("vip-needs-service", "An app with a `vip` has its Service (`service.enabled`)."),
    (
        "vip-in-range",
        "`vip.address` lies in `networks.vip_pool` of the datacenter of every cluster the app runs in.",
    ),
    ("vip-in-plan", "`vip.address` is a VIP of that datacenter's inventory (`lvs.vips`)."),
    ("vip-port-in-plan", "`vip.port` is one of that VIP's `ports`."),
    (
        "one-claim-per-vip",
        "A VIP is claimed by one app in one cluster, and never the API VIP of a cluster: "
        "cloud58-lvs-sync gives a VIP to one Service.",
    ),
    (
        "namespace-has-apps",
        "`apps/namespaces/<namespace>.yaml` names a namespace some app runs in.",
    ),
]

EXAMPLE = """\
# apps/checkout.yaml
name: checkout
team: payments
namespace: payments
image: registry.cloud58.example/payments/checkout:1.14.2
resources:
  requests: {cpu: "1", memory: 2Gi}
  limits: {cpu: "2", memory: 3Gi}
autoscaling: {min_replicas: 6, max_replicas: 24}
probes: {path: /actuator/health/liveness, warmup_seconds: 90}
clusters: {bj1-k8s: 2, sh1-k8s: 1}
"""


def schema_json() -> str:
    """The schema file for editors (``# yaml-language-server: $schema=../schemas/app.schema.json``)."""
    return json.dumps(APP_SCHEMA, indent=2, sort_keys=True) + "\n"


def apps_markdown() -> str:
    lines = [
        "# App specs",
        "",
        "<!-- Generated from the JSON Schema in module_utils/render/app_schema.py by",
        "     scripts/ci/gen_app_docs.py; do not edit. A unit test fails when this file is stale. -->",
        "",
        APP_SCHEMA["description"],
        "",
        "A minimal spec:",
        "",
        "```yaml",
        EXAMPLE.rstrip("\n"),
        "```",
        "",
        "`make render` validates every spec, fills the defaults below and writes the objects into",
        "`clusters/<cluster>/`; `make mr-check` does the same in a merge request. An invalid spec",
        "fails with the file, the path inside it and the rule broken, for example:",
        "",
        "```",
        "apps/checkout.yaml: autoscaling.max_replicas: 0 is less than the minimum of 1 (rule: minimum)",
        "```",
        "",
        "## Weights",
        "",
        "`clusters: {bj1-k8s: 2, sh1-k8s: 1}` splits `replicas` (autoscaling off) or",
        "`min_replicas` and `max_replicas` (autoscaling on) across clusters in proportion to the",
        "weights, by the largest-remainder method with ties broken by cluster name; every cluster",
        "gets at least one pod. With 6..24 replicas the split above gives bj1-k8s 4..16 and",
        "sh1-k8s 2..8. The namespace's ResourceQuota in each cluster is derived from its apps there:",
        "room for every app at its maximum plus the 25% rolling-update surge.",
        "",
        "## Fields",
        "",
        "| field | type | default | description |",
        "|---|---|---|---|",
    ]
    lines.extend(_rows(APP_SCHEMA, ""))
    lines += ["", "## Rules across fields", "", "| rule | meaning |", "|---|---|"]
    lines.extend(f"| `{rule}` | {text} |" for rule, text in SEMANTIC_RULES)
    lines += [
        "",
        "## What is rendered",
        "",
        "Per cluster the app is weighted to, in its namespace, all labelled",
        "`app.kubernetes.io/managed-by: cloud58` and `cloud58.io/cluster: <cluster>`:",
        "",
        "* Deployment `<name>`: the image, resources, `http` port; startup probe allowing",
        "  `warmup_seconds` before liveness applies, readiness and liveness probes; `minReadySeconds`;",
        "  rolling update with `maxUnavailable: 0`; preStop sleep and the grace period; node affinity",
        "  on `cloud58.io/function` / `cloud58.io/rack`, spread across racks; PriorityClass;",
        "  no `replicas` when an HPA owns it;",
        "* Service `<name>` (unless `service.enabled: false`), port `http`;",
        "* HorizontalPodAutoscaler `<name>` (unless `autoscaling.enabled: false`);",
        "* PodDisruptionBudget `<name>`;",
        "* ConfigMap `<name>-config` when `config` is set, mounted read-only; its hash is a pod",
        "  annotation so that pods roll when it changes.",
        "* the pod annotations `kubernetes.io/ingress-bandwidth` / `kubernetes.io/egress-bandwidth`",
        "  from `bandwidth`, each direction the app leaves out taken from `bandwidth` in",
        "  `apps/namespaces/<namespace>.yaml` (the namespace's defaults, its only field today);",
        "  no annotation: unlimited. `docs/node-protection.md` says what enforces them on the nodes.",
        "* the pod annotation `cloud58.io/crash` from `crash` (compact JSON: `app`, `dump`, `timeout_s`,",
        "  `keep`), read by the node agent cloud58-crashkeeper (`docs/node-protection.md`).",
        "",
        "Per namespace: the Namespace, ResourceQuota `cloud58-quota`, RoleBinding",
        "`cloud58-team-edit` (group `cloud58:team:<team>` gets the `edit` ClusterRole).",
        "",
    ]
    return "\n".join(lines)


def _rows(schema: dict, prefix: str) -> list[str]:
    rows = []
    required = set(schema.get("required") or [])
    for name, sub in (schema.get("properties") or {}).items():
        path = f"{prefix}{name}"
        kind = _type(sub)
        default = "**required**" if name in required else _default(sub)
        rows.append(f"| `{path}` | {kind} | {default} | {_describe(sub)} |")
        if sub.get("type") == "object" and sub.get("properties"):
            rows.extend(_rows(sub, f"{path}."))
    return rows


def _type(sub: dict) -> str:
    if "enum" in sub:
        return "one of " + ", ".join(f"`{v}`" for v in sub["enum"])
    if "oneOf" in sub:
        return " or ".join(_type(option) for option in sub["oneOf"])
    kind = sub.get("type", "any")
    if isinstance(kind, list):
        kind = " or ".join(kind)
    if kind == "array":
        kind = f"list of {_type(sub.get('items') or {})}"
    if kind == "object" and isinstance(sub.get("additionalProperties"), dict):
        kind = f"map to {_type(sub['additionalProperties'])}"
    return kind


def _default(sub: dict) -> str:
    if "default" not in sub:
        return ""
    return "`" + json.dumps(sub["default"]) + "`"


def _describe(sub: dict) -> str:
    parts = [sub.get("description", "")]
    limits = []
    if "minimum" in sub and sub.get("type") == "integer":
        limits.append(f"min {sub['minimum']}")
    if "maximum" in sub:
        limits.append(f"max {sub['maximum']}")
    if "not" in sub and "enum" in sub["not"]:
        limits.append("not " + ", ".join(f"`{v}`" for v in sub["not"]["enum"]))
    if "examples" in sub:
        limits.append(
            "e.g. "
            + ", ".join(f"`{json.dumps(e) if not isinstance(e, str) else e}`" for e in sub["examples"])
        )
    if limits:
        parts.append("(" + "; ".join(limits) + ")")
    return " ".join(p for p in parts if p).replace("|", "\\|")
