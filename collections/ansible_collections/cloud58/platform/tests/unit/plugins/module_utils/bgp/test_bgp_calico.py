"""Calico objects of a cluster and the node AS annotations.

The BIRD config the lab derives from them is tested in tests/unit/test_calico_bird.py.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from ansible_collections.cloud58.platform.plugins.module_utils.bgp import (
    CALICO_KINDS,
    BgpError,
    calico_node_annotations,
    calico_objects,
)
from ansible_collections.cloud58.platform.plugins.module_utils.kube.objects import labels_for
from ansible_collections.cloud58.platform.plugins.module_utils.topology import build_plan, load_inventory

REPO = Path(__file__).resolve().parents[9]


@pytest.fixture(scope="module")
def plan():
    return build_plan(load_inventory(str(REPO / "inventories/lab"))).as_dict()


def _named(objects, kind, name):
    return next(o for o in objects if o["kind"] == kind and o["metadata"]["name"] == name)


def test_objects_of_a_cluster_sorted_by_kind_and_name(plan):
    objects = calico_objects(plan, "lab1-k8s")
    assert [(o["kind"], o["metadata"]["name"]) for o in objects] == [
        ("BGPConfiguration", "default"),
        ("BGPPeer", "lab1-r1-tor1"),
        ("BGPPeer", "lab1-r1-tor2"),
        ("BGPPeer", "lab1-r2-tor1"),
        ("BGPPeer", "lab1-r2-tor2"),
        ("FelixConfiguration", "default"),
        ("IPPool", "lab1-k8s-lab1-r1"),
        ("IPPool", "lab1-k8s-lab1-r2"),
        ("IPReservation", "fixed-lab-demo-fixed"),  # inventories/lab/group_vars/all/bgp.yml
    ]
    assert all(o["apiVersion"] == "crd.projectcalico.org/v1" for o in objects)
    assert {o["kind"] for o in objects} == set(CALICO_KINDS)


def test_objects_carry_the_labels_the_engine_lists_and_prunes_by(plan):
    for obj in calico_objects(plan, "lab1-k8s"):
        rack = obj["spec"].get("nodeSelector", "").split("'")[1:2]
        extra = {"cloud58.io/rack": rack[0]} if rack else {}
        assert obj["metadata"]["labels"] == labels_for("lab1-k8s", extra), obj["metadata"]["name"]


@pytest.mark.parametrize(
    ("options", "reserved"),
    [
        (None, [["198.18.16.200", "198.18.16.240/30"]]),
        ({}, []),
        ({"fixed_ip_reservations": {"lab1-k8s": {"x": ["198.18.18.7"]}}}, [["198.18.18.7"]]),
    ],
    ids=["plan-options", "explicit-defaults", "explicit-options"],
)
def test_options_default_to_what_the_plan_carries(plan, options, reserved):
    objects = calico_objects(plan, "lab1-k8s", options)
    assert [o["spec"]["reservedCIDRs"] for o in objects if o["kind"] == "IPReservation"] == reserved


def test_a_frozen_plan_renders_like_its_dict(plan):
    frozen = build_plan(load_inventory(str(REPO / "inventories/lab")))
    assert calico_objects(frozen, "lab1-k8s") == calico_objects(plan, "lab1-k8s")


def test_bgp_configuration_turns_the_mesh_off(plan):
    spec = _named(calico_objects(plan, "lab1-k8s"), "BGPConfiguration", "default")["spec"]
    assert spec == {
        "nodeToNodeMeshEnabled": False,
        "asNumber": 64512,
        "logSeverityScreen": "Info",
        "listenPort": 179,
    }


def test_peer_per_rack_and_tor_selects_the_rack_quoted(plan):
    peer = _named(calico_objects(plan, "lab1-k8s"), "BGPPeer", "lab1-r2-tor2")
    assert peer["spec"] == {
        "nodeSelector": "cloud58.io/rack == 'lab1-r2'",
        "peerIP": "198.18.0.66",
        "asNumber": 65122,
        "sourceAddress": "UseNodeIP",
    }


def test_pool_per_rack_without_overlay_or_nat(plan):
    pool = _named(calico_objects(plan, "lab1-k8s"), "IPPool", "lab1-k8s-lab1-r1")
    assert pool["spec"] == {
        "cidr": "198.18.16.0/23",
        "blockSize": 26,
        "nodeSelector": "cloud58.io/rack == 'lab1-r1'",
        "ipipMode": "Never",
        "vxlanMode": "Never",
        "natOutgoing": False,
        "disabled": False,
        "allowedUses": ["Workload"],
    }


def test_felix_settings_for_lvs(plan):
    felix = _named(calico_objects(plan, "lab1-k8s"), "FelixConfiguration", "default")["spec"]
    assert felix == {
        "bpfEnabled": False,
        "ipipEnabled": False,
        "vxlanEnabled": False,
        "disableConntrackInvalidCheck": True,
        "ipForwarding": "Enabled",
        "usageReportingEnabled": False,
        "logSeverityScreen": "Info",
    }


def test_service_ranges_and_reservations(plan):
    options = {
        "advertise_service_cluster_ips": True,
        "service_loadbalancer_ips": ["198.18.2.16/28"],
        "fixed_ip_reservations": {
            "lab1-k8s": {"snowflake": ["198.18.18.9", "198.18.16.240/30", "198.18.18.9/32"]}
        },
    }
    objects = calico_objects(plan, "lab1-k8s", options)
    spec = _named(objects, "BGPConfiguration", "default")["spec"]
    assert spec["serviceClusterIPs"] == [{"cidr": "198.18.8.0/24"}]
    assert spec["serviceLoadBalancerIPs"] == [{"cidr": "198.18.2.16/28"}]
    assert "serviceExternalIPs" not in spec
    reservation = _named(objects, "IPReservation", "fixed-snowflake")
    assert reservation["spec"] == {"reservedCIDRs": ["198.18.16.240/30", "198.18.18.9"]}


def test_reservation_outside_every_pool_is_refused(plan):
    options = {"fixed_ip_reservations": {"lab1-k8s": {"legacy": ["198.18.24.1"]}}}
    with pytest.raises(BgpError, match=r"legacy\]: 198.18.24.1/32 is in no pod pool of the cluster"):
        calico_objects(plan, "lab1-k8s", options)


def test_unknown_cluster_is_named(plan):
    with pytest.raises(BgpError, match="the plan has no cluster 'lab9-k8s'"):
        calico_objects(plan, "lab9-k8s")


def test_node_annotations_carry_the_rack_as(plan):
    assert calico_node_annotations(plan, "lab2-k8s") == {
        "lab2-m1": {"projectcalico.org/ASNumber": "65211"},
        "lab2-m2": {"projectcalico.org/ASNumber": "65212"},
        "lab2-m3": {"projectcalico.org/ASNumber": "65211"},
        "lab2-w1": {"projectcalico.org/ASNumber": "65211"},
        "lab2-w2": {"projectcalico.org/ASNumber": "65212"},
    }
