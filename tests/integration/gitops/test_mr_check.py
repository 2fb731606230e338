"""The merge-request job's dry run against real clusters, and its report."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from .helpers import configmap, namespace

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[3]
sys.path.insert(0, str(REPO / "scripts/ci"))

import mr_check  # noqa: E402


def test_mr_check_dry_runs_reachable_clusters_reports_diffs_and_skips_the_rest(workspace, tmp_path):
    ns = namespace("t-mr", "c1")
    workspace.write("c1", [ns, configmap("cm", "t-mr", "c1", {"key": "v1"})])
    workspace.reconcile(["c1"])
    workspace.write("c1", [ns, configmap("cm", "t-mr", "c1", {"key": "v2"})])
    workspace.write("gz1-k8s", [namespace("t-mr", "gz1-k8s")])  # no such context in the kubeconfig
    report = tmp_path / "mr.md"
    argv = ["--skip-render", "--clusters-dir", str(workspace.root), "--kubeconfig", workspace.kubeconfig]
    assert mr_check.main([*argv, "--report", str(report)]) == 0
    text = report.read_text()
    assert "**passed**" in text
    assert "* gz1-k8s: skipped, the kubeconfig has no context 'gz1-k8s'" in text
    assert "* **update** `ConfigMap/t-mr/cm` (changed in Git) — fields: data.key" in text
    assert "  -  key: v1\n  +  key: v2\n" in text
    assert workspace.get("c1", "/api/v1/namespaces/t-mr/configmaps/cm")["data"] == {"key": "v1"}


def test_mr_check_fails_on_a_cluster_that_refuses(workspace, tmp_path):
    workspace.write("c3", [namespace("t-mr-bad", "c3")], context="c2")
    report = tmp_path / "mr.md"
    argv = ["--skip-render", "--clusters-dir", str(workspace.root), "--kubeconfig", workspace.kubeconfig]
    assert mr_check.main([*argv, "--report", str(report)]) == 1
    text = report.read_text()
    assert "**FAILED**" in text
    assert "* c3: cluster 'c3': context 'c2' points at another cluster; refusing to write." in text


def test_mr_check_script_on_the_repository_passes_without_clusters(tmp_path):
    report = tmp_path / "mr.md"
    run = subprocess.run(
        [
            str(REPO / "scripts/ci/mr-check.sh"),
            "--kubeconfig",
            str(tmp_path / "none"),
            "--report",
            str(report),
        ],
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )
    assert run.returncode == 0, run.stdout + run.stderr
    assert "mr-check: lab1-k8s: skipped, the kubeconfig has no context 'lab1-k8s'" in run.stdout
    assert report.read_text().startswith("# Merge-request check\n\n**passed**\n")
