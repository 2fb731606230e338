"""The engine against a fake API server: kinds the server does not serve, node annotations, and
what the report says when writes fail part-way."""

from __future__ import annotations

import datetime
import threading

import pytest

from ansible_collections.cloud58.platform.plugins.module_utils.gitops import engine
from ansible_collections.cloud58.platform.plugins.module_utils.gitops.annotate import plan_node_annotations
from ansible_collections.cloud58.platform.plugins.module_utils.gitops.clusterdir import ClusterDir, Manifest
from ansible_collections.cloud58.platform.plugins.module_utils.gitops.engine import (
    ClusterResult,
    ObjectResult,
    RunOptions,
    reconcile_cluster,
)
from ansible_collections.cloud58.platform.plugins.module_utils.gitops.errors import (
    KubeApiError,
    KubeUnreachable,
)
from ansible_collections.cloud58.platform.plugins.module_utils.gitops.kube import Resource
from ansible_collections.cloud58.platform.plugins.module_utils.gitops.lease import format_time
from ansible_collections.cloud58.platform.plugins.module_utils.kube.objects import (
    ObjKey,
    labels_for,
    object_key,
)

ASN = "projectcalico.org/ASNumber"
IDENTITY = {"cluster": "c1", "datacenter": "dc1", "uid": "u1"}
SERVED = {
    "v1": [("ConfigMap", "configmaps", True), ("Namespace", "namespaces", False), ("Node", "nodes", False)],
}
UNREACHABLE = "context 'c1': API server https://fake unreachable"


class FakeApi:
    """Just enough of KubeClient: discovery from SERVED, objects in a dict, every call recorded.

    The store keeps a version counter, so LIST snapshots and ``existed_at`` behave as the
    API server's do. Faults: ``fail_after`` N applied writes every apply is unreachable
    (nothing sent); ``lost_answers`` names objects whose apply lands but whose answer is
    lost; ``apply_errors`` maps a name to the exception its apply raises; ``flaky`` maps a
    name to (exception, whether the write lands first) pairs, one per attempt, and the
    attempt after them succeeds; ``gone`` names
    objects someone else deletes just before this run's delete (404); ``delete_errors`` and
    ``list_error`` are raised by those calls; ``before_apply(api, name)`` runs before each
    apply (another writer)."""

    def __init__(
        self,
        nodes=(),
        patch_errors=None,
        *,
        objects=(),
        fail_after=None,
        lost_answers=(),
        apply_errors=None,
        flaky=None,
        gone=(),
        before_apply=None,
        delete_errors=None,
        list_error=None,
    ):
        self.calls: list[tuple] = []
        self.requests = 0
        self.patch_errors = dict(patch_errors or {})
        self.fail_after = fail_after
        self.lost_answers = set(lost_answers)
        self.apply_errors = dict(apply_errors or {})
        self.flaky = {name: list(attempts) for name, attempts in (flaky or {}).items()}
        self.gone = set(gone)
        self.before_apply = before_apply
        self.delete_errors = dict(delete_errors or {})
        self.list_error = list_error
        self.writes = 0  # writes the server applied (not dry runs)
        self.version = 1
        self.created_at: dict[tuple, int] = {}
        self._mutex = threading.Lock()
        identity = {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {"name": "cloud58-identity", "namespace": "kube-system", "labels": labels_for("c1")},
            "data": dict(IDENTITY),
        }
        self.store = {}
        self.put(identity)
        for name, values in nodes:
            meta = {"name": name, "uid": f"uid-{name}", "annotations": dict(values)}
            self.put({"apiVersion": "v1", "kind": "Node", "metadata": meta})
        for obj in objects:
            self.put(obj)

    def put(self, obj):
        """Store ``obj`` as the server would (a new version; its creation version kept)."""
        meta = obj["metadata"]
        key = (obj["kind"], meta.get("namespace", ""), meta["name"])
        self.version += 1
        self.created_at.setdefault(key, self.version)
        stored = {**obj, "metadata": {"uid": f"uid-{meta['name']}", **meta}}
        stored["metadata"]["resourceVersion"] = str(self.version)
        self.store[key] = stored
        return stored

    def named(self, kind):
        return sorted(name for (k, _ns, name) in self.store if k == kind)

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
        return self.snapshot(res, label_selector, metadata_only=metadata_only)[0]

    def snapshot(self, res, label_selector="", *, metadata_only=False):
        self.calls.append(("list", res.kind, label_selector, metadata_only))
        if self.list_error is not None:
            raise self.list_error
        wanted = dict(pair.split("=", 1) for pair in label_selector.split(",") if pair)
        with self._mutex:
            items = [
                obj
                for (kind, _ns, _n), obj in sorted(self.store.items())
                if kind == res.kind and wanted.items() <= ((obj["metadata"].get("labels") or {}).items())
            ]
            return items, str(self.version)

    def existed_at(self, res, namespace, name, resource_version):
        self.calls.append(("existed_at", res.kind, name, resource_version))
        created = self.created_at.get((res.kind, namespace, name))
        return created is not None and created <= int(resource_version)

    def apply(self, res, obj, *, dry_run, full=True):
        name = obj["metadata"]["name"]
        self.calls.append(("apply", res.kind, name, dry_run))
        if self.before_apply is not None:
            self.before_apply(self, name)
        if name in self.apply_errors:
            raise self.apply_errors[name]
        with self._mutex:
            if self.fail_after is not None and self.writes >= self.fail_after:
                raise KubeUnreachable(f"{UNREACHABLE}: [Errno 111] Connection refused", sent=False)
            key = (res.kind, obj["metadata"].get("namespace", ""), name)
            created = key not in self.store
            error, lands = self.flaky[name].pop(0) if self.flaky.get(name) else (None, True)
            if not dry_run and lands:
                self.put(obj)
                self.writes += 1
            if error is not None:
                raise error
        if name in self.lost_answers:
            raise KubeUnreachable(f"{UNREACHABLE}: Connection reset by peer", sent=True)
        return created, obj

    def merge_patch(self, res, namespace, name, patch, *, dry_run, field_manager):
        self.calls.append(("merge_patch", res.kind, name, patch, dry_run, field_manager))
        if name in self.patch_errors:
            raise self.patch_errors[name]
        node = self.store[(res.kind, namespace, name)]
        return {**node, "metadata": {**node["metadata"], **patch["metadata"]}}

    def create(self, res, obj, *, dry_run):
        self.calls.append(("create", res.kind, obj["metadata"]["name"], dry_run))
        if res.kind != "Lease":
            raise AssertionError("the engine creates nothing but its lock here")
        with self._mutex:
            key = (res.kind, obj["metadata"]["namespace"], obj["metadata"]["name"])
            if key in self.store:
                raise KubeApiError("POST: 409 already exists", status=409)
            return self.put(obj)

    def replace(self, res, obj):
        meta = obj["metadata"]
        self.calls.append(("replace", res.kind, meta["name"], obj["spec"].get("holderIdentity", "")))
        with self._mutex:
            key = (res.kind, meta.get("namespace", ""), meta["name"])
            if self.store[key]["metadata"]["resourceVersion"] != meta.get("resourceVersion"):
                raise KubeApiError("PUT: 409 the object has been modified", status=409)
            return self.put(obj)

    def delete(self, res, namespace, name, *, uid, dry_run):
        self.calls.append(("delete", res.kind, name))
        if name in self.delete_errors:
            raise self.delete_errors[name]
        if name in self.gone:
            return False
        if not dry_run:
            del self.store[(res.kind, namespace, name)]
        return True

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
    return reconcile_cluster(cluster, RunOptions(**{"workers": 1, **options}), lambda _context: api)


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


# -- the report under faults ---------------------------------------------------------------
NS = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "t", "labels": labels_for("c1")}}


def cm(name: str, labels=None) -> dict:
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {
            "name": name,
            "namespace": "t",
            "labels": labels_for("c1") if labels is None else labels,
        },
        "data": {"k": "v"},
    }


def configmaps(count: int) -> list[tuple[str, dict]]:
    return [(f"32_configmap_t_cm-{i:03d}", cm(f"cm-{i:03d}")) for i in range(count)]


def writes(result):
    """(created, the names the report lists as created)."""
    return result.counts["created"], sorted(o.key.name for o in result.objects if o.action == "create")


@pytest.mark.parametrize("workers", [1, 4], ids=["sequential", "threads"])
def test_a_server_gone_after_n_writes_leaves_a_report_of_exactly_those_writes(workers):
    api = FakeApi(fail_after=37)
    result = run(api, cluster_dir([("10_namespace_t", NS), *configmaps(100)]), workers=workers)
    created = [n for n in api.named("ConfigMap") if n.startswith("cm-")]
    assert len(created) == 36  # the namespace was the first write
    assert writes(result) == (37, sorted(["t", *created]))
    assert result.changed is True
    assert result.status == "unreachable"
    failed = [o for o in result.objects if o.action == "failed"]
    # the writes in flight when the server went away, and nothing after them
    assert 1 <= len(failed) <= workers
    assert all(o.error.endswith("unreachable: [Errno 111] Connection refused") for o in failed)
    assert all(not o.maybe_written for o in failed)
    attempted = len([c for c in api.calls if c[0] == "apply"])
    assert attempted == 37 + len(failed)
    assert result.error == (
        f"{UNREACHABLE}: [Errno 111] Connection refused; stopped writing after 37 write(s); "
        f"{100 - 36 - len(failed)} object(s) not attempted"
    )


def test_a_server_gone_in_the_first_batch_writes_nothing_more_and_prunes_nothing():
    leftover = cm("leftover")
    api = FakeApi(objects=[leftover], fail_after=0)
    result = run(api, cluster_dir([("10_namespace_t", NS), *configmaps(3)]))
    assert result.status == "unreachable"
    assert [(o.key.name, o.action) for o in result.objects] == [("t", "failed")]
    assert [c[2] for c in api.calls if c[0] == "apply"] == ["t"]
    assert [c for c in api.calls if c[0] == "delete"] == []
    assert "leftover" in api.named("ConfigMap")
    assert result.error.endswith("stopped writing after 0 write(s); 3 object(s) not attempted")
    assert result.changed is False


def test_a_write_whose_answer_was_lost_may_have_been_applied_and_makes_the_run_changed():
    api = FakeApi(lost_answers={"cm-000"})
    result = run(api, cluster_dir(configmaps(3)))
    assert "cm-000" in api.named("ConfigMap")  # it landed
    [lost] = [o for o in result.objects if o.action == "failed"]
    assert (lost.key.name, lost.maybe_written) == ("cm-000", True)
    assert lost.error == (
        f"c1/32_configmap_t_cm-000.yaml: {UNREACHABLE}: Connection reset by peer "
        "(the request was sent and its answer lost: it may have been applied)"
    )
    assert lost.as_dict(False)["maybe_written"] is True
    assert (result.counts["created"], result.counts["maybe_written"], result.counts["failed"]) == (0, 1, 1)
    assert result.changed is True
    assert result.status == "unreachable"
    assert result.error.endswith(
        "stopped writing after 0 write(s) and 1 whose answer was lost; 2 object(s) not attempted"
    )


def test_an_unexpected_error_in_one_write_fails_that_object_and_the_others_are_reported():
    api = FakeApi(apply_errors={"cm-001": RuntimeError("boom")})
    result = run(api, cluster_dir(configmaps(3)), workers=4)
    assert [(o.key.name, o.action) for o in result.objects if o.key.name.startswith("cm-")] == [
        ("cm-000", "create"),
        ("cm-001", "failed"),
        ("cm-002", "create"),
    ]
    failed = next(o for o in result.objects if o.action == "failed")
    assert failed.error == "c1/32_configmap_t_cm-001.yaml: unexpected RuntimeError: boom"
    assert (result.status, result.error, result.changed) == ("failed", "1 object(s) failed", True)
    assert result.notes == ["prune skipped: some objects failed to apply"]


def _etcd_lost(name, message="etcdserver: request timed out"):
    return KubeApiError(f"PATCH /api/v1/namespaces/t/configmaps/{name}: 500 {message}", status=500)


@pytest.mark.parametrize(
    "attempts",
    [
        pytest.param([(_etcd_lost("cm-001"), False)], id="lost-before-commit"),
        pytest.param([(_etcd_lost("cm-001"), True)], id="committed-answer-lost"),
        pytest.param(
            [
                (_etcd_lost("cm-001", "etcdserver: leader changed"), False),
                (
                    _etcd_lost(
                        "cm-001", "rpc error: code = Unavailable desc = error reading from server: EOF"
                    ),
                    True,
                ),
                (
                    _etcd_lost(
                        "cm-001", "etcdserver: request timed out, possibly due to previous leader failure"
                    ),
                    True,
                ),
                (_etcd_lost("cm-001", "etcdserver: too many requests"), True),
            ],
            id="four-times",
        ),
    ],
)
def test_a_write_etcd_lost_is_sent_again_and_reported_created(attempts, monkeypatch):
    pauses = []
    monkeypatch.setattr(engine, "_pause", pauses.append)
    api = FakeApi(flaky={"cm-001": attempts})
    result = run(api, cluster_dir(configmaps(3)))
    assert [c[2] for c in api.calls if c[0] == "apply"].count("cm-001") == len(attempts) + 1
    assert pauses == [0.5 * n for n in range(1, len(attempts) + 1)]
    assert writes(result) == (3, ["cm-000", "cm-001", "cm-002"])
    created = next(o for o in result.objects if o.key.name == "cm-001")
    assert (created.action, created.reason, created.error) == ("create", "", "")
    assert (result.status, result.error, result.changed) == ("ok", "", True)
    assert "cm-001" in api.named("ConfigMap")


@pytest.mark.parametrize(
    ("error", "attempts"),
    [
        pytest.param(_etcd_lost("cm-001"), 5, id="etcd-lost-five-times"),
        pytest.param(
            KubeApiError(
                "PATCH /api/v1/namespaces/t/configmaps/cm-001: 500 Internal error occurred: "
                "failed calling webhook",
                status=500,
            ),
            1,
            id="other-500-not-sent-again",
        ),
        pytest.param(
            KubeApiError(
                "PATCH /api/v1/namespaces/t/configmaps/cm-001: 422 etcdserver: request timed out", status=422
            ),
            1,
            id="not-a-500",
        ),
    ],
)
def test_a_write_is_sent_again_only_for_etcd_losses_and_at_most_four_times(error, attempts, monkeypatch):
    monkeypatch.setattr(engine, "_pause", lambda seconds: None)
    api = FakeApi(flaky={"cm-001": [(error, False)] * 6})
    result = run(api, cluster_dir(configmaps(3)))
    assert [c[2] for c in api.calls if c[0] == "apply"].count("cm-001") == attempts
    failed = next(o for o in result.objects if o.key.name == "cm-001")
    assert (failed.action, failed.error) == ("failed", f"c1/32_configmap_t_cm-001.yaml: {error}")
    assert (result.status, result.error) == ("failed", "1 object(s) failed")


def test_a_rollout_that_fails_after_its_write_still_counts_the_write():
    result = ClusterResult("c1", "c1", check_mode=False)
    result.objects = [ObjectResult(ObjKey("apps", "Deployment", "t", "web"), "failed", applied="create")]
    assert (result.counts["created"], result.counts["failed"], result.changed) == (1, 1, True)
    assert result.as_dict()["objects"][0]["applied"] == "create"


def test_an_object_already_deleted_by_someone_else_is_reported_gone_not_pruned():
    api = FakeApi(objects=[cm("old"), cm("older")], gone={"older"})
    result = run(api, cluster_dir(configmaps(1)))
    assert [(o.key.name, o.action, o.reason) for o in result.objects if o.action in ("prune", "gone")] == [
        ("old", "prune", "removed from Git"),
        ("older", "gone", "removed from Git; already deleted by someone else"),
    ]
    assert (result.counts["pruned"], result.counts["already_gone"]) == (1, 1)
    assert result.status == "ok"


@pytest.mark.parametrize(
    ("setup", "reason"),
    [
        pytest.param(
            {"objects": [cm("cm-000", labels={"app": "by-hand"})]},
            "adopted: existed without this cluster's labels",
            id="there-unlabelled-before-the-list",
        ),
        pytest.param(
            {"before_apply": lambda api, name: api.put(cm(name))},
            "created by another writer after this run listed the cluster; applied over it",
            id="created-by-another-writer-after-the-list",
        ),
    ],
)
def test_adopted_only_when_the_object_existed_without_our_labels_at_the_list(setup, reason):
    api = FakeApi(**setup)
    result = run(api, cluster_dir(configmaps(1)))
    [outcome] = [o for o in result.objects if o.key.name == "cm-000"]
    assert (outcome.action, outcome.reason) == ("update", reason)
    [(_call, _kind, _name, version)] = [c for c in api.calls if c[0] == "existed_at"]
    assert version.isdigit()  # the resourceVersion of this run's LIST of ConfigMaps


# -- the lock -----------------------------------------------------------------------------
def lock_calls(api):
    return [(c[0], c[3]) if c[0] == "replace" else c[0] for c in api.calls if c[1] == "Lease"]


def test_a_run_that_writes_holds_the_lock_from_before_its_list_to_its_end():
    api = FakeApi()
    result = run(api, cluster_dir(configmaps(1)))
    assert result.status == "ok"
    kinds = [c[0] if c[1] != "Lease" else f"lease-{c[0]}" for c in api.calls]
    # identity first, then the lock, then the LISTs and writes, then the release
    assert kinds.index("lease-create") < kinds.index("list") < kinds.index("apply")
    assert kinds[-1] == "lease-replace"
    lease = api.store[("Lease", "kube-system", "cloud58-reconcile")]
    assert "holderIdentity" not in lease["spec"]  # released
    assert lease["spec"]["leaseDurationSeconds"] == 30


def test_check_mode_takes_no_lock():
    api = FakeApi()
    result = run(api, cluster_dir(configmaps(1)), check_mode=True)
    assert result.status == "ok"
    assert lock_calls(api) == []


def test_a_lock_held_by_another_run_refuses_naming_it_and_writes_nothing():
    api = FakeApi()
    api.put(
        {
            "apiVersion": "coordination.k8s.io/v1",
            "kind": "Lease",
            "metadata": {"name": "cloud58-reconcile", "namespace": "kube-system"},
            "spec": {
                "holderIdentity": "ci-runner-7 pid 4242 run 0badcafe",
                "leaseDurationSeconds": 3600,
                "renewTime": format_time(datetime.datetime.now(datetime.UTC)),
            },
        }
    )
    result = run(api, cluster_dir(configmaps(2)), lock_timeout=0.2)
    assert result.status == "failed"
    assert result.error.startswith(
        "cluster 'c1': another reconcile holds the lock (Lease kube-system/cloud58-reconcile): "
        "holder 'ci-runner-7 pid 4242 run 0badcafe', renewed 0s ago; waited 0s (lock_timeout); "
        "refusing to write, nothing was written."
    )
    assert [c for c in api.calls if c[0] in ("apply", "delete", "list", "replace")] == []
    assert result.objects == []


def test_a_server_gone_during_prune_stops_the_prunes_and_says_how_many_were_left():
    down = KubeUnreachable(f"{UNREACHABLE}: [Errno 111] Connection refused", sent=False)
    api = FakeApi(objects=[cm("old-a"), cm("old-b"), cm("old-c")], delete_errors={"old-a": down})
    result = run(api, cluster_dir(configmaps(1)))
    assert result.status == "unreachable"
    assert [(o.key.name, o.action) for o in result.objects] == [("cm-000", "create"), ("old-a", "failed")]
    assert [c[2] for c in api.calls if c[0] == "delete"] == ["old-a"]
    assert result.error == (
        f"{UNREACHABLE}: [Errno 111] Connection refused; stopped writing after 1 write(s); "
        "2 prune(s) not attempted"
    )
    assert result.changed is True


def test_a_server_gone_after_the_lock_was_taken_leaves_it_to_expire():
    api = FakeApi(list_error=KubeUnreachable(f"{UNREACHABLE}: timed out", sent=True))
    result = run(api, cluster_dir(configmaps(1)))
    assert (result.status, result.error) == ("unreachable", f"{UNREACHABLE}: timed out")
    assert result.notes == [
        "lock: Lease kube-system/cloud58-reconcile not released (the API server is unreachable); "
        "it expires by itself"
    ]
    assert api.store[("Lease", "kube-system", "cloud58-reconcile")]["spec"]["holderIdentity"]
    assert [c[0] for c in api.calls if c[1] == "Lease"] == ["get", "create"]
