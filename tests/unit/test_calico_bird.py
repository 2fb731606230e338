"""The BIRD config calico-node derives for a node, as the lab emulates it (cloud58_lab.calico_bird)."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from ansible_collections.cloud58.platform.plugins.module_utils.bgp import BgpError, calico_objects
from ansible_collections.cloud58.platform.plugins.module_utils.topology import build_plan, load_inventory
from cloud58_lab import programs
from cloud58_lab.calico_bird import node_speaker_config, selected_peers

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def plan():
    return build_plan(load_inventory(str(REPO / "inventories/lab"))).as_dict()


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


def test_node_speaker_config_parses_in_bird(plan, tmp_path):
    options = {"advertise_service_cluster_ips": True, "calico_max_restart_time": "2m"}
    conf = tmp_path / "bird.conf"
    conf.write_text(
        node_speaker_config(calico_objects(plan, "lab1-k8s", options), NODE, ["198.18.16.128/26"])
    )
    assert "graceful restart time 120;" in conf.read_text()
    result = subprocess.run(
        programs.argv("bird", "-p", "-c", conf), capture_output=True, text=True, check=False
    )
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
