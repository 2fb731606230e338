# -*- coding: utf-8 -*-
# Copyright: cloud58 platform team
# Apache License 2.0
"""The reconcile runner: a dict of parameters in, a result dict out.

The module ``cloud58.platform.gitops_reconcile``, the merge-request job and the lab all
call ``run_reconcile``; none of them needs Ansible to be importable here.
"""

from __future__ import annotations

from ..kube.errors import GitOpsError
from .clusterdir import check_run_options, default_cache_dir, load_cluster_dir, select_clusters
from .decide import CREATE, UPDATE
from .engine import ANNOTATE, PRUNE, RunOptions, reconcile_clusters
from .lease import DEFAULT_TIMEOUT as LOCK_TIMEOUT
from .report import report_dict, summary_lines, write_json_report


def run_reconcile(params: dict, *, check_mode: bool = False, diff: bool = False, client_factory=None) -> dict:
    """Reconcile the selected cluster directories.

    Raises GitOpsError for bad input, before any cluster is touched.

    The result holds ``changed``, ``failed_clusters`` (names; non-empty means the run
    failed), ``clusters`` (per-cluster report), ``summary`` (lines of text) and, in diff
    mode, ``diff`` (a list of before/after pairs in Ansible's format).
    """
    names = _names(params.get("clusters"))
    root = params["clusters_dir"]
    overrides = {
        key: params[key] for key in ("prune", "max_prune", "allow_prune_kinds") if params.get(key) is not None
    }
    check_run_options(overrides, "run options")
    for key in ("parallel", "workers", "wait_timeout", "lock_timeout"):
        value = params.get(key)
        if value is not None and (not isinstance(value, int) or value < 1):
            raise GitOpsError(f"run options: {key} must be an integer >= 1, found {value!r}")
    cache_dir = params.get("cache_dir") or default_cache_dir()
    clusters = [load_cluster_dir(root, name, cache_dir) for name in select_clusters(root, names)]
    options = RunOptions(
        kubeconfig=params.get("kubeconfig"),
        check_mode=check_mode,
        diff=diff,
        prune=params.get("prune"),
        max_prune=params.get("max_prune"),
        allow_prune_kinds=params.get("allow_prune_kinds"),
        bootstrap_identity=bool(params.get("bootstrap_identity")),
        wait_rollouts=params.get("wait_rollouts"),
        wait_timeout=float(params.get("wait_timeout") or 300),
        parallel=int(params.get("parallel") or 8),
        workers=int(params.get("workers") or 8),
        request_timeout=float(params.get("request_timeout") or 30.0),
        lock_timeout=float(params.get("lock_timeout") or LOCK_TIMEOUT),
    )
    results = reconcile_clusters(clusters, options, client_factory)
    report = report_dict(results, with_diff=diff)
    if params.get("report_path"):
        write_json_report(params["report_path"], report)
    out = {
        "changed": report["changed"],
        "failed_clusters": report["failed_clusters"],
        "clusters": report["clusters"],
        "summary": summary_lines(results),
        "report_path": params.get("report_path") or "",
    }
    if diff:
        out["diff"] = [
            {
                "before_header": f"{r.cluster}: {o.key} (live)",
                "after_header": f"{r.cluster}: {o.key} ({'dry-run' if check_mode else 'applied'})",
                "before": _yaml(o.before),
                "after": _yaml(o.after),
            }
            for r in results
            for o in r.objects
            if o.action in (CREATE, UPDATE, PRUNE, ANNOTATE)
        ]
    return out


def failure_message(result: dict) -> str:
    parts = []
    for name in result["failed_clusters"]:
        cluster = result["clusters"][name]
        parts.append(f"{name} ({cluster['status']}: {cluster['error']})")
    return "reconcile failed on " + "; ".join(parts)


def _names(value) -> list[str]:
    if value is None or value == "":
        return []
    if isinstance(value, str):
        value = value.split(",")
    return [str(v).strip() for v in value if str(v).strip()]


def _yaml(obj) -> str:
    from .decide import to_yaml

    return to_yaml(obj)
