"""The filters of plugins/filter/lvs.py over the lab's plan."""

from __future__ import annotations

import os

import pytest
from ansible.errors import AnsibleFilterError

from ansible_collections.cloud58.platform.plugins.filter.lvs import FilterModule, lvs_sync_cluster
from ansible_collections.cloud58.platform.plugins.module_utils.topology import build_plan, load_inventory

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), *([".."] * 8)))


@pytest.fixture(scope="module")
def plan():
    return build_plan(load_inventory(os.path.join(REPO, "inventories", "lab"))).as_dict()


def test_filters_are_registered():
    assert sorted(FilterModule().filters()) == ["lvs_bird_config", "lvs_sync_cluster"]


@pytest.mark.parametrize(
    ("director", "chosen", "expected"),
    [("lab1-lvs1", "", "lab1-k8s"), ("lab2-lvs2", None, "lab2-k8s"), ("lab1-lvs2", "lab1-k8s", "lab1-k8s")],
)
def test_a_director_s_sync_reads_the_cluster_of_its_datacenter(plan, director, chosen, expected):
    found = lvs_sync_cluster(plan, director, chosen)
    assert (found["name"], found["datacenter"], found["api"]["server"]) == (
        expected,
        expected[:4],
        f"https://api.{expected}.lab.cloud58.test:6443",
    )


@pytest.mark.parametrize(
    ("plan_of", "director", "chosen", "message"),
    [
        pytest.param(
            lambda p: p,
            "lab1-lvs1",
            "lab2-k8s",
            "lvs_sync_cluster: site_lvs_sync_cluster of lab1-lvs1: 'lab2-k8s' is not a cluster of datacenter "
            "lab1 (clusters: lab1-k8s)",
            id="other-datacenter-s-cluster",
        ),
        pytest.param(
            lambda p: p,
            "lab1-w1",
            "",
            "lvs_sync_cluster: 'lab1-w1' is not an LVS director of the plan",
            id="a-minion",
        ),
        pytest.param(
            lambda p: {"hosts": p["hosts"]},
            "lab1-lvs1",
            "",
            "lvs_sync_cluster: expected the plan (a mapping with 'datacenters', 'hosts' and 'clusters'), "
            "got dict",
            id="not-a-plan",
        ),
    ],
)
def test_a_director_without_a_cluster_fails_naming_it(plan, plan_of, director, chosen, message):
    with pytest.raises(AnsibleFilterError) as caught:
        lvs_sync_cluster(plan_of(plan), director, chosen)
    assert str(caught.value) == message
