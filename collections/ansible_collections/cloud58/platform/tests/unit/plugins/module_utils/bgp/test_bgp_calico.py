"""Calico objects of a cluster, the node AS annotations, and the BIRD config calico-node derives."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from ansible_collections.cloud58.platform.plugins.module_utils.bgp import (
    CALICO_KINDS,
    BgpError,
    calico_node_annotations,
    calico_objects,
    node_speaker_config,
)
from ansible_collections.cloud58.platform.plugins.module_utils.bgp.calico_bird import selected_peers
from ansible_collections.cloud58.platform.plugins.module_utils.gitops.model import labels_for
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


NODE = {"name": "lab1-w1", "address": "198.18.0.21", "labels": {"cloud58.io/rack": "lab1-r1"}, "asn": 65111}


def test_a_node_peers_with_its_rack_tors_only(plan):
    peers = selected_peers(calico_objects(plan, "lab1-k8s"), NODE)
    assert [(prefix, p["metadata"]["name"]) for prefix, p in peers] == [
        ("Node_", "lab1-r1-tor1"),
        ("Node_", "lab1-r1-tor2"),
    ]


def test_node_speaker_config_maps_the_objects(plan):
    text = node_speaker_config(calico_objects(plan, "lab1-k8s"), NODE, ["198.18.16.128/26"])
    assert "local as 65111;  # [Node annotation projectcalico.org/ASNumber]" in text
    assert "define CALICO_POOLS = [ 198.18.16.0/23+, 198.18.18.0/24+ ];" in text
    assert "  if net = 198.18.16.128/26 then accept;\n  if net ~ [ 198.18.16.128/26+ ] then reject;" in text
    assert "protocol bgp Node_198_18_0_1 from bgp_template {\n  neighbor 198.18.0.1 as 65121;" in text
    assert "Node_198_18_0_65" not in text
    unannotated = dict(NODE, asn=None)
    assert "local as 64512;  # [BGPConfiguration asNumber]" in node_speaker_config(
        calico_objects(plan, "lab1-k8s"), unannotated, []
    )


@pytest.mark.skipif(shutil.which("bird") is None, reason="bird2 is not installed (make setup-apt)")
def test_node_speaker_config_parses_in_bird(plan, tmp_path):
    options = {"advertise_service_cluster_ips": True, "calico_max_restart_time": "2m"}
    conf = tmp_path / "bird.conf"
    conf.write_text(
        node_speaker_config(calico_objects(plan, "lab1-k8s", options), NODE, ["198.18.16.128/26"])
    )
    assert "graceful restart time 120;" in conf.read_text()
    result = subprocess.run(["bird", "-p", "-c", str(conf)], capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stderr


@pytest.mark.parametrize(
    ("change", "complaint"),
    [
        (lambda objs: objs[0]["spec"].update(nodeToNodeMeshEnabled=True), "node-to-node mesh is on"),
        (lambda objs: objs[1]["spec"].update(password={"secretKeyRef": {}}), "password is not emulated"),
    ],
    ids=["mesh", "password"],
)
def test_what_is_not_emulated_is_refused(plan, change, complaint):
    objects = calico_objects(plan, "lab1-k8s")
    change(objects)
    with pytest.raises(BgpError, match=complaint):
        node_speaker_config(objects, NODE, [])


def test_block_outside_the_pools_is_refused(plan):
    with pytest.raises(BgpError, match=r"block 198\.18\.24\.0/26 is in no enabled IPPool"):
        node_speaker_config(calico_objects(plan, "lab1-k8s"), NODE, ["198.18.24.0/26"])
