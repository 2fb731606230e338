"""The merge-request job's dry run against real clusters or, for a cluster whose context is
missing or unreachable, against an ephemeral kube-apiserver of the pinned version; and its report."""

from __future__ import annotations

import contextlib
import io
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from cloud58_lab.controlplane import proc_start_time

from .helpers import configmap, namespace

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[3]
sys.path.insert(0, str(REPO / "scripts/ci"))

import mr_check  # noqa: E402

# The one apiserver a job starts, as it announces it: "mr-check: ephemeral apiserver v1.36.3 on
# https://127.0.0.1:20001 for a, b (etcd pid 1, kube-apiserver pid 2)".
STARTED = re.compile(
    r"^mr-check: ephemeral apiserver (\S+) on \S+ for (.+) \(etcd pid (\d+), kube-apiserver pid (\d+)\)$",
    re.M,
)


@pytest.fixture(scope="module")
def pinned_version(upstream_bin_dir) -> str:
    """The pinned kube-apiserver's version, as the program itself says it (``v1.36.3``)."""
    out = subprocess.run(
        [str(upstream_bin_dir / "kube-apiserver"), "--version"], capture_output=True, text=True, check=True
    ).stdout
    return out.split()[-1]


def started_apiservers(stdout: str) -> list[tuple[str, str, int, int]]:
    """(version, clusters, etcd pid, kube-apiserver pid) of every ephemeral apiserver the job announced."""
    return [(v, names, int(etcd), int(api)) for v, names, etcd, api in STARTED.findall(stdout)]


def test_mr_check_dry_runs_reachable_clusters_reports_diffs_and_checks_the_rest_ephemerally(
    workspace, tmp_path, capsys, pinned_version
):
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
    assert "| c1 | its context `c1` | ok |" in text
    assert (
        f"| gz1-k8s | ephemeral apiserver {pinned_version} (the kubeconfig has no context 'gz1-k8s') "
        "| ok, 2 objects accepted |"  # its Namespace and the identity ConfigMap the workspace writes
    ) in text
    assert "skipped" not in text
    assert "* **update** `ConfigMap/t-mr/cm` (changed in Git) — fields: data.key" in text
    assert "  -  key: v1\n  +  key: v2\n" in text
    assert workspace.get("c1", "/api/v1/namespaces/t-mr/configmaps/cm")["data"] == {"key": "v1"}
    [(version, names, etcd, apiserver)] = started_apiservers(capsys.readouterr().out)
    assert (version, names) == (pinned_version, "gz1-k8s")
    assert (proc_start_time(etcd), proc_start_time(apiserver)) == (None, None)


def test_mr_check_checks_a_cluster_whose_api_server_is_down_against_the_ephemeral_apiserver(
    workspace, gitops_clusters, tmp_path, pinned_version
):
    workspace.write("c2", [namespace("t-mr-down", "c2"), configmap("cm", "t-mr-down", "c2")])
    report = tmp_path / "mr.md"
    argv = ["--skip-render", "--clusters-dir", str(workspace.root), "--kubeconfig", workspace.kubeconfig]
    gitops_clusters["c2"].stop()
    try:
        status = mr_check.main([*argv, "--report", str(report)])
    finally:
        gitops_clusters["c2"].start()
    assert status == 0
    [row] = [line for line in report.read_text().splitlines() if line.startswith("| c2 |")]
    why = f"context 'c2': API server {gitops_clusters['c2'].server} unreachable: "
    assert row.startswith(f"| c2 | ephemeral apiserver {pinned_version} ({why}")
    assert row.endswith(") | ok, 3 objects accepted |")  # Namespace, ConfigMap, identity ConfigMap


def test_mr_check_fails_on_a_cluster_that_refuses(workspace, tmp_path):
    workspace.write("c3", [namespace("t-mr-bad", "c3")], context="c2")
    report = tmp_path / "mr.md"
    argv = ["--skip-render", "--clusters-dir", str(workspace.root), "--kubeconfig", workspace.kubeconfig]
    assert mr_check.main([*argv, "--report", str(report)]) == 1
    text = report.read_text()
    assert "**FAILED**" in text
    assert "* c3: cluster 'c3': context 'c2' points at another cluster; refusing to write." in text


def repo_clusters() -> dict[str, tuple[str, int]]:
    """The repository's clusters/: name -> (context, number of objects)."""
    out = {}
    for spec in sorted((REPO / "clusters").glob("*/cluster.yml")):
        objects = len(list(spec.parent.glob("*.yaml")))
        out[spec.parent.name] = (yaml.safe_load(spec.read_text())["context"], objects)
    return out


def test_mr_check_without_a_reachable_context_checks_every_cluster_against_one_ephemeral_apiserver(
    tmp_path, pinned_version
):
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
        timeout=900,
    )
    assert run.returncode == 0, run.stdout + run.stderr
    clusters = repo_clusters()
    assert sorted(clusters) == ["bj1-k8s", "lab1-k8s", "lab2-k8s", "sh1-k8s"]
    [(version, names, etcd, apiserver)] = started_apiservers(run.stdout)
    assert (version, names) == (pinned_version, ", ".join(clusters))
    text = report.read_text()
    assert text.startswith("# Merge-request check\n\n**passed**\n")
    for name, (context, objects) in clusters.items():
        against = f"ephemeral apiserver {pinned_version} (the kubeconfig has no context {context!r})"
        assert f"mr-check: {name}: checked against {against}: ok, {objects} objects accepted\n" in run.stdout
        assert f"| {name} | {against} | ok, {objects} objects accepted |\n" in text
    assert "skipped" not in run.stdout + text
    assert (proc_start_time(etcd), proc_start_time(apiserver)) == (None, None)


def _labels(cluster: str) -> dict:
    return {"app.kubernetes.io/managed-by": "cloud58", "cloud58.io/cluster": cluster}


GADGET_CRD = {
    "apiVersion": "apiextensions.k8s.io/v1",
    "kind": "CustomResourceDefinition",
    "metadata": {"name": "gadgets.cloud58.example", "labels": _labels("lab1-k8s")},
    "spec": {
        "group": "cloud58.example",
        "names": {"kind": "Gadget", "listKind": "GadgetList", "plural": "gadgets", "singular": "gadget"},
        "scope": "Namespaced",
        "versions": [
            {
                "name": "v1",
                "served": True,
                "storage": True,
                "schema": {
                    "openAPIV3Schema": {
                        "type": "object",
                        "properties": {
                            "spec": {
                                "type": "object",
                                "properties": {"size": {"type": "integer", "minimum": 1}},
                            }
                        },
                    }
                },
            }
        ],
    },
}


def _gadget(name: str, cluster: str, size: int) -> dict:
    return {
        "apiVersion": "cloud58.example/v1",
        "kind": "Gadget",
        "metadata": {"name": name, "namespace": "lab-demo", "labels": _labels(cluster)},
        "spec": {"size": size},
    }


# Changes to copies of the repository's cluster directories that the API server refuses:
# (cluster, file, merged into the file's object or written as a new file, the object as
# the report names it, what the server says). One job checks them all, on one apiserver.
REJECTIONS = {
    "string-for-an-integer": (
        "lab1-k8s",
        "36_deployment_lab-demo_echo.yaml",
        {"spec": {"replicas": "three"}},
        "Deployment/echo",
        "500 failed to create typed patch object (lab-demo/echo; apps/v1, Kind=Deployment): "
        ".spec.replicas: expected numeric (int or float), got string",
    ),
    "unknown-field": (
        "lab1-k8s",
        "35_service_lab-demo_echo.yaml",
        {"spec": {"portz": [{"port": 80}]}},
        "Service/echo",
        "500 failed to create typed patch object (lab-demo/echo; /v1, Kind=Service): "
        ".spec.portz: field not declared in schema",
    ),
    "value-out-of-range": (
        "lab1-k8s",
        "37_horizontalpodautoscaler_lab-demo_echo.yaml",
        {"spec": {"minReplicas": 0}},
        "HorizontalPodAutoscaler/echo",
        '422 HorizontalPodAutoscaler.autoscaling "echo" is invalid: '
        "[spec.minReplicas: Invalid value: 0: must be greater than or equal to 1",
    ),
    "invalid-name": (
        "lab1-k8s",
        "32_configmap_lab-demo_bad-name.yaml",
        {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {"name": "Bad_Name", "namespace": "lab-demo", "labels": _labels("lab1-k8s")},
            "data": {"key": "value"},
        },
        "ConfigMap/Bad_Name",
        '422 ConfigMap "Bad_Name" is invalid: metadata.name: Invalid value: "Bad_Name": '
        "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters",
    ),
    "calico-crd-schema": (
        "lab1-k8s",
        "28_ippool_lab1-k8s-lab1-r1.yaml",
        {"spec": {"blockSize": 16}},
        "IPPool/lab1-k8s-lab1-r1",
        '422 IPPool.crd.projectcalico.org "lab1-k8s-lab1-r1" is invalid: '
        "[spec.blockSize: Invalid value: 16: spec.blockSize in body should be greater than or equal to 20",
    ),
    "crd-of-the-directory": (
        "lab1-k8s",
        "40_gadget_lab-demo_g2.yaml",
        _gadget("g2", "lab1-k8s", 0),
        "Gadget/g2",
        '422 Gadget.cloud58.example "g2" is invalid: '
        "spec.size: Invalid value: 0: spec.size in body should be greater than or equal to 1",
    ),
}
# Written as they are: a CRD of lab1-k8s's directory and a Gadget it accepts; a Gadget in
# lab2-k8s, whose directory defines no such CRD (lab1-k8s's must be gone by then).
ADDED = [
    ("lab1-k8s", "15_customresourcedefinition_gadgets.cloud58.example.yaml", GADGET_CRD),
    ("lab1-k8s", "40_gadget_lab-demo_g1.yaml", _gadget("g1", "lab1-k8s", 3)),
    ("lab2-k8s", "40_gadget_lab-demo_g.yaml", _gadget("g", "lab2-k8s", 3)),
]


def _merge(obj: dict, patch: dict) -> None:
    for key, value in patch.items():
        if isinstance(value, dict) and isinstance(obj.get(key), dict):
            _merge(obj[key], value)
        else:
            obj[key] = value


@pytest.fixture(scope="module")
def rejected_job(tmp_path_factory):
    """One job over copies of bj1-k8s (unchanged), lab1-k8s (every REJECTIONS change) and
    lab2-k8s (an object of a kind nothing serves), with ADDED; no context answers.
    Returns (exit status, report, stdout, stderr, the clusters' root)."""
    root = tmp_path_factory.mktemp("mr-rejected") / "clusters"
    for name in ("bj1-k8s", "lab1-k8s", "lab2-k8s"):
        shutil.copytree(REPO / "clusters" / name, root / name)
    changes = [(c, f, patch) for c, f, patch, _, _ in REJECTIONS.values()]
    for cluster, file, patch in [*changes, *ADDED]:
        path = root / cluster / file
        obj = yaml.safe_load(path.read_text()) if path.exists() else {}
        _merge(obj, patch)
        path.write_text(yaml.safe_dump(obj, sort_keys=True))
    report = root.parent / "mr.md"
    out, err = io.StringIO(), io.StringIO()
    argv = ["--skip-render", "--clusters-dir", str(root), "--kubeconfig", str(root.parent / "none")]
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        status = mr_check.main([*argv, "--report", str(report)])
    return status, report.read_text(), out.getvalue(), err.getvalue(), root


@pytest.mark.parametrize("case", list(REJECTIONS))
def test_mr_check_fails_on_an_object_the_ephemeral_apiserver_rejects_naming_it_and_the_reason(
    rejected_job, pinned_version, case
):
    status, report, _out, err, _root = rejected_job
    cluster, file, _patch, obj, reason = REJECTIONS[case]
    assert status == 1
    prefix = f"{cluster} (ephemeral apiserver {pinned_version}): {obj}: {cluster}/{file}: "
    [line] = [line for line in report.splitlines() if line.startswith(f"* {prefix}")]
    assert reason in line
    assert f"mr-check: {prefix}" in err


def test_mr_check_fails_on_a_kind_the_ephemeral_apiserver_does_not_serve(rejected_job, pinned_version):
    status, report, _out, _err, _root = rejected_job
    assert status == 1
    assert (
        f"* lab2-k8s (ephemeral apiserver {pinned_version}): lab2-k8s/40_gadget_lab-demo_g.yaml: "
        "cluster 'lab2-k8s' serves no Gadget in cloud58.example/v1 "
        "(and no CRD in this directory defines it)\n"
    ) in report


def test_mr_check_reports_each_cluster_of_a_failed_job_and_leaves_no_apiserver_running(
    rejected_job, pinned_version
):
    status, report, out, _err, root = rejected_job
    bj1 = len(list((root / "bj1-k8s").glob("*.yaml")))
    lab1 = len(list((root / "lab1-k8s").glob("*.yaml"))) - len(REJECTIONS)
    against = f"ephemeral apiserver {pinned_version} (the kubeconfig has no context"
    assert status == 1
    assert report.startswith("# Merge-request check\n\n**FAILED**\n")
    assert f"| bj1-k8s | {against} 'bj1-k8s') | ok, {bj1} objects accepted |" in report
    assert f"| lab1-k8s | {against} 'lab1-k8s') | failed, 6 rejected, {lab1} objects accepted |" in report
    assert f"| lab2-k8s | {against} 'lab2-k8s') | failed |" in report
    assert "### lab1-k8s\n\n* why not its own cluster: the kubeconfig has no context 'lab1-k8s'\n" in report
    assert "* CRDs of the directory installed first: gadgets.cloud58.example\n" in report
    [(version, names, etcd, apiserver)] = started_apiservers(out)
    assert (version, names) == (pinned_version, "bj1-k8s, lab1-k8s, lab2-k8s")
    assert (proc_start_time(etcd), proc_start_time(apiserver)) == (None, None)
