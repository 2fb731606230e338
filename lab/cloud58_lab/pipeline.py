# -*- coding: utf-8 -*-
# Copyright: cloud58 platform team
# Apache License 2.0
"""Render then reconcile, in one call: what ``make lab`` runs for the lab clusters.

from cloud58_lab.pipeline import render_and_reconcile
result = render_and_reconcile("/work/main", kubeconfig, ["lab1-k8s", "lab2-k8s"])
# prints the render counts and the per-cluster summary; result["failed_clusters"] == [] when all went well
"""

from __future__ import annotations

import os
import sys

from ansible_collections.cloud58.platform.plugins.module_utils.gitops.runner import run_reconcile
from ansible_collections.cloud58.platform.plugins.module_utils.render.runner import run_render


def render_and_reconcile(
    repo: str,
    kubeconfig: str,
    clusters: list[str],
    *,
    clusters_dir: str | None = None,
    bootstrap_identity: bool = True,
    wait_rollouts: bool = False,
    wait_timeout: int = 300,
    report_path: str | None = None,
    out=None,
) -> dict:
    """Render the directories of ``clusters`` from the repo's inventories and apps, reconcile
    those clusters through ``kubeconfig`` (contexts named as in cluster.yml), print the summary.

    ``out`` receives each line to show (default: standard output).
    ``bootstrap_identity`` creates the identity object of a cluster that has none (the lab
    provisions fresh clusters); an existing different identity still refuses. Returns the
    reconcile result (``failed_clusters`` empty when every cluster is in sync). Raises
    GitOpsError (RenderError, AppSpecError, ClusterDirError) for bad input, before any
    cluster is touched.
    """
    out = out or _stdout
    target = clusters_dir or os.path.join(repo, "clusters")
    rendered = run_render(
        {
            "inventories_dir": os.path.join(repo, "inventories"),
            "apps_dir": os.path.join(repo, "apps"),
            "clusters_dir": target,
            "clusters": list(clusters),
        }
    )
    files = rendered["files"]
    out(
        "render: "
        + ", ".join(f"{name} {count} objects" for name, count in rendered["objects"].items())
        + f" ({len(files['added'])} added, {len(files['changed'])} changed,"
        + f" {len(files['removed'])} removed files)"
    )
    result = run_reconcile(
        {
            "clusters_dir": target,
            "clusters": list(clusters),
            "kubeconfig": kubeconfig,
            "bootstrap_identity": bootstrap_identity,
            "wait_rollouts": wait_rollouts,
            "wait_timeout": wait_timeout,
            "report_path": report_path,
        }
    )
    for line in result["summary"]:
        out(line)
    return result


def _stdout(line: str) -> None:
    sys.stdout.write(line + "\n")
