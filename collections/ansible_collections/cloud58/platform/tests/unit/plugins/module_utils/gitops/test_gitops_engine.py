"""The engine against a fake API server: kinds the server does not serve, node annotations."""

from __future__ import annotations

import pytest

from ansible_collections.cloud58.platform.plugins.module_utils.gitops.annotate import plan_node_annotations
from ansible_collections.cloud58.platform.plugins.module_utils.gitops.clusterdir import ClusterDir, Manifest
from ansible_collections.cloud58.platform.plugins.module_utils.gitops.engine import (
    RunOptions,
    reconcile_cluster,
)
from ansible_collections.cloud58.platform.plugins.module_utils.gitops.errors import KubeApiError
from ansible_collections.cloud58.platform.plugins.module_utils.gitops.kube import Resource
from ansible_collections.cloud58.platform.plugins.module_utils.gitops.model import labels_for, object_key

ASN = "projectcalico.org/ASNumber"
IDENTITY = {"cluster": "c1", "datacenter": "dc1", "uid": "u1"}
SERVED = {
    "v1": [("ConfigMap", "configmaps", True), ("Node", "nodes", False)],
}


class FakeApi:
    """Just enough of KubeClient: discovery from SERVED, objects in a dict, every call recorded."""

    def __init__(self, nodes=(), patch_errors=None):
        self.calls: list[tuple] = []
        self.requests = 0
        self.patch_errors = dict(patch_errors or {})
        identity = {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {"name": "cloud58-identity", "namespace": "kube-system", "labels": labels_for("c1")},
            "data": dict(IDENTITY),
        }
        self.store = {("ConfigMap", "kube-system", "cloud58-identity"): identity}
        for name, values in nodes:
            meta = {"name": name, "uid": f"uid-{name}", "annotations": dict(values)}
            self.store[("Node", "", name)] = {"apiVersion": "v1", "kind": "Node", "metadata": meta}

    def resource(self, api_version, kind, refresh=False):
        for name, plural, namespaced in SERVED.get(api_version, []):
            if name == kind:
                group, _sep, version = api_version.rpartition("/")
                return Resource(group, version, kind, plural, namespaced)
        return None

    def get(self, res, namespace, name):
        self.calls.append(("get", res.kind, name))
        return self.store.get((res.kind, namespace, name))

    def list(self, res, label_selector="", *, metadata_only=False):
        self.calls.append(("list", res.kind, label_selector, metadata_only))
        return [obj for (kind, _ns, _n), obj in sorted(self.store.items()) if kind == res.kind]

    def apply(self, res, obj, *, dry_run, full=True):
        self.calls.append(("apply", res.kind, obj["metadata"]["name"], dry_run))
        return True, obj

    def merge_patch(self, res, namespace, name, patch, *, dry_run, field_manager):
        self.calls.append(("merge_patch", res.kind, name, patch, dry_run, field_manager))
        if name in self.patch_errors:
            raise self.patch_errors[name]
        node = self.store[(res.kind, namespace, name)]
        return {**node, "metadata": {**node["metadata"], **patch["metadata"]}}

    def create(self, res, obj, *, dry_run):
        raise AssertionError("the engine must not create anything here")

    def delete(self, res, namespace, name, *, uid, dry_run):
        self.calls.append(("delete", res.kind, name))

    def close(self):
        pass


def cluster_dir(manifests=(), node_annotations=None) -> ClusterDir:
    cluster = ClusterDir(
        name="c1",
        path="/nonexistent/c1",
        context="c1",
        datacenter="dc1",
        identity=dict(IDENTITY),
        identity_namespace="kube-system",
        identity_name="cloud58-identity",
        options={"prune": True, "max_prune": 20, "allow_prune_kinds": [], "wait_rollouts": False},
        prune_kinds=[],
        node_annotations=dict(node_annotations or {}),
    )
    cluster.manifests = [
        Manifest(source=f"c1/{i}.yaml", obj=obj, key=object_key(obj)) for i, obj in manifests
    ]
    return cluster


def run(api, cluster, **options):
    return reconcile_cluster(cluster, RunOptions(workers=1, **options), lambda _context: api)


IPPOOL = {
    "apiVersion": "crd.projectcalico.org/v1",
    "kind": "IPPool",
    "metadata": {"name": "c1-r1", "labels": labels_for("c1")},
    "spec": {"cidr": "10.0.0.0/24"},
}


def test_a_kind_the_cluster_does_not_serve_fails_the_cluster_naming_file_kind_and_version():
    api = FakeApi()
    result = run(api, cluster_dir([("28_ippool_c1-r1", IPPOOL)]))
    assert (result.status, result.error) == (
        "failed",
        "c1/28_ippool_c1-r1.yaml: cluster 'c1' serves no IPPool in crd.projectcalico.org/v1 "
        "(and no CRD in this directory defines it)",
    )
    assert [c for c in api.calls if c[0] in ("apply", "merge_patch", "delete")] == []


WANTED = {"n1": {ASN: "65111"}, "n2": {ASN: "65112"}, "n3": {ASN: "65111"}}
LIVE = [("n1", {ASN: "64512", "kubeadm": "x"}), ("n2", {ASN: "65112"}), ("n9", {})]


def test_plan_splits_nodes_into_changes_unchanged_and_pending():
    live = FakeApi(LIVE).list(Resource("", "v1", "Node", "nodes", False))
    plan = plan_node_annotations(WANTED, live)
    assert [(c.name, c.uid, c.before, c.after, c.patch) for c in plan.changes] == [
        (
            "n1",
            "uid-n1",
            {ASN: "64512"},
            {ASN: "65111"},
            {"metadata": {"uid": "uid-n1", "annotations": {ASN: "65111"}}},
        )
    ]
    assert (plan.unchanged, plan.pending) == (["n2"], ["n3"])


@pytest.mark.parametrize("check", [False, True], ids=["apply", "check-mode"])
def test_node_annotations_patch_only_nodes_that_exist_and_differ(check):
    api = FakeApi(LIVE)
    result = run(api, cluster_dir(node_annotations=WANTED), check_mode=check, diff=True)
    assert result.status == "ok"
    node_calls = [c for c in api.calls if c[1] == "Node"]
    assert node_calls == [
        ("list", "Node", "", True),
        (
            "merge_patch",
            "Node",
            "n1",
            {"metadata": {"uid": "uid-n1", "annotations": {ASN: "65111"}}},
            check,  # dry run in check mode
            "cloud58-node-annotations",
        ),
    ]
    counts = result.counts
    assert (counts["nodes_annotated"], counts["nodes_unchanged"], counts["nodes_pending"]) == (1, 1, 1)
    assert result.pending_nodes == ["n3"]
    assert result.changed is True
    [node] = result.objects
    assert (node.action, node.fields, node.source) == (
        "annotate",
        [f"metadata.annotations.{ASN}"],
        "c1/cluster.yml node_annotations",
    )
    assert f"-    {ASN}: '64512'\n+    {ASN}: '65111'\n" in node.diff


def test_nodes_already_annotated_change_nothing_and_cost_one_list():
    api = FakeApi([("n1", {ASN: "65111"}), ("n2", {ASN: "65112"}), ("n3", {ASN: "65111"})])
    result = run(api, cluster_dir(node_annotations=WANTED))
    assert [c for c in api.calls if c[1] == "Node"] == [("list", "Node", "", True)]
    assert (result.changed, result.counts["nodes_unchanged"], result.objects) == (False, 3, [])


def test_without_node_annotations_nodes_are_not_listed():
    api = FakeApi(LIVE)
    result = run(api, cluster_dir())
    assert [c for c in api.calls if c[1] == "Node"] == []
    assert (result.counts["nodes_annotated"], result.counts["nodes_pending"]) == (0, 0)


def test_a_node_gone_since_the_list_is_pending_another_error_fails_the_cluster():
    gone = KubeApiError('PATCH /api/v1/nodes/n1: 404 nodes "n1" not found', status=404)
    result = run(FakeApi(LIVE, {"n1": gone}), cluster_dir(node_annotations=WANTED))
    assert (result.status, result.pending_nodes, result.objects) == ("ok", ["n1", "n3"], [])

    forbidden = KubeApiError("PATCH /api/v1/nodes/n1: 403 forbidden", status=403)
    result = run(FakeApi(LIVE, {"n1": forbidden}), cluster_dir(node_annotations=WANTED))
    assert (result.status, result.error) == ("failed", "1 object(s) failed")
    assert [(o.action, o.error) for o in result.objects] == [
        ("failed", "c1/cluster.yml node_annotations: PATCH /api/v1/nodes/n1: 403 forbidden")
    ]
