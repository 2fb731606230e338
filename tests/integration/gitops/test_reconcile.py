"""Reconcile against real clusters (etcd + kube-apiserver): one behaviour per test."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

from ansible_collections.cloud58.platform.plugins.module_utils.gitops.errors import ClusterDirError
from ansible_collections.cloud58.platform.plugins.module_utils.gitops.runner import failure_message
from ansible_collections.cloud58.platform.plugins.module_utils.kube.objects import desired_hash, labels_for

from .helpers import configmap, deployment, namespace, service

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[3]


def counts(
    *,
    created=0,
    updated=0,
    unchanged=0,
    pruned=0,
    failed=0,
    prune_protected=0,
    already_gone=0,
    maybe_written=0,
):
    return {
        "created": created,
        "updated": updated,
        "unchanged": unchanged,
        "pruned": pruned,
        "failed": failed,
        "prune_protected": prune_protected,
        "already_gone": already_gone,
        "maybe_written": maybe_written,
        # these directories name no node annotations
        "nodes_annotated": 0,
        "nodes_unchanged": 0,
        "nodes_pending": 0,
    }


def actions(cluster_result):
    return [(o["kind"], o["name"], o["action"]) for o in cluster_result["objects"]]


def cm_path(ns, name):
    return f"/api/v1/namespaces/{ns}/configmaps/{name}"


def test_first_apply_creates_every_object_in_order(workspace):
    deploy = deployment("web", "t-first", "c1")
    workspace.write(
        "c1",
        [
            namespace("t-first", "c1"),
            configmap("cm", "t-first", "c1"),
            deploy,
            service("web", "t-first", "c1"),
        ],
    )
    result = workspace.reconcile(["c1"])
    c1 = result["clusters"]["c1"]
    assert (c1["status"], c1["error"]) == ("ok", "")
    assert c1["counts"] == counts(created=4, unchanged=1)  # the identity was there already
    assert actions(c1) == [
        ("Namespace", "t-first", "create"),
        ("ConfigMap", "cm", "create"),
        ("Service", "web", "create"),
        ("Deployment", "web", "create"),
    ]
    assert result["changed"] is True
    live = workspace.get("c1", "/apis/apps/v1/namespaces/t-first/deployments/web")
    assert live["spec"]["replicas"] == 2
    assert live["metadata"]["annotations"]["cloud58.io/desired-hash"] == desired_hash(deploy)
    assert {m["manager"] for m in live["metadata"]["managedFields"]} == {"cloud58"}
    assert {m["operation"] for m in live["metadata"]["managedFields"]} == {"Apply"}


def test_second_run_reports_no_changes_with_one_request_per_kind(workspace):
    objs = [namespace("t-noop", "c1"), configmap("cm", "t-noop", "c1"), deployment("web", "t-noop", "c1")]
    workspace.write("c1", [*objs, service("web", "t-noop", "c1")])
    workspace.reconcile(["c1"])
    result = workspace.reconcile(["c1"])
    c1 = result["clusters"]["c1"]
    assert c1["counts"] == counts(unchanged=5)
    assert c1["objects"] == []
    assert result["changed"] is False
    # identity GET + discovery of v1, apps/v1, apiextensions.k8s.io/v1 + one LIST per kind
    # (ConfigMap, Namespace, Service, Deployment, and CustomResourceDefinition from prune_kinds)
    # + the lock: read, take and release the Lease
    assert c1["requests"] == 1 + 3 + 5 + 3


def test_noop_requests_grow_with_kinds_not_objects(workspace):
    def noop_requests(count):
        objs = [namespace("t-scale", "c1")] + [
            configmap(f"cm-{i:03d}", "t-scale", "c1") for i in range(count)
        ]
        workspace.write("c1", objs)
        first = workspace.reconcile(["c1"])
        assert first["failed_clusters"] == []
        noop = workspace.reconcile(["c1"])["clusters"]["c1"]
        assert noop["counts"] == counts(unchanged=count + 2)
        return noop["requests"]

    assert noop_requests(3) == noop_requests(80)


def test_update_applies_only_the_object_changed_in_git(workspace):
    base = [namespace("t-update", "c1"), deployment("web", "t-update", "c1")]
    workspace.write("c1", [*base, configmap("cm", "t-update", "c1", {"key": "v1"})])
    workspace.reconcile(["c1"])
    workspace.write("c1", [*base, configmap("cm", "t-update", "c1", {"key": "v2"})])
    c1 = workspace.reconcile(["c1"])["clusters"]["c1"]
    assert c1["counts"] == counts(updated=1, unchanged=3)
    assert c1["objects"] == [
        {
            "kind": "ConfigMap",
            "group": "",
            "namespace": "t-update",
            "name": "cm",
            "action": "update",
            "source": "c1/32_configmap_t-update_cm.yaml",
            "reason": "changed in Git",
            "fields": ["data.key"],
        }
    ]
    assert workspace.get("c1", cm_path("t-update", "cm"))["data"] == {"key": "v2"}


def test_field_removed_from_git_is_removed_from_the_cluster(workspace):
    ns = namespace("t-remove", "c1")
    workspace.write(
        "c1", [ns, configmap("cm", "t-remove", "c1", {"a": "1", "b": "2"}, labels={"tier": "web"})]
    )
    workspace.reconcile(["c1"])
    workspace.write("c1", [ns, configmap("cm", "t-remove", "c1", {"a": "1"})])
    c1 = workspace.reconcile(["c1"])["clusters"]["c1"]
    assert actions(c1) == [("ConfigMap", "cm", "update")]
    assert c1["objects"][0]["reason"] == "changed in Git"
    live = workspace.get("c1", cm_path("t-remove", "cm"))
    assert live["data"] == {"a": "1"}
    assert live["metadata"]["labels"] == labels_for("c1")


def test_reconcile_prunes_removed_objects_and_nothing_else(workspace, gitops_clusters):
    ns = namespace("t-prune", "c1")
    keep = configmap("keep", "t-prune", "c1")
    workspace.write("c1", [ns, keep, configmap("gone", "t-prune", "c1")])
    workspace.reconcile(["c1"])
    gitops_clusters["c1"].kubectl("-n", "t-prune", "create", "configmap", "handmade", "--from-literal=a=b")
    workspace.write("c1", [ns, keep])
    c1 = workspace.reconcile(["c1"])["clusters"]["c1"]
    assert c1["counts"] == counts(pruned=1, unchanged=3)
    assert c1["objects"] == [
        {
            "kind": "ConfigMap",
            "group": "",
            "namespace": "t-prune",
            "name": "gone",
            "action": "prune",
            "reason": "removed from Git",
        }
    ]
    assert workspace.get("c1", cm_path("t-prune", "gone")) is None
    assert workspace.get("c1", cm_path("t-prune", "keep")) is not None
    assert workspace.get("c1", cm_path("t-prune", "handmade")) is not None  # not labelled for us


def test_refuses_a_context_that_points_at_another_cluster(workspace):
    workspace.write("c1", [namespace("t-wrong", "c1")], context="c2")
    result = workspace.reconcile(["c1"])
    c1 = result["clusters"]["c1"]
    assert result["failed_clusters"] == ["c1"]
    assert c1["status"] == "failed"
    assert c1["error"] == (
        "cluster 'c1': context 'c2' points at another cluster; refusing to write. ConfigMap "
        "kube-system/cloud58-identity holds cluster='c2', datacenter='dc-test', uid='uid-c2', expected "
        "cluster='c1', datacenter='dc-test', uid='uid-c1' (differs in: cluster, uid)"
    )
    assert c1["requests"] == 2  # discovery of v1 and the identity GET: nothing else, no write
    assert workspace.get("c2", "/api/v1/namespaces/t-wrong") is None
    assert workspace.get("c1", "/api/v1/namespaces/t-wrong") is None


def test_missing_identity_refuses_until_bootstrapped_and_bootstrap_never_overwrites(workspace):
    identity = {"uid": "uid-fresh", "name": "cloud58-identity-fresh"}
    workspace.write("c3", [namespace("t-fresh", "c3")], identity=identity)
    refused = workspace.reconcile(["c3"])["clusters"]["c3"]
    assert refused["status"] == "failed"
    assert refused["error"].startswith(
        "cluster 'c3': context 'c3' has no identity object ConfigMap kube-system/cloud58-identity-fresh; "
        "refusing to write. Expected cluster='c3', datacenter='dc-test', uid='uid-fresh'."
    )
    assert workspace.get("c3", "/api/v1/namespaces/t-fresh") is None

    booted = workspace.reconcile(["c3"], bootstrap_identity=True)["clusters"]["c3"]
    assert booted["status"] == "ok"
    assert booted["notes"] == ["identity bootstrapped: created ConfigMap kube-system/cloud58-identity-fresh"]
    assert booted["counts"] == counts(created=1, unchanged=1)  # the namespace; c3's usual identity object
    live = workspace.get("c3", cm_path("kube-system", "cloud58-identity-fresh"))
    assert live["data"] == {"cluster": "c3", "datacenter": "dc-test", "uid": "uid-fresh"}

    workspace.write("c3", [namespace("t-fresh", "c3")], identity={**identity, "uid": "uid-other"})
    again = workspace.reconcile(["c3"], bootstrap_identity=True)["clusters"]["c3"]
    assert again["status"] == "failed"
    assert again["error"].endswith("(differs in: uid)")
    assert workspace.get("c3", cm_path("kube-system", "cloud58-identity-fresh"))["data"]["uid"] == "uid-fresh"


def test_namespace_that_left_git_is_protected_unless_allowed(workspace):
    workspace.write("c1", [namespace("t-keepns", "c1"), configmap("cm", "t-keepns", "c1")])
    workspace.reconcile(["c1"])
    workspace.write("c1", [])
    kept = workspace.reconcile(["c1"])["clusters"]["c1"]
    assert kept["counts"] == counts(pruned=1, unchanged=1, prune_protected=1)
    assert [(o["kind"], o["action"], o["reason"]) for o in kept["objects"] if o["kind"] == "Namespace"] == [
        ("Namespace", "protected", "removed from Git; kept: Namespace is pruned only with allow_prune_kinds")
    ]
    live = workspace.get("c1", "/api/v1/namespaces/t-keepns")
    assert live["status"]["phase"] == "Active"
    assert "deletionTimestamp" not in live["metadata"]

    allowed = workspace.reconcile(["c1"], allow_prune_kinds=["Namespace"])["clusters"]["c1"]
    assert actions(allowed) == [("Namespace", "t-keepns", "prune")]
    assert "deletionTimestamp" in workspace.get("c1", "/api/v1/namespaces/t-keepns")["metadata"]


def test_prune_cap_refuses_the_cluster_before_any_write(workspace):
    ns = namespace("t-cap", "c1")
    workspace.write("c1", [ns] + [configmap(n, "t-cap", "c1") for n in ("a", "b", "c")])
    workspace.reconcile(["c1"])
    workspace.write("c1", [ns, configmap("new", "t-cap", "c1")], options={"max_prune": 2})
    refused = workspace.reconcile(["c1"])["clusters"]["c1"]
    assert refused["status"] == "failed"
    assert refused["error"] == (
        "cluster 'c1': this run would prune 3 objects (ConfigMap/t-cap/a, ConfigMap/t-cap/b, "
        "ConfigMap/t-cap/c), more than max_prune=2; nothing was written. If the removal is intended, "
        "rerun with a higher max_prune (-e max_prune=3)"
    )
    assert workspace.get("c1", cm_path("t-cap", "new")) is None
    assert all(workspace.get("c1", cm_path("t-cap", n)) is not None for n in ("a", "b", "c"))

    raised = workspace.reconcile(["c1"], max_prune=3)["clusters"]["c1"]
    assert raised["counts"] == counts(created=1, pruned=3, unchanged=2)


def test_one_unreachable_cluster_fails_alone_and_the_others_finish(workspace, gitops_clusters):
    for name in ("c1", "c2", "c3"):
        workspace.write(name, [namespace("t-down", name), configmap("cm", "t-down", name)])
    gitops_clusters["c2"].stop()
    try:
        result = workspace.reconcile()
    finally:
        gitops_clusters["c2"].start()
    assert result["failed_clusters"] == ["c2"]
    c2 = result["clusters"]["c2"]
    assert c2["status"] == "unreachable"
    assert c2["error"].startswith(f"context 'c2': API server {gitops_clusters['c2'].server} unreachable: ")
    for name in ("c1", "c3"):
        assert result["clusters"][name]["status"] == "ok"
        assert result["clusters"][name]["counts"] == counts(created=2, unchanged=1)
        assert workspace.get(name, cm_path("t-down", "cm")) is not None
    assert failure_message(result).startswith("reconcile failed on c2 (unreachable: context 'c2': API server")
    assert [line.split()[:2] for line in result["summary"][1:4]] == [
        ["c1", "ok"],
        ["c2", "unreachable"],
        ["c3", "ok"],
    ]


def test_check_mode_reports_every_change_and_changes_nothing(workspace):
    ns = namespace("t-check", "c1")
    workspace.write(
        "c1", [ns, configmap("keep", "t-check", "c1", {"key": "v1"}), configmap("gone", "t-check", "c1")]
    )
    workspace.reconcile(["c1"])
    before = {
        n: workspace.get("c1", cm_path("t-check", n))["metadata"]["resourceVersion"] for n in ("keep", "gone")
    }
    workspace.write(
        "c1", [ns, configmap("keep", "t-check", "c1", {"key": "v2"}), configmap("new", "t-check", "c1")]
    )
    result = workspace.reconcile(["c1"], check=True, diff=True)
    c1 = result["clusters"]["c1"]
    assert c1["check_mode"] is True
    assert c1["counts"] == counts(created=1, updated=1, pruned=1, unchanged=2)
    assert result["changed"] is True
    update = next(o for o in c1["objects"] if o["name"] == "keep")
    assert [line for line in update["diff"].splitlines() if line.startswith(("-  ", "+  "))] == [
        "-  key: v1",
        "+  key: v2",
    ]
    assert len(result["diff"]) == 3
    after = {
        n: workspace.get("c1", cm_path("t-check", n))["metadata"]["resourceVersion"] for n in ("keep", "gone")
    }
    assert after == before
    assert workspace.get("c1", cm_path("t-check", "keep"))["data"] == {"key": "v1"}
    assert workspace.get("c1", cm_path("t-check", "new")) is None


def test_drift_is_found_in_check_mode_and_repaired_by_a_normal_run(workspace, gitops_clusters):
    workspace.write(
        "c1",
        [namespace("t-drift", "c1"), configmap("cm", "t-drift", "c1"), deployment("web", "t-drift", "c1")],
    )
    workspace.reconcile(["c1"])
    kubectl = gitops_clusters["c1"].kubectl
    kubectl("-n", "t-drift", "scale", "deployment/web", "--replicas=5")
    kubectl("-n", "t-drift", "patch", "configmap", "cm", "--type=merge", "-p", '{"data":{"key":"by-hand"}}')

    found = workspace.reconcile(["c1"], check=True)["clusters"]["c1"]
    assert [(o["kind"], o["action"], o["reason"], o["fields"]) for o in found["objects"]] == [
        ("ConfigMap", "update", "drift", ["data.key"]),
        ("Deployment", "update", "drift", ["spec.replicas"]),
    ]
    assert workspace.get("c1", "/apis/apps/v1/namespaces/t-drift/deployments/web")["spec"]["replicas"] == 5

    repaired = workspace.reconcile(["c1"])["clusters"]["c1"]
    assert repaired["counts"] == counts(updated=2, unchanged=2)
    assert workspace.get("c1", "/apis/apps/v1/namespaces/t-drift/deployments/web")["spec"]["replicas"] == 2
    assert workspace.get("c1", cm_path("t-drift", "cm"))["data"] == {"key": "value"}
    assert workspace.reconcile(["c1"])["clusters"]["c1"]["counts"] == counts(unchanged=4)


CRD = {
    "apiVersion": "apiextensions.k8s.io/v1",
    "kind": "CustomResourceDefinition",
    "metadata": {"name": "widgets.example.cloud58.io", "labels": labels_for("c1")},
    "spec": {
        "group": "example.cloud58.io",
        "scope": "Namespaced",
        "names": {"plural": "widgets", "singular": "widget", "kind": "Widget", "listKind": "WidgetList"},
        "versions": [
            {
                "name": "v1",
                "served": True,
                "storage": True,
                "schema": {
                    "openAPIV3Schema": {
                        "type": "object",
                        "properties": {
                            "spec": {"type": "object", "properties": {"size": {"type": "integer"}}}
                        },
                    }
                },
            }
        ],
    },
}


def test_crd_is_established_before_objects_of_its_kind(workspace):
    widget = {
        "apiVersion": "example.cloud58.io/v1",
        "kind": "Widget",
        "metadata": {"name": "w1", "namespace": "t-crd", "labels": labels_for("c1")},
        "spec": {"size": 3},
    }
    workspace.write("c1", [widget, namespace("t-crd", "c1"), CRD])
    check = workspace.reconcile(["c1"], check=True)["clusters"]["c1"]
    assert [(o["kind"], o["action"], o.get("reason", "")) for o in check["objects"]] == [
        ("CustomResourceDefinition", "create", ""),
        ("Namespace", "create", ""),
        ("Widget", "create", "not validated: its CustomResourceDefinition is not established yet"),
    ]
    assert (
        workspace.get(
            "c1", "/apis/apiextensions.k8s.io/v1/customresourcedefinitions/widgets.example.cloud58.io"
        )
        is None
    )

    applied = workspace.reconcile(["c1"])["clusters"]["c1"]
    assert actions(applied) == [
        ("CustomResourceDefinition", "widgets.example.cloud58.io", "create"),
        ("Namespace", "t-crd", "create"),
        ("Widget", "w1", "create"),
    ]
    assert workspace.get("c1", "/apis/example.cloud58.io/v1/namespaces/t-crd/widgets/w1")["spec"] == {
        "size": 3
    }
    assert workspace.reconcile(["c1"])["clusters"]["c1"]["counts"] == counts(unchanged=4)


def test_unknown_field_fails_its_object_names_the_file_and_skips_prune(workspace):
    ns = namespace("t-strict", "c1")
    workspace.write("c1", [ns, configmap("old", "t-strict", "c1")])
    workspace.reconcile(["c1"])
    typo = configmap("typo", "t-strict", "c1")
    typo["dta"] = typo.pop("data")
    workspace.write("c1", [ns, typo, configmap("good", "t-strict", "c1")])
    result = workspace.reconcile(["c1"])
    c1 = result["clusters"]["c1"]
    assert result["failed_clusters"] == ["c1"]
    assert (c1["status"], c1["error"]) == ("failed", "1 object(s) failed")
    assert c1["counts"] == counts(created=1, failed=1, unchanged=2)
    failed = next(o for o in c1["objects"] if o["action"] == "failed")
    assert failed["error"].startswith(
        "c1/32_configmap_t-strict_typo.yaml: PATCH /api/v1/namespaces/t-strict/configmaps/typo"
    )
    assert failed["error"].endswith(".dta: field not declared in schema")
    assert c1["notes"] == ["prune skipped: some objects failed to apply"]
    assert workspace.get("c1", cm_path("t-strict", "old")) is not None
    assert workspace.get("c1", cm_path("t-strict", "typo")) is None


def test_bad_directory_fails_before_any_cluster_is_touched(workspace):
    workspace.write("c1", [namespace("t-bad", "c1")])
    bad_dir = workspace.write("c2", [namespace("t-bad", "c2")])
    (bad_dir / "99_stray.yaml").write_text(json.dumps(configmap("stray", "t-bad", "c1")))
    with pytest.raises(ClusterDirError) as info:
        workspace.reconcile()
    assert str(info.value) == (
        "c2/99_stray.yaml: field 'metadata.labels.cloud58.io/cluster' is 'c1'; "
        "an object in clusters/c2/ must be labelled for cluster 'c2'"
    )
    assert workspace.get("c1", "/api/v1/namespaces/t-bad") is None


def _playbook(workspace, *args):
    env = {**os.environ, "ANSIBLE_CONFIG": str(REPO / "ansible.cfg"), "ANSIBLE_NOCOLOR": "1"}
    argv = [
        str(REPO / ".venv/bin/ansible-playbook"),
        str(REPO / "playbooks/reconcile.yml"),
        "-e",
        f"clusters_dir={workspace.root}",
        "-e",
        f"kubeconfig={workspace.kubeconfig}",
        *args,
    ]
    return subprocess.run(argv, capture_output=True, text=True, env=env, cwd=REPO, timeout=300, check=False)


def test_playbook_fails_naming_the_failed_cluster_after_the_others_finish(workspace, tmp_path):
    workspace.write("c1", [namespace("t-play", "c1"), configmap("cm", "t-play", "c1")])
    workspace.write("c3", [namespace("t-play", "c3")], context="c2")
    report = tmp_path / "report.json"
    run = _playbook(workspace, "-e", "clusters=c1,c3", "-e", f"report_path={report}")
    assert run.returncode == 2, run.stdout + run.stderr
    assert (
        "reconcile failed on c3 (failed: cluster 'c3': context 'c2' points at another cluster" in run.stdout
    )
    assert "c3: FAILED: cluster 'c3': context 'c2' points at another cluster" in run.stdout  # the summary
    data = json.loads(report.read_text())
    assert data["failed_clusters"] == ["c3"]
    assert data["clusters"]["c1"]["counts"] == counts(created=2, unchanged=1)
    assert workspace.get("c1", cm_path("t-play", "cm")) is not None


def test_playbook_check_diff_shows_the_diff_and_changes_nothing(workspace):
    ns = namespace("t-playdiff", "c1")
    workspace.write("c1", [ns, configmap("cm", "t-playdiff", "c1", {"key": "v1"})])
    workspace.reconcile(["c1"])
    workspace.write("c1", [ns, configmap("cm", "t-playdiff", "c1", {"key": "v2"})])
    run = _playbook(workspace, "-e", "clusters=c1", "--check", "--diff")
    assert run.returncode == 0, run.stdout + run.stderr
    assert "-  key: v1\n+  key: v2\n" in run.stdout
    assert "c1: ConfigMap/t-playdiff/cm (dry-run)" in run.stdout
    assert workspace.get("c1", cm_path("t-playdiff", "cm"))["data"] == {"key": "v1"}
