"""The per-cluster lock: the pure decision on a Lease, and ClusterLock against a fake server."""

from __future__ import annotations

import datetime

import pytest

from ansible_collections.cloud58.platform.plugins.module_utils.gitops.errors import (
    KubeApiError,
    KubeUnreachable,
    LockError,
)
from ansible_collections.cloud58.platform.plugins.module_utils.gitops.lease import (
    FREE,
    HELD,
    MINE,
    STALE,
    ClusterLock,
    Verdict,
    format_time,
    holder_identity,
    lease_verdict,
    parse_time,
)

NOW = datetime.datetime(2025, 6, 1, 12, 0, 0, tzinfo=datetime.UTC)
ME = "build-01 pid 100 run aaaa0000"
OTHER = "build-02 pid 200 run bbbb1111"


def ago(seconds: float) -> str:
    return format_time(NOW - datetime.timedelta(seconds=seconds))


@pytest.mark.parametrize(
    ("spec", "unchanged_for", "expected"),
    [
        pytest.param(None, 0, Verdict(FREE), id="no-lease-yet"),
        pytest.param({"leaseDurationSeconds": 30, "renewTime": ago(1)}, 0, Verdict(FREE), id="released"),
        pytest.param({"holderIdentity": ME, "renewTime": ago(1)}, 0, Verdict(MINE, ME), id="mine"),
        pytest.param(
            {"holderIdentity": OTHER, "leaseDurationSeconds": 30, "renewTime": ago(10)},
            0,
            Verdict(HELD, OTHER, expires_in=30.0, renewed_ago=10.0),
            id="held-and-fresh",
        ),
        pytest.param(
            {"holderIdentity": OTHER, "leaseDurationSeconds": 30, "renewTime": ago(50)},
            0,
            Verdict(HELD, OTHER, expires_in=10.0, renewed_ago=50.0),
            id="overdue-by-less-than-the-clock-allowance",
        ),
        pytest.param(
            {"holderIdentity": OTHER, "leaseDurationSeconds": 30, "renewTime": ago(61)},
            0,
            Verdict(STALE, OTHER, renewed_ago=61.0),
            id="not-renewed-for-twice-its-duration",
        ),
        pytest.param(
            {"holderIdentity": OTHER, "leaseDurationSeconds": 30, "renewTime": ago(5)},
            30,
            Verdict(STALE, OTHER, renewed_ago=5.0),
            id="watched-unchanged-for-its-duration",
        ),
        pytest.param(
            {"holderIdentity": OTHER, "leaseDurationSeconds": 30, "renewTime": ago(5)},
            20,
            Verdict(HELD, OTHER, expires_in=10.0, renewed_ago=5.0),
            id="watched-unchanged-for-less",
        ),
        pytest.param(
            {"holderIdentity": OTHER, "leaseDurationSeconds": 30, "renewTime": ago(-20)},
            0,
            Verdict(HELD, OTHER, expires_in=30.0, renewed_ago=0.0),
            id="holder-clock-ahead-of-ours",
        ),
        pytest.param(
            {"holderIdentity": OTHER, "leaseDurationSeconds": 30, "acquireTime": ago(3)},
            0,
            Verdict(HELD, OTHER, expires_in=30.0, renewed_ago=3.0),
            id="acquired-never-renewed",
        ),
        pytest.param({"holderIdentity": OTHER}, 0, Verdict(STALE, OTHER), id="holder-without-any-time"),
    ],
)
def test_lease_verdict(spec, unchanged_for, expected):
    assert lease_verdict(spec, ME, NOW, unchanged_for=unchanged_for) == expected


def test_times_round_trip_as_lease_microtime():
    text = format_time(NOW + datetime.timedelta(microseconds=123456))
    assert text == "2025-06-01T12:00:00.123456Z"
    assert parse_time(text) == NOW + datetime.timedelta(microseconds=123456)
    assert parse_time("garbage") is None
    assert parse_time(None) is None


def test_holder_identity_names_host_and_process_and_differs_per_run():
    one, two = holder_identity(), holder_identity()
    assert one != two
    assert one.split(" run ")[0] == two.split(" run ")[0]
    assert " pid " in one


class Server:
    """Leases in a dict, with resourceVersions and 409s as the API server answers."""

    def __init__(self):
        self.lease = None
        self.version = 0
        self.calls = []
        self.fail_replace = None

    def _store(self, obj):
        self.version += 1
        self.lease = {**obj, "metadata": {**obj["metadata"], "resourceVersion": str(self.version)}}
        return self.lease

    def get(self, res, namespace, name):
        self.calls.append("get")
        return self.lease

    def create(self, res, obj, *, dry_run):
        self.calls.append("create")
        if self.lease is not None:
            raise KubeApiError("409 exists", status=409)
        return self._store(obj)

    def replace(self, res, obj):
        self.calls.append("replace")
        if self.fail_replace is not None:
            raise self.fail_replace
        if obj["metadata"]["resourceVersion"] != self.lease["metadata"]["resourceVersion"]:
            raise KubeApiError("409 modified", status=409)
        return self._store(obj)


class Clock:
    """Wall and monotonic time that move only when the lock sleeps."""

    def __init__(self):
        self.elapsed = 0.0
        self.slept = []

    def wall(self):
        return NOW + datetime.timedelta(seconds=self.elapsed)

    def mono(self):
        return self.elapsed

    def sleep(self, seconds):
        self.slept.append(seconds)
        self.elapsed += seconds


def make_lock(server, clock, identity=ME, timeout=10.0):
    return ClusterLock(
        server,
        "c1",
        "kube-system",
        timeout=timeout,
        duration=30,
        identity=identity,
        clock=clock.wall,
        sleep=clock.sleep,
        monotonic=clock.mono,
    )


def held_by(server, holder, renewed_ago=0.0, duration=30):
    server._store(
        {
            "apiVersion": "coordination.k8s.io/v1",
            "kind": "Lease",
            "metadata": {"name": "cloud58-reconcile", "namespace": "kube-system"},
            "spec": {
                "holderIdentity": holder,
                "leaseDurationSeconds": duration,
                "renewTime": ago(renewed_ago),
                "leaseTransitions": 4,
            },
        }
    )


def test_the_first_run_creates_the_lease_and_release_clears_the_holder():
    server, clock = Server(), Clock()
    lock = make_lock(server, clock)
    lock.acquire()
    spec = server.lease["spec"]
    assert spec == {
        "holderIdentity": ME,
        "leaseDurationSeconds": 30,
        "acquireTime": "2025-06-01T12:00:00.000000Z",
        "renewTime": "2025-06-01T12:00:00.000000Z",
        "leaseTransitions": 0,
    }
    assert server.lease["metadata"]["labels"] == {"app.kubernetes.io/managed-by": "cloud58"}
    assert (lock.held, lock.waited, lock.took_over) == (True, 0.0, "")
    assert lock.release() == ""
    assert "holderIdentity" not in server.lease["spec"]
    assert server.calls == ["get", "create", "replace"]


def test_a_released_lease_is_taken_with_its_resource_version_and_counts_a_transition():
    server, clock = Server(), Clock()
    make_lock(server, clock, identity=OTHER).acquire()
    make_lock(server, clock, identity=OTHER).release()  # not holding: sends nothing
    first = make_lock(server, clock, identity=OTHER)
    server.lease = None
    first.acquire()
    first.release()
    second = make_lock(server, clock)
    second.acquire()
    assert (server.lease["spec"]["holderIdentity"], server.lease["spec"]["leaseTransitions"]) == (ME, 1)


def test_a_held_lease_that_its_holder_keeps_renewing_is_waited_for_then_refused():
    server, clock = Server(), Clock()
    held_by(server, OTHER, renewed_ago=2)
    renewals = iter(range(100))

    def sleep(seconds):
        clock.sleep(seconds)
        server.lease["spec"]["renewTime"] = format_time(clock.wall() - datetime.timedelta(seconds=1))
        next(renewals)

    lock = make_lock(server, clock, timeout=5)
    lock._sleep = sleep
    with pytest.raises(LockError) as info:
        lock.acquire()
    assert str(info.value) == (
        "cluster 'c1': another reconcile holds the lock (Lease kube-system/cloud58-reconcile): "
        f"holder {OTHER!r}, renewed 1s ago; waited 5s (lock_timeout); refusing to write, nothing was "
        "written. Run again when it has finished"
    )
    assert server.lease["spec"]["holderIdentity"] == OTHER
    assert set(server.calls) == {"get"}
    assert clock.slept == [1.0] * 5


def test_a_lease_released_while_waiting_is_taken_and_the_wait_reported():
    server, clock = Server(), Clock()
    held_by(server, OTHER, renewed_ago=0)

    def sleep(seconds):
        clock.sleep(seconds)
        if clock.elapsed >= 3:
            server.lease["spec"].pop("holderIdentity", None)

    lock = make_lock(server, clock)
    lock._sleep = sleep
    lock.acquire()
    assert (server.lease["spec"]["holderIdentity"], lock.waited, lock.took_over) == (ME, 3.0, "")


def test_a_lease_whose_holder_stopped_renewing_is_taken_over():
    server, clock = Server(), Clock()
    held_by(server, OTHER, renewed_ago=600)
    lock = make_lock(server, clock)
    lock.acquire()
    assert (lock.took_over, lock.waited) == (OTHER, 0.0)
    assert server.lease["spec"]["holderIdentity"] == ME
    assert server.lease["spec"]["leaseTransitions"] == 5


def test_a_lease_seen_unchanged_for_its_duration_is_taken_over_whatever_the_clocks_say():
    server, clock = Server(), Clock()
    held_by(server, OTHER, renewed_ago=-3600)  # its holder's clock is an hour ahead of ours
    lock = make_lock(server, clock, timeout=60)
    lock.acquire()
    assert (lock.took_over, lock.waited) == (OTHER, 30.0)


def test_two_runs_racing_for_a_free_lease_cannot_both_take_it():
    server, clock = Server(), Clock()
    held_by(server, "", renewed_ago=0)
    server.lease["spec"].pop("holderIdentity")
    seen = server.get(None, "", "")
    a = make_lock(server, clock, identity=OTHER)
    a.acquire()
    b = make_lock(server, clock, timeout=0)
    assert b._take(seen, Verdict(FREE)) is False  # its read is stale: 409
    with pytest.raises(LockError):
        b.acquire()
    assert server.lease["spec"]["holderIdentity"] == OTHER


def test_renewal_moves_renew_time_and_a_taken_lease_is_lost():
    server, clock = Server(), Clock()
    lock = make_lock(server, clock)
    lock.acquire()
    clock.sleep(10)
    lock.renew()
    assert server.lease["spec"]["renewTime"] == "2025-06-01T12:00:10.000000Z"
    assert not lock.lost
    server.lease["spec"]["holderIdentity"] = OTHER
    server._store(server.lease)  # someone else wrote it
    lock.renew()
    assert lock.lost
    assert lock.lost_reason.startswith(
        "Lease kube-system/cloud58-reconcile was taken or removed by someone else"
    )
    calls = len(server.calls)
    assert lock.release() == lock.lost_reason
    assert len(server.calls) == calls  # a lost lock is not released: it is someone else's
    assert server.lease["spec"]["holderIdentity"] == OTHER


def test_a_renewal_failing_for_a_whole_duration_loses_the_lock():
    server, clock = Server(), Clock()
    lock = make_lock(server, clock)
    lock.acquire()
    server.fail_replace = KubeUnreachable("context 'c1': API server x unreachable: timed out", sent=True)
    clock.sleep(20)
    lock.renew()
    assert not lock.lost  # others cannot take it yet
    clock.sleep(10)
    lock.renew()
    assert lock.lost
    assert lock.lost_reason == (
        "Lease kube-system/cloud58-reconcile could not be renewed for 30s: "
        "context 'c1': API server x unreachable: timed out"
    )


def test_release_on_an_unreachable_server_sends_nothing_and_says_so():
    server, clock = Server(), Clock()
    lock = make_lock(server, clock)
    lock.acquire()
    calls = len(server.calls)
    assert lock.release(reachable=False) == (
        "Lease kube-system/cloud58-reconcile not released (the API server is unreachable); "
        "it expires by itself"
    )
    assert len(server.calls) == calls
