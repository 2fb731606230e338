"""The cluster an LVS director's cloud58-lvs-sync reads (plan.director_cluster)."""

from __future__ import annotations

import pytest

from ansible_collections.cloud58.platform.plugins.module_utils.lvs.plan import LvsError, director_cluster


def _plan(clusters_in_dc1):
    clusters = {name: {"name": name, "datacenter": "dc1"} for name in clusters_in_dc1}
    clusters["far-k8s"] = {"name": "far-k8s", "datacenter": "dc2"}
    return {
        "datacenters": {
            "dc1": {"lvs": {"directors": {"dc1-lvs1": {"name": "dc1-lvs1"}}}},
            "dc2": {"lvs": {"directors": {}}},
        },
        "clusters": clusters,
        "hosts": {
            "dc1-lvs1": {"name": "dc1-lvs1", "datacenter": "dc1", "cluster": None},
            "dc1-m1": {"name": "dc1-m1", "datacenter": "dc1", "cluster": "a-k8s"},
        },
    }


@pytest.mark.parametrize(
    ("clusters", "chosen", "expected"),
    [
        pytest.param(["a-k8s"], "", "a-k8s", id="the-only-one"),
        pytest.param(["a-k8s", "b-k8s"], "b-k8s", "b-k8s", id="chosen-of-two"),
        pytest.param(["a-k8s"], "a-k8s", "a-k8s", id="chosen-the-only-one"),
    ],
)
def test_the_datacenter_s_cluster_or_the_chosen_one(clusters, chosen, expected):
    assert director_cluster(_plan(clusters), "dc1-lvs1", chosen) == expected


@pytest.mark.parametrize(
    ("clusters", "director", "chosen", "message"),
    [
        pytest.param(
            ["a-k8s", "b-k8s"],
            "dc1-lvs1",
            "",
            "site_lvs_sync_cluster of dc1-lvs1: datacenter dc1 has 2 clusters (a-k8s, b-k8s); "
            "name the one whose Services the director serves",
            id="two-none-chosen",
        ),
        pytest.param(
            [],
            "dc1-lvs1",
            "",
            "site_lvs_sync_cluster of dc1-lvs1: datacenter dc1 has 0 clusters (none); "
            "name the one whose Services the director serves",
            id="no-cluster",
        ),
        pytest.param(
            ["a-k8s"],
            "dc1-lvs1",
            "far-k8s",
            "site_lvs_sync_cluster of dc1-lvs1: 'far-k8s' is not a cluster of datacenter dc1 "
            "(clusters: a-k8s)",
            id="other-datacenter-s",
        ),
        pytest.param(["a-k8s"], "dc1-m1", "", "'dc1-m1' is not an LVS director of the plan", id="a-master"),
        pytest.param(["a-k8s"], "nowhere", "", "'nowhere' is not an LVS director of the plan", id="unknown"),
    ],
)
def test_a_director_that_cannot_tell_its_cluster_is_refused_naming_it(clusters, director, chosen, message):
    with pytest.raises(LvsError) as caught:
        director_cluster(_plan(clusters), director, chosen)
    assert str(caught.value) == message
