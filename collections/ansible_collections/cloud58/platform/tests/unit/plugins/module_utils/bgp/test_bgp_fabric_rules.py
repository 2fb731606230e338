"""Bad fabrics fail with messages that name the rack: AS collisions, peers outside the rack
subnet, a rack without two ToRs (the planner reports them from the inventory, the fabric
check again for fabrics built in code)."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
import yaml

from ansible_collections.cloud58.platform.plugins.module_utils.bgp import BgpError, fabric_from_plan
from ansible_collections.cloud58.platform.plugins.module_utils.bgp.fabric import Rack, Tor
from ansible_collections.cloud58.platform.plugins.module_utils.topology import (
    PlanError,
    build_plan,
    inventory_from_vars,
    load_inventory,
)

REPO = Path(__file__).resolve().parents[9]


@pytest.fixture(scope="module")
def fabric():
    return fabric_from_plan(build_plan(load_inventory(str(REPO / "inventories/lab"))).as_dict(), "lab1")


def _replace_rack(fabric, name, **changes):
    from dataclasses import replace

    racks = tuple(replace(r, **changes) if r.name == name else r for r in fabric.racks)
    return replace(fabric, racks=racks)


def test_lab_fabric_passes(fabric):
    assert fabric.check() is fabric


def test_rack_with_one_tor(fabric):
    rack = fabric.rack("lab1-r2")
    broken = _replace_rack(fabric, "lab1-r2", tors=rack.tors[:1])
    with pytest.raises(BgpError, match=r"rack 'lab1-r2' has 1 ToR routers; every rack needs exactly two"):
        broken.check()


def test_tor_outside_the_rack_subnet(fabric):
    rack = fabric.rack("lab1-r1")
    tor = Tor(name="lab1-r1-tor2", rack="lab1-r1", address="198.18.0.70", asn=65121)
    broken = _replace_rack(fabric, "lab1-r1", tors=(rack.tors[0], tor))
    with pytest.raises(BgpError, match=r"rack 'lab1-r1': ToR 'lab1-r1-tor2' address 198.18.0.70 is outside"):
        broken.check()


def test_rack_as_colliding_with_another_rack(fabric):
    broken = _replace_rack(fabric, "lab1-r2", node_asn=65111)
    with pytest.raises(
        BgpError, match=r"AS 65111 of the nodes of rack 'lab1-r2' collides with the nodes of rack 'lab1-r1'"
    ):
        broken.check()


def test_tor_as_colliding_with_the_core(fabric):
    rack = fabric.rack("lab1-r1")
    tors = tuple(Tor(t.name, t.rack, t.address, 65100, t.uplinks) for t in rack.tors)
    broken = _replace_rack(fabric, "lab1-r1", tors=tors)
    with pytest.raises(
        BgpError, match=r"AS 65100 of the ToRs of rack 'lab1-r1' collides with the core routers"
    ):
        broken.check()


def test_ebgp_rack_sharing_its_as_with_its_tors(fabric):
    broken = _replace_rack(fabric, "lab1-r1", node_asn=65121)
    with pytest.raises(
        BgpError, match=r"rack 'lab1-r1': ToR 'lab1-r1-tor1' shares AS 65121 with the rack's nodes"
    ):
        broken.check()


def test_rack_type_is_used(fabric):
    assert isinstance(fabric.rack("lab1-r1"), Rack)


# ---- the same mistakes in an inventory: the planner names the rack -------------------------


def _lab_vars():
    root = REPO / "inventories/lab"
    datacenters = yaml.safe_load((root / "group_vars/all/datacenters.yml").read_text())["cloud58_datacenters"]
    clusters = yaml.safe_load((root / "group_vars/all/clusters.yml").read_text())["cloud58_clusters"]
    inventory = load_inventory(str(root))
    return copy.deepcopy(datacenters), copy.deepcopy(clusters), inventory


def _plan_with(mutate):
    datacenters, clusters, inventory = _lab_vars()
    mutate(datacenters)
    return build_plan(inventory_from_vars(datacenters, clusters, inventory.hosts, inventory.groups))


@pytest.mark.parametrize(
    ("mutate", "kind", "rack"),
    [
        (lambda d: d["lab1"]["racks"]["lab1-r2"].update(node_asn=65111), "duplicate-asn", "lab1-r2"),
        (
            lambda d: d["lab1"]["racks"]["lab1-r1"]["tors"][1].update(address="198.18.0.70"),
            "router-outside-network",
            "lab1-r1",
        ),
        (lambda d: d["lab1"]["racks"]["lab1-r2"]["tors"].pop(), "tor-count", "lab1-r2"),
    ],
    ids=["as-collision", "tor-outside-rack-subnet", "one-tor"],
)
def test_planner_names_the_rack(mutate, kind, rack):
    with pytest.raises(PlanError) as failure:
        _plan_with(mutate)
    problems = [p for p in failure.value.problems if p.kind == kind]
    assert problems, failure.value.text()
    assert any(f"rack '{rack}'" in str(p) for p in problems), failure.value.text()
