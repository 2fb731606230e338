"""Reconcile under faults, against real clusters (etcd + kube-apiserver).

The report says what was written whatever fails; two reconciles of one cluster never
interleave (the Lease ``kube-system/cloud58-reconcile``); a dead, cut-off or refused cluster
fails alone and clearly; a cluster that loses one of its three etcd members mid-run keeps
its quorum: the run goes on, and only writes etcd lost in flight fail, each by name.
"""

from __future__ import annotations

import datetime
import os
import signal
import socket
import threading
import time

import pytest
import yaml

from ansible_collections.cloud58.platform.plugins.module_utils.gitops import kube
from ansible_collections.cloud58.platform.plugins.module_utils.gitops.kube import KubeClient
from ansible_collections.cloud58.platform.plugins.module_utils.gitops.lease import format_time
from ansible_collections.cloud58.platform.plugins.module_utils.gitops.runner import run_reconcile
from ansible_collections.cloud58.platform.plugins.module_utils.kube.objects import selector_for
from ansible_collections.cloud58.platform.plugins.module_utils.pki import x509

from .helpers import Workspace, configmap, namespace

pytestmark = pytest.mark.slow

LEASE = "/apis/coordination.k8s.io/v1/namespaces/kube-system/leases/cloud58-reconcile"
ME = f"{socket.gethostname()} pid {os.getpid()} run "


def listed_configmaps(cluster, ns: str) -> set[str]:
    """Names of the ConfigMaps labelled for the cluster in ``ns``, through its admin client."""
    items = cluster.api(
        "GET", f"/api/v1/namespaces/{ns}/configmaps?labelSelector={selector_for(cluster.name)}"
    )
    return {item["metadata"]["name"] for item in items["items"]}


def lease(cluster) -> dict | None:
    try:
        return cluster.api("GET", LEASE)
    except Exception as e:
        if "HTTP 404" in str(e):
            return None
        raise


def holder(cluster) -> str:
    return ((lease(cluster) or {}).get("spec") or {}).get("holderIdentity") or ""


def drop_lease(cluster) -> None:
    """Remove the lock a run left behind when its cluster died under it (it would expire by
    itself; the next tests should not wait for that)."""
    if lease(cluster) is not None:
        cluster.api("DELETE", LEASE)


def wait_until(predicate, timeout: float = 60.0, what: str = "condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"{what}: not true after {timeout}s")


def in_thread(func, *args, **kwargs):
    """Start ``func`` in a thread; the returned callable joins it and returns its result."""
    box = {}

    def target():
        try:
            box["result"] = func(*args, **kwargs)
        except BaseException as e:  # surfaced by join()
            box["error"] = e

    thread = threading.Thread(target=target, daemon=True)
    thread.start()

    def join(timeout: float = 600):
        thread.join(timeout)
        assert not thread.is_alive(), "the reconcile did not end"
        if "error" in box:
            raise box["error"]
        return box["result"]

    return join


def many(cluster: str, ns: str, count: int) -> list[dict]:
    return [namespace(ns, cluster)] + [configmap(f"cm-{i:04d}", ns, cluster) for i in range(count)]


# -- a truthful report --------------------------------------------------------------------
def test_apiserver_killed_mid_first_apply_reports_exactly_what_was_written(workspace, gitops_clusters):
    c1 = gitops_clusters["c1"]
    workspace.write("c1", many("c1", "t-kill", 1500))
    finished = in_thread(workspace.reconcile, ["c1"], request_timeout=10)
    # kill -9 the API server once a few hundred ConfigMaps are in
    wait_until(lambda: len(listed_configmaps(c1, "t-kill")) >= 300, what="300 ConfigMaps written")
    c1.processes["kube-apiserver"].signal(signal.SIGKILL)
    c1.processes["kube-apiserver"].wait(15)
    result = finished()
    c1.start()
    live = listed_configmaps(c1, "t-kill")
    report = result["clusters"]["c1"]

    assert result["failed_clusters"] == ["c1"]
    assert report["status"] == "unreachable"
    assert result["changed"] is True
    created = {o["name"] for o in report["objects"] if o["kind"] == "ConfigMap" and o["action"] == "create"}
    maybe = {o["name"] for o in report["objects"] if o.get("maybe_written")}
    failed = [o for o in report["objects"] if o["action"] == "failed"]
    # what the report says was created is in the cluster; what is in the cluster was reported
    # as created, or as a write whose answer was lost in the kill
    assert created <= live
    assert live - created <= maybe
    assert 300 <= len(created) < 1500
    assert report["counts"]["created"] == len(created) + 1  # and the namespace
    assert report["counts"]["maybe_written"] == len(maybe)
    assert report["counts"]["failed"] == len(failed) <= 8  # the writes in flight (workers)
    not_attempted = 1500 - len(created) - len(failed)
    assert report["error"].startswith("context 'c1': API server ")
    assert report["error"].endswith(f"; {not_attempted} object(s) not attempted")
    assert f"stopped writing after {len(created) + 1} write(s)" in report["error"]
    # its lock was not released (nothing more was sent): it stays until it expires
    assert holder(c1).startswith(ME)
    assert report["notes"] == [
        "lock: Lease kube-system/cloud58-reconcile not released (the API server is unreachable); "
        "it expires by itself"
    ]
    drop_lease(c1)

    again = workspace.reconcile(["c1"])["clusters"]["c1"]
    assert again["status"] == "ok"
    assert again["counts"]["created"] == 1500 - len(live)
    assert again["counts"]["unchanged"] == len(live) + 2  # the namespace and the identity
    assert len(listed_configmaps(c1, "t-kill")) == 1500


def test_an_object_made_by_hand_is_adopted_one_made_after_the_list_is_not(workspace, gitops_clusters):
    c1 = gitops_clusters["c1"]
    workspace.write("c1", [namespace("t-adopt", "c1")])
    workspace.reconcile(["c1"])
    c1.kubectl("-n", "t-adopt", "create", "configmap", "handmade", "--from-literal=key=value")
    workspace.write(
        "c1",
        [
            namespace("t-adopt", "c1"),
            configmap("handmade", "t-adopt", "c1"),
            configmap("racer", "t-adopt", "c1"),
        ],
    )

    class OtherWriterFirst(KubeClient):
        """Before this run applies ``racer``, another writer creates it with our labels."""

        def apply(self, res, obj, *, dry_run, full=True):
            if obj["metadata"]["name"] == "racer":
                c1.api("POST", "/api/v1/namespaces/t-adopt/configmaps", configmap("racer", "t-adopt", "c1"))
            return super().apply(res, obj, dry_run=dry_run, full=full)

    result = run_reconcile(
        {"clusters_dir": str(workspace.root), "clusters": ["c1"], "kubeconfig": workspace.kubeconfig},
        client_factory=lambda context: OtherWriterFirst(context, workspace.kubeconfig),
    )
    objects = {o["name"]: (o["action"], o["reason"]) for o in result["clusters"]["c1"]["objects"]}
    assert objects == {
        "handmade": ("update", "adopted: existed without this cluster's labels"),
        "racer": ("update", "created by another writer after this run listed the cluster; applied over it"),
    }


# -- one reconcile per cluster at a time -----------------------------------------------------
def _client(workspace, *, gate=None, lease_read=None):
    """A client factory for run_reconcile: applies wait for ``gate``; a read of the Lease sets
    ``lease_read``. The tests order the two runs with these, not with timing: a fast machine
    finishes a first run before a second one has started."""

    class Client(KubeClient):
        def apply(self, res, obj, *, dry_run, full=True):
            if gate is not None:
                assert gate.wait(300), "the test never opened the gate"
            return super().apply(res, obj, dry_run=dry_run, full=full)

        def get(self, res, *args, **kwargs):
            if lease_read is not None and res.kind == "Lease":
                lease_read.set()
            return super().get(res, *args, **kwargs)

    return lambda context: Client(context, workspace.kubeconfig)


def _reconcile_c1(workspace, **params):
    params = {
        "clusters_dir": str(workspace.root),
        "clusters": ["c1"],
        "kubeconfig": workspace.kubeconfig,
        **params,
    }
    client_factory = params.pop("client_factory")
    return run_reconcile(params, client_factory=client_factory)


def test_two_reconciles_of_one_cluster_never_interleave_the_second_waits(workspace, gitops_clusters):
    c1 = gitops_clusters["c1"]
    workspace.write("c1", many("c1", "t-twice", 500))
    gate, lease_read = threading.Event(), threading.Event()
    first = in_thread(_reconcile_c1, workspace, client_factory=_client(workspace, gate=gate))
    wait_until(lambda: holder(c1).startswith(ME), what="the first run holds the lock")
    first_holder = holder(c1)
    second = in_thread(
        _reconcile_c1, workspace, lock_timeout=300, client_factory=_client(workspace, lease_read=lease_read)
    )
    wait_until(lease_read.is_set, what="the second run found the lock held")
    gate.set()
    one, two = first()["clusters"]["c1"], second()["clusters"]["c1"]

    assert (one["status"], one["counts"]["created"], one["counts"]["unchanged"]) == ("ok", 501, 1)
    # The second run listed the cluster only once the first had written everything: it finds
    # every object in place, adopts nothing and writes nothing.
    assert (two["status"], two["counts"]["created"], two["counts"]["updated"]) == ("ok", 0, 0)
    assert two["counts"]["unchanged"] == 502
    assert two["objects"] == []
    [note] = two["notes"]
    assert note.startswith("lock: waited ")
    assert note.endswith(f"s for another reconcile ({first_holder!r}) to finish")
    assert holder(c1) == ""  # released
    assert lease(c1)["spec"]["leaseDurationSeconds"] == 30


def test_a_second_reconcile_refuses_after_lock_timeout_naming_the_holder(workspace, gitops_clusters):
    c1 = gitops_clusters["c1"]
    workspace.write("c1", many("c1", "t-refuse", 500))
    gate = threading.Event()
    first = in_thread(_reconcile_c1, workspace, client_factory=_client(workspace, gate=gate))
    wait_until(lambda: holder(c1).startswith(ME), what="the first run holds the lock")
    first_holder = holder(c1)
    try:
        second = workspace.reconcile(["c1"], lock_timeout=1)
    finally:
        gate.set()
    refused = second["clusters"]["c1"]
    done = first()["clusters"]["c1"]

    assert second["failed_clusters"] == ["c1"]
    assert refused["status"] == "failed"
    assert refused["error"].startswith(
        "cluster 'c1': another reconcile holds the lock (Lease kube-system/cloud58-reconcile): "
        f"holder {first_holder!r}, renewed "
    )
    assert refused["error"].endswith(
        "s (lock_timeout); refusing to write, nothing was written. Run again when it has finished"
    )
    assert (refused["objects"], second["changed"]) == ([], False)
    assert (done["status"], done["counts"]["created"]) == ("ok", 501)


def test_a_stale_lock_is_taken_over(workspace, gitops_clusters):
    c1 = gitops_clusters["c1"]
    drop_lease(c1)
    ten_minutes_ago = format_time(datetime.datetime.now(datetime.UTC) - datetime.timedelta(minutes=10))
    c1.api(
        "POST",
        "/apis/coordination.k8s.io/v1/namespaces/kube-system/leases",
        {
            "apiVersion": "coordination.k8s.io/v1",
            "kind": "Lease",
            "metadata": {"name": "cloud58-reconcile", "namespace": "kube-system"},
            "spec": {
                "holderIdentity": "crashed-host pid 1 run deadbeef",
                "leaseDurationSeconds": 15,
                "acquireTime": ten_minutes_ago,
                "renewTime": ten_minutes_ago,
                "leaseTransitions": 3,
            },
        },
    )
    workspace.write("c1", [namespace("t-stale", "c1")])
    result = workspace.reconcile(["c1"], lock_timeout=5)["clusters"]["c1"]
    assert (result["status"], result["counts"]["created"]) == ("ok", 1)
    assert result["notes"] == [
        "lock: took over Lease kube-system/cloud58-reconcile from 'crashed-host pid 1 run deadbeef', "
        "which had stopped renewing it"
    ]
    spec = lease(c1)["spec"]
    assert "holderIdentity" not in spec
    assert (spec["leaseTransitions"], spec["leaseDurationSeconds"]) == (4, 30)


def test_check_mode_takes_no_lock(workspace, gitops_clusters):
    c1 = gitops_clusters["c1"]
    drop_lease(c1)
    workspace.write("c1", [namespace("t-checklock", "c1")])
    result = workspace.reconcile(["c1"], check=True)
    assert result["clusters"]["c1"]["counts"]["created"] == 1
    assert lease(c1) is None


# -- refused credentials, a kubeconfig that is not there ------------------------------------
def expired_kubeconfig(cluster, directory) -> str:
    """A kubeconfig for ``cluster`` whose admin certificate, signed by the cluster's CA,
    expired a year ago."""
    ca_cert = x509.load_cert(cluster.ca_file.read_bytes(), "ca.crt")
    ca_key = x509.load_key((cluster.pki / "ca.key").read_bytes(), "ca.key")
    key = x509.generate_key("ecdsa-p256")
    spec = {
        "common_name": "cloud58-admin",
        "organizations": ["system:masters"],
        "usages": ["client"],
        "dns_names": [],
        "ip_addresses": [],
    }
    two_years_ago = x509.utcnow() - datetime.timedelta(days=730)
    cert = x509.make_leaf(spec, key, ca_cert=ca_cert, ca_key=ca_key, days=365, now=two_years_ago)
    config = yaml.safe_load(cluster.kubeconfig.read_text())
    import base64

    config["users"][0]["user"] = {
        "client-certificate-data": base64.b64encode(x509.cert_pem(cert)).decode(),
        "client-key-data": base64.b64encode(x509.key_pem(key)).decode(),
    }
    path = directory / "expired.kubeconfig"
    path.write_text(yaml.safe_dump(config))
    return str(path), cert


def test_an_expired_client_certificate_fails_clearly_and_writes_nothing(
    workspace, gitops_clusters, tmp_path, monkeypatch
):
    c1 = gitops_clusters["c1"]
    path, cert = expired_kubeconfig(c1, tmp_path)
    workspace.write("c1", [namespace("t-expired", "c1")])
    result = workspace.reconcile(["c1"], kubeconfig=path)
    report = result["clusters"]["c1"]
    expired_at = cert.not_valid_after_utc.strftime("%Y-%m-%dT%H:%M:%SZ")
    assert result["failed_clusters"] == ["c1"]
    assert (report["status"], report["requests"], report["objects"]) == ("failed", 0, [])
    assert report["error"] == (
        f"context 'c1' of kubeconfig {path}: the client certificate (CN=cloud58-admin,O=system:masters) "
        f"expired at {expired_at}; the API server would refuse it, so nothing was sent. Renew the "
        "certificate (or the kubeconfig) and run again"
    )
    assert workspace.get("c1", "/api/v1/namespaces/t-expired") is None

    # The server does refuse it: without the check, the first request is a 401, named as such.
    monkeypatch.setattr(kube, "client_certificate_problem", lambda _pem: "")
    report = workspace.reconcile(["c1"], kubeconfig=path)["clusters"]["c1"]
    assert report["status"] == "failed"
    assert report["error"] == (
        f"context 'c1': the API server {c1.server} refused this context's credentials "
        "(GET /api/v1: 401 Unauthorized): check its client certificate or token"
    )
    assert workspace.get("c1", "/api/v1/namespaces/t-expired") is None


def test_a_kubeconfig_error_names_the_file_kubeconfig_points_at(workspace, tmp_path, monkeypatch):
    other = tmp_path / "other.kubeconfig"
    other.write_text(
        yaml.safe_dump(
            {
                "apiVersion": "v1",
                "kind": "Config",
                "clusters": [{"name": "x", "cluster": {"server": "https://127.0.0.1:1"}}],
                "users": [{"name": "x", "user": {"token": "t"}}],
                "contexts": [{"name": "x", "context": {"cluster": "x", "user": "x"}}],
            }
        )
    )
    monkeypatch.setenv("KUBECONFIG", str(other))
    workspace.write("c1", [namespace("t-env", "c1")])
    result = run_reconcile({"clusters_dir": str(workspace.root), "clusters": ["c1"]})
    error = result["clusters"]["c1"]["error"]
    assert error.startswith(f"context 'c1': cannot load it from kubeconfig {other} (from $KUBECONFIG): ")
    assert "~/.kube/config" not in error


# -- a cluster cut off mid-run ------------------------------------------------------------
def test_a_cluster_cut_off_mid_run_fails_alone_by_its_request_timeout(workspace, gitops_clusters):
    """The link of c2 goes dark mid-run. Everything here is on loopback, which cannot be
    unplugged; a stopped (SIGSTOP) kube-apiserver is the same to its clients: the kernel
    still accepts connections, nothing answers, every request waits for its timeout."""
    c2 = gitops_clusters["c2"]
    for name in ("c1", "c3"):
        workspace.write(name, [namespace("t-cut", name), configmap("cm", "t-cut", name)])
    workspace.write("c2", many("c2", "t-cut", 1500))
    timeout = 3
    finished = in_thread(workspace.reconcile, request_timeout=timeout)
    wait_until(lambda: len(listed_configmaps(c2, "t-cut")) >= 200, what="200 ConfigMaps written")
    apiserver = c2.processes["kube-apiserver"]
    apiserver.signal(signal.SIGSTOP)
    try:
        result = finished(timeout=120)
    finally:
        apiserver.signal(signal.SIGCONT)
    wait_until(c2.apiserver_ready, what="c2 answers again")

    assert result["failed_clusters"] == ["c2"]
    for name in ("c1", "c3"):
        assert result["clusters"][name]["status"] == "ok"
        assert result["clusters"][name]["counts"]["created"] == 2
    report = result["clusters"]["c2"]
    assert report["status"] == "unreachable"
    assert "timed out" in report["error"]
    # It was the request timeout that ended c2 (the report says so); how long that took in
    # wall-clock time is not asserted: this machine is shared, and a loaded one stretches it.
    created = {o["name"] for o in report["objects"] if o["kind"] == "ConfigMap" and o["action"] == "create"}
    maybe = {o["name"] for o in report["objects"] if o.get("maybe_written")}
    live = listed_configmaps(c2, "t-cut")
    assert created <= live
    assert live - created <= maybe
    drop_lease(c2)


# -- an etcd member lost mid-run --------------------------------------------------------------
def _killing_client(kubeconfig: str, after: int, kill):
    """A client factory whose ``after``-th apply first calls ``kill()`` (from the worker that
    makes it, while the others go on): the kill lands mid-run whatever the machine's speed."""
    applies, mutex = [0], threading.Lock()

    class Client(KubeClient):
        def apply(self, res, obj, *, dry_run, full=True):
            with mutex:
                applies[0] += 1
                now = applies[0] == after
            if now:
                kill()
            return super().apply(res, obj, dry_run=dry_run, full=full)

    return lambda context: Client(context, kubeconfig)


def _reconcile_killing_an_etcd_member(kube_cluster_factory, tmp_path, member: str, workers: int):
    """Start cluster e1 on three etcd members, then reconcile a namespace and 300 ConfigMaps
    into it with ``workers`` writes in flight; before the 100th apply, SIGKILL the etcd
    ``member`` ("leader" or a "follower") by its PID, wait for its end and for the two left
    to agree on a leader. The cluster, its workspace and the run's result."""
    cset = kube_cluster_factory(["e1"], etcd_members=3)
    e1 = cset["e1"]
    servers = next(a for a in e1.processes["kube-apiserver"].argv if a.startswith("--etcd-servers="))
    assert servers.count(",") == 2  # the API server talks to all three members
    ws = Workspace(tmp_path / "clusters", cset)
    ws.write("e1", [])
    assert ws.reconcile(bootstrap_identity=True)["failed_clusters"] == []
    leader = wait_until(e1.etcd_leader, what="the etcd members agree on a leader")
    victim = e1.processes[
        leader if member == "leader" else next(c for c in e1.etcd_components if c != leader)
    ]
    killed = []

    def kill():
        killed.append(victim.pid)
        os.kill(victim.pid, signal.SIGKILL)
        assert victim.wait(15), f"etcd member {victim.component} (pid {victim.pid}) outlived SIGKILL"
        # a killed leader: the two left elect another (a killed follower: the leader stays)
        after = wait_until(e1.etcd_leader, what="the two members left agree on a leader")
        assert (after == leader) is (member == "follower")

    ws.write("e1", many("e1", "t-etcd", 300))
    result = run_reconcile(
        {"clusters_dir": str(ws.root), "clusters": ["e1"], "kubeconfig": ws.kubeconfig, "workers": workers},
        client_factory=_killing_client(ws.kubeconfig, 100, kill),
    )
    assert killed == [victim.pid]  # once, mid-run
    assert not victim.alive()
    return e1, ws, result


def _failures(report: dict) -> list[tuple[str, str]]:
    return [(o["name"], o.get("error")) for o in report["objects"] if o["action"] == "failed"]


@pytest.mark.parametrize("member", ["follower", "leader"])
def test_an_etcd_member_killed_between_writes_the_run_writes_everything(
    member, kube_cluster_factory, tmp_path
):
    """One write at a time, and the kill lands between two: the API server goes on with the
    two members left (after a new election, when the leader died) and the run completes."""
    e1, _ws, result = _reconcile_killing_an_etcd_member(kube_cluster_factory, tmp_path, member, workers=1)
    report = result["clusters"]["e1"]

    assert (result["failed_clusters"], result["changed"]) == ([], True), _failures(report) or report["error"]
    assert (report["status"], report["error"], report["notes"]) == ("ok", "", [])
    assert report["counts"] == {
        "created": 301,  # the namespace and its 300 ConfigMaps
        "updated": 0,
        "unchanged": 1,  # the identity
        "pruned": 0,
        "failed": 0,
        "prune_protected": 0,
        "already_gone": 0,
        "maybe_written": 0,
        "nodes_annotated": 0,
        "nodes_unchanged": 0,
        "nodes_pending": 0,
    }
    assert len(listed_configmaps(e1, "t-etcd")) == 300


@pytest.mark.parametrize("member", ["follower", "leader"])
def test_an_etcd_member_killed_under_writes_in_flight_the_run_sends_lost_writes_again_and_completes(
    member, kube_cluster_factory, tmp_path
):
    """Eight writes in flight (the default): those the API server had sent through the dying
    member, or proposed during the election, come back as HTTP 500 (etcd's "request timed
    out", "leader changed", or gRPC Unavailable); the engine sends them again (a server-side
    apply is idempotent) and the run completes as if nothing had happened."""
    e1, _ws, result = _reconcile_killing_an_etcd_member(kube_cluster_factory, tmp_path, member, workers=8)
    report = result["clusters"]["e1"]

    assert (result["failed_clusters"], result["changed"]) == ([], True), _failures(report) or report["error"]
    assert (report["status"], report["error"]) == ("ok", "")
    assert (report["counts"]["created"], report["counts"]["failed"]) == (301, 0)
    assert len(listed_configmaps(e1, "t-etcd")) == 300
