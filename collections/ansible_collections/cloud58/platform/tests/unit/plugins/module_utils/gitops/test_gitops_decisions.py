"""Pure decisions: prune guard, identity proof, per-object action, rollout state."""

from __future__ import annotations

import pytest

from ansible_collections.cloud58.platform.plugins.module_utils.gitops.decide import (
    CREATE,
    UNCHANGED,
    UPDATE,
    decide,
    rollout_done,
    strip_server_fields,
    unified_diff,
)
from ansible_collections.cloud58.platform.plugins.module_utils.gitops.errors import (
    IdentityError,
    PruneGuardError,
)
from ansible_collections.cloud58.platform.plugins.module_utils.gitops.identity import check_identity
from ansible_collections.cloud58.platform.plugins.module_utils.gitops.prune import plan_prune
from ansible_collections.cloud58.platform.plugins.module_utils.kube.objects import (
    HASH_ANNOTATION,
    ObjKey,
    object_key,
    with_hash,
)

OURS = {"app.kubernetes.io/managed-by": "cloud58", "cloud58.io/cluster": "c1"}


# -- prune guard ------------------------------------------------------------------------
def live_obj(kind, name, namespace="", labels=None, group=""):
    api = f"{group}/v1" if group else "v1"
    meta = {"name": name, "labels": OURS if labels is None else labels, "uid": f"uid-{name}"}
    if namespace:
        meta["namespace"] = namespace
    return {"apiVersion": api, "kind": kind, "metadata": meta}


def as_live(*objs):
    return {object_key(o): o for o in objs}


def test_prune_deletes_only_what_left_git_and_keeps_protected_kinds():
    keep = live_obj("ConfigMap", "keep", "ns")
    gone = live_obj("ConfigMap", "gone", "ns")
    ns = live_obj("Namespace", "old-ns")
    crd = live_obj("CustomResourceDefinition", "w.example.com", group="apiextensions.k8s.io")
    foreign = live_obj("ConfigMap", "foreign", "ns", labels={**OURS, "cloud58.io/cluster": "c2"})
    plan = plan_prune("c1", {object_key(keep)}, as_live(keep, gone, ns, crd, foreign), max_prune=10)
    assert plan.delete == [ObjKey("", "ConfigMap", "ns", "gone")]
    assert plan.protected == [
        ObjKey("", "Namespace", "", "old-ns"),
        ObjKey("apiextensions.k8s.io", "CustomResourceDefinition", "", "w.example.com"),
    ]


def test_prune_never_touches_the_identity_object():
    identity = live_obj("ConfigMap", "cloud58-identity", "kube-system")
    other = live_obj("ConfigMap", "other", "kube-system")
    plan = plan_prune(
        "c1", set(), as_live(identity, other), max_prune=10, never=frozenset({object_key(identity)})
    )
    assert plan.delete == [ObjKey("", "ConfigMap", "kube-system", "other")]
    assert plan.protected == []


def test_prune_of_protected_kind_when_explicitly_allowed():
    ns = live_obj("Namespace", "old-ns")
    plan = plan_prune("c1", set(), as_live(ns), allow_kinds={"Namespace"}, max_prune=10)
    assert plan.delete == [ObjKey("", "Namespace", "", "old-ns")]
    assert plan.protected == []


@pytest.mark.parametrize(
    ("count", "cap", "refused"), [(3, 3, False), (4, 3, True), (1, 0, True), (0, 0, False)]
)
def test_prune_cap(count, cap, refused):
    live = as_live(*(live_obj("ConfigMap", f"cm{i}", "ns") for i in range(count)))
    if refused:
        with pytest.raises(
            PruneGuardError,
            match=rf"^cluster 'c1': this run would prune {count} objects .* "
            rf"more than max_prune={cap}; nothing was written",
        ):
            plan_prune("c1", set(), live, max_prune=cap)
    else:
        assert len(plan_prune("c1", set(), live, max_prune=cap).delete) == count


# -- identity ---------------------------------------------------------------------------
EXPECTED = {"cluster": "c1", "datacenter": "dc1", "uid": "u1"}
WHERE = "ConfigMap kube-system/cloud58-identity"


def test_identity_matches():
    assert check_identity("c1", "ctx", EXPECTED, {"data": dict(EXPECTED)}, where=WHERE) is None


def test_identity_absent_refuses_and_says_how_to_bootstrap():
    with pytest.raises(IdentityError) as info:
        check_identity("c1", "ctx", EXPECTED, None, where=WHERE)
    assert str(info.value) == (
        "cluster 'c1': context 'ctx' has no identity object ConfigMap kube-system/cloud58-identity; "
        "refusing to write. Expected cluster='c1', datacenter='dc1', uid='u1'. "
        "If this is the first reconcile of a new cluster, rerun with -e bootstrap_identity=true to create it"
    )


def test_identity_of_another_cluster_refuses_naming_both():
    found = {"data": {"cluster": "c2", "datacenter": "dc1", "uid": "u2"}}
    with pytest.raises(IdentityError) as info:
        check_identity("c1", "ctx", EXPECTED, found, where=WHERE)
    assert str(info.value) == (
        "cluster 'c1': context 'ctx' points at another cluster; refusing to write. ConfigMap "
        "kube-system/cloud58-identity holds cluster='c2', datacenter='dc1', uid='u2', expected cluster='c1', "
        "datacenter='dc1', uid='u1' (differs in: cluster, uid)"
    )


# -- per-object decision ------------------------------------------------------------------
DESIRED = with_hash(
    {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": "a", "namespace": "n", "labels": OURS},
        "data": {"k": "v"},
    }
)
KEY = object_key(DESIRED)


def live_of(desired, **data):
    out = {**desired, "metadata": {**desired["metadata"], "uid": "x", "resourceVersion": "7"}}
    out["data"] = {**desired["data"], **data}
    return out


def test_decide_create_unchanged_drift_and_git_change():
    assert decide(KEY, DESIRED, None).action == CREATE
    assert decide(KEY, DESIRED, live_of(DESIRED)).action == UNCHANGED
    drift = decide(KEY, DESIRED, live_of(DESIRED, k="hand-edit"))
    assert (drift.action, drift.reason, drift.fields) == (UPDATE, "drift", ["data.k"])
    newer = with_hash({**DESIRED, "data": {"k": "v2"}})
    changed = decide(KEY, newer, live_of(DESIRED))
    assert (changed.action, changed.reason, changed.fields) == (UPDATE, "changed in Git", ["data.k"])


def test_field_removed_from_git_is_noticed_through_the_hash():
    slim = {k: v for k, v in DESIRED.items() if k != "data"}
    slim["metadata"] = {k: v for k, v in DESIRED["metadata"].items() if k != "annotations"}
    decision = decide(KEY, with_hash(slim), live_of(DESIRED))
    assert (decision.action, decision.reason, decision.fields) == (UPDATE, "changed in Git", [])


def test_diff_shows_only_the_changed_line_without_server_fields():
    before = live_of(DESIRED)
    after = live_of(DESIRED, k="v2")
    diff = unified_diff(KEY, before, after)
    changed = [line for line in diff.splitlines() if line[:1] in "+-" and not line.startswith(("+++", "---"))]
    assert changed == ["-  k: v", "+  k: v2"]
    assert "resourceVersion" not in diff
    assert HASH_ANNOTATION not in diff
    assert strip_server_fields(before)["metadata"] == {"name": "a", "namespace": "n", "labels": OURS}


def test_diff_of_a_new_object_adds_every_line():
    diff = unified_diff(KEY, None, DESIRED)
    assert diff.startswith("--- live/ConfigMap/n/a\n+++ git/ConfigMap/n/a\n")
    assert all(line.startswith("+") for line in diff.splitlines()[3:])


# -- rollouts -----------------------------------------------------------------------------
def deployment(wanted, generation=2, **status):
    return {
        "kind": "Deployment",
        "metadata": {"generation": generation},
        "spec": {"replicas": wanted},
        "status": status,
    }


@pytest.mark.parametrize(
    ("obj", "done"),
    [
        (deployment(2, observedGeneration=2, replicas=2, updatedReplicas=2, availableReplicas=2), True),
        (deployment(2, observedGeneration=1, replicas=2, updatedReplicas=2, availableReplicas=2), False),
        (deployment(2, observedGeneration=2, replicas=3, updatedReplicas=2, availableReplicas=2), False),
        (deployment(2, observedGeneration=2, replicas=2, updatedReplicas=2, availableReplicas=1), False),
        (deployment(2, observedGeneration=2, replicas=2, updatedReplicas=1, availableReplicas=2), False),
        (
            {
                "kind": "StatefulSet",
                "metadata": {"generation": 1},
                "spec": {"replicas": 2},
                "status": {"observedGeneration": 1, "updatedReplicas": 2, "readyReplicas": 2},
            },
            True,
        ),
        (
            {
                "kind": "StatefulSet",
                "metadata": {"generation": 1},
                "spec": {"replicas": 2},
                "status": {"observedGeneration": 1, "updatedReplicas": 2, "readyReplicas": 1},
            },
            False,
        ),
        (
            {
                "kind": "DaemonSet",
                "metadata": {"generation": 1},
                "spec": {},
                "status": {
                    "observedGeneration": 1,
                    "desiredNumberScheduled": 3,
                    "updatedNumberScheduled": 3,
                    "numberAvailable": 3,
                },
            },
            True,
        ),
        (
            {
                "kind": "DaemonSet",
                "metadata": {"generation": 1},
                "spec": {},
                "status": {
                    "observedGeneration": 1,
                    "desiredNumberScheduled": 3,
                    "updatedNumberScheduled": 2,
                    "numberAvailable": 3,
                },
            },
            False,
        ),
    ],
    ids=[
        "deploy-done",
        "deploy-not-observed",
        "deploy-old-replicas",
        "deploy-unavailable",
        "deploy-not-updated",
        "sts-done",
        "sts-not-ready",
        "ds-done",
        "ds-not-updated",
    ],
)
def test_rollout_done(obj, done):
    assert rollout_done(obj) is done
