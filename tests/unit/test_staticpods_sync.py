"""The lab's kubelet-like sync keeps a failure only until a later pass plays the manifest."""

import pytest

from cloud58_lab.staticpods import SyncFailures

A = ("lab1-m1", "kube-scheduler.yaml")
B = ("lab1-m2", "etcd.yaml")


@pytest.mark.parametrize(
    ("passes", "pending", "retried"),
    [
        ([{}], {}, []),
        ([{A: "a busy"}], {A: "a busy"}, []),
        ([{A: "a busy"}, {}], {}, ["a busy"]),
        ([{A: "a busy"}, {A: "a again"}], {A: "a again"}, []),
        ([{A: "a busy"}, {B: "b gone"}], {B: "b gone"}, ["a busy"]),
        ([{A: "a busy", B: "b gone"}, {B: "b gone"}, {}], {}, ["a busy", "b gone"]),
    ],
)
def test_a_failure_stays_pending_until_a_pass_without_it(passes, pending, retried):
    failures = SyncFailures()
    for failing in passes:
        failures.note(failing)
    assert failures.pending == pending
    assert failures.retried == retried
