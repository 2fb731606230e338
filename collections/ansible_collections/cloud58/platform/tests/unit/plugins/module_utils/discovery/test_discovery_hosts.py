"""Where site.yml's consul_sync stage runs cloud58-consul-sync: one host per cluster."""

from __future__ import annotations

import os

import pytest
from ansible.errors import AnsibleFilterError

from ansible_collections.cloud58.platform.plugins.filter.discovery import FilterModule
from ansible_collections.cloud58.platform.plugins.module_utils.discovery.catalog import DiscoveryError
from ansible_collections.cloud58.platform.plugins.module_utils.discovery.hosts import sync_hosts
from ansible_collections.cloud58.platform.plugins.module_utils.topology import build_plan, load_inventory

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), *([".."] * 9)))


@pytest.fixture(scope="module")
def lab_plan():
    return build_plan(load_inventory(os.path.join(REPO, "inventories", "lab"))).as_dict()


def test_the_first_master_of_each_cluster_in_plan_order(lab_plan):
    assert sync_hosts(lab_plan) == ["lab1-m1", "lab2-m1"]
    assert sync_hosts(lab_plan, []) == ["lab1-m1", "lab2-m1"]
    # plan order, not name order: the first master listed wins
    lab_plan = {**lab_plan, "clusters": {**lab_plan["clusters"]}}
    lab_plan["clusters"]["lab1-k8s"] = {**lab_plan["clusters"]["lab1-k8s"], "masters": ["lab1-m3", "lab1-m1"]}
    assert sync_hosts(lab_plan) == ["lab1-m3", "lab2-m1"]


def test_the_group_chooses_the_host_of_the_clusters_it_covers(lab_plan):
    assert sync_hosts(lab_plan, ["lab2-w2"]) == ["lab1-m1", "lab2-w2"]
    assert sync_hosts(lab_plan, ["lab2-m3", "lab1-w1"]) == ["lab1-w1", "lab2-m3"]
    assert FilterModule().filters()["consul_sync_hosts"](lab_plan, ["lab1-m2"]) == ["lab1-m2", "lab2-m1"]


@pytest.mark.parametrize(
    ("group", "message"),
    [
        (
            ["lab1-lvs1"],
            "consul_sync_hosts: group consul_sync: 'lab1-lvs1' is no node of a cluster of the plan "
            "(clusters: lab1-k8s, lab2-k8s)",
        ),
        (
            ["lab9-x"],
            "consul_sync_hosts: group consul_sync: 'lab9-x' is no node of a cluster of the plan "
            "(clusters: lab1-k8s, lab2-k8s)",
        ),
        (
            ["lab1-m2", "lab2-m1", "lab1-w1"],
            "consul_sync_hosts: group consul_sync: lab1-m2 and lab1-w1 are both in cluster lab1-k8s; "
            "one sync per cluster",
        ),
        ("lab1-m1", "consul_sync_hosts: group consul_sync: expected a list of hosts, got 'lab1-m1'"),
    ],
)
def test_a_bad_group_fails_naming_the_hosts(lab_plan, group, message):
    with pytest.raises(DiscoveryError) as caught:
        sync_hosts(lab_plan, group)
    assert str(caught.value) == message
    with pytest.raises(AnsibleFilterError) as caught:
        FilterModule().filters()["consul_sync_hosts"](lab_plan, group)
    assert str(caught.value) == message


def test_what_is_not_a_plan_fails():
    with pytest.raises(DiscoveryError) as caught:
        sync_hosts({"hosts": {}})
    assert (
        str(caught.value) == "consul_sync_hosts: expected a topology plan with clusters and hosts, got dict"
    )
