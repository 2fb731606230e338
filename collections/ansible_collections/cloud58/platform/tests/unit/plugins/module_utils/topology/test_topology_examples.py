# -*- coding: utf-8 -*-
# Copyright: cloud58 platform team
# Apache License 2.0
"""Invariants of the example inventories (lab, bj1, sh1, all of them together, and the
1,000-host benchmark fabric): no overlap anywhere, two peers for every host, pools that fit.

The checks recompute everything from the plan with netaddr, independently of the planner.
"""

from __future__ import annotations

import importlib.util
import itertools
import os

import netaddr
import pytest

from ansible_collections.cloud58.platform.plugins.module_utils.topology import plan_paths

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), *([".."] * 9)))
LAB_SPACE = netaddr.IPNetwork("198.18.0.0/15")


def _inventory(name):
    return os.path.join(REPO, "inventories", name)


def _bench_fabric(tmp_path_factory):
    spec = importlib.util.spec_from_file_location(
        "bench_plan", os.path.join(REPO, "benchmarks", "bench_plan.py")
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.write_inventory(str(tmp_path_factory.mktemp("bench")), total_hosts=1000, datacenters=3)


PLANS = {
    "lab": lambda _: [_inventory("lab")],
    "bj1": lambda _: [_inventory("bj1")],
    "sh1": lambda _: [_inventory("sh1")],
    "all-together": lambda _: [_inventory("lab"), _inventory("bj1"), _inventory("sh1")],
    "bench-1000": lambda factory: [_bench_fabric(factory)],
}


@pytest.fixture(scope="module", params=sorted(PLANS))
def plan(request, tmp_path_factory):
    return plan_paths(PLANS[request.param](tmp_path_factory))


def _net(text):
    return netaddr.IPNetwork(text)


def _assert_disjoint(named):
    for (name_a, a), (name_b, b) in itertools.combinations(sorted(named.items()), 2):
        assert a.last < b.first or b.last < a.first, f"{name_a} {a} overlaps {name_b} {b}"


def _assert_inside(inner, outer, what):
    assert outer.first <= inner.first, f"{what}: {inner} not inside {outer}"
    assert inner.last <= outer.last, f"{what}: {inner} not inside {outer}"


def test_no_two_networks_of_the_fabric_overlap(plan):
    top = {}
    for dc_name, dc in plan["datacenters"].items():
        for field, text in dc["networks"].items():
            top[f"{dc_name} {field}"] = _net(text)
    for cluster_name, cluster in plan["clusters"].items():
        top[f"{cluster_name} pods"] = _net(cluster["pod_cidr"])
        top[f"{cluster_name} services"] = _net(cluster["service_cidr"])
    _assert_disjoint(top)
    racks = {}
    for dc in plan["datacenters"].values():
        for rack_name, rack in dc["racks"].items():
            racks[rack_name] = _net(rack["node_subnet"])
            _assert_inside(racks[rack_name], _net(dc["networks"]["nodes"]), rack_name)
    _assert_disjoint(racks)


def test_pod_pools_fit_their_nodes_and_do_not_overlap(plan):
    for cluster_name, cluster in plan["clusters"].items():
        pods = _net(cluster["pod_cidr"])
        pools = {}
        for rack_name, pool in cluster["pod_pools"].items():
            cidr = _net(pool["cidr"])
            pools[rack_name] = cidr
            _assert_inside(cidr, pods, f"{cluster_name} {rack_name}")
            blocks = cidr.size // 2 ** (32 - cluster["pod_block_size"])
            assert blocks == pool["capacity_nodes"]
            assert blocks * 100 >= pool["nodes"] * (100 + cluster["pool_headroom_percent"])
            assert 2 ** (32 - cluster["pod_block_size"]) >= cluster["max_pods"]
            nodes = [h for h in cluster["nodes"] if plan["hosts"][h]["rack"] == rack_name]
            assert len(nodes) == pool["nodes"]
            assert {plan["hosts"][h]["pod_pool"] for h in nodes} == {pool["cidr"]}
        _assert_disjoint(pools)
        racks_with_nodes = {plan["hosts"][h]["rack"] for h in cluster["nodes"]}
        assert set(pools) == racks_with_nodes


def test_every_host_peers_with_both_tors_of_its_rack_inside_its_subnet(plan):
    for name, host in plan["hosts"].items():
        rack = plan["datacenters"][host["datacenter"]]["racks"][host["rack"]]
        subnet = _net(rack["node_subnet"])
        assert netaddr.IPAddress(host["address"]) in subnet, name
        assert host["address"] not in (str(subnet.network), str(subnet.broadcast)), name
        peers = host["bgp"]["peers"]
        assert len(peers) == 2, name
        assert sorted(p["name"] for p in peers) == sorted(t["name"] for t in rack["tors"])
        assert {netaddr.IPAddress(p["address"]) in subnet for p in peers} == {True}
        assert host["bgp"]["asn"] == rack["node_asn"]
        assert name in rack["hosts"]


def test_addresses_are_unique(plan):
    seen = {}
    for name, host in plan["hosts"].items():
        seen.setdefault(host["address"], []).append(name)
    for dc in plan["datacenters"].values():
        for rack in dc["racks"].values():
            for tor in rack["tors"]:
                seen.setdefault(tor["address"], []).append(tor["name"])
        for core in dc["routers"]["cores"].values():
            seen.setdefault(core["router_id"], []).append(core["name"])
    assert {address: names for address, names in seen.items() if len(names) > 1} == {}


def test_as_numbers_belong_to_one_rack_or_core(plan):
    owners = {}
    for dc_name, dc in plan["datacenters"].items():
        owners.setdefault(dc["bgp"]["core_asn"], set()).add((dc_name, "core"))
        for rack_name, rack in dc["racks"].items():
            owners.setdefault(rack["node_asn"], set()).add((dc_name, rack_name))
            for tor in rack["tors"]:
                owners.setdefault(tor["asn"], set()).add((dc_name, rack_name))
    assert {asn: owner for asn, owner in owners.items() if len(owner) > 1} == {}


def test_lvs_local_ranges_and_fabric_links_fit_their_pools(plan):
    for dc_name, dc in plan["datacenters"].items():
        pool = _net(dc["networks"]["local_address_pool"])
        ranges = {}
        for director, entry in dc["lvs"]["directors"].items():
            local = entry["local_addresses"]
            first, last = netaddr.IPAddress(local["first"]), netaddr.IPAddress(local["last"])
            assert int(last) - int(first) + 1 == local["count"] == dc["lvs"]["local_addresses_per_director"]
            ranges[director] = netaddr.IPRange(first, last)
            _assert_inside(ranges[director], pool, f"{dc_name} {director}")
        _assert_disjoint(ranges)
        fabric = _net(dc["networks"]["fabric"])
        cores = {netaddr.IPAddress(c["router_id"]) for c in dc["routers"]["cores"].values()}
        links = {}
        for core_name, core in dc["routers"]["cores"].items():
            for link in core["links"]:
                cidr = _net(link["cidr"])
                links[f"{core_name}-{link['tor']}"] = cidr
                _assert_inside(cidr, fabric, link["cidr"])
                assert not cores & set(cidr)
        _assert_disjoint(links)
        assert len(links) == sum(len(r["tors"]) for r in dc["racks"].values()) * len(dc["routers"]["cores"])


def test_vips_in_their_pool_each_announced_by_directors(plan):
    for dc in plan["datacenters"].values():
        pool = _net(dc["networks"]["vip_pool"])
        addresses = [vip["address"] for vip in dc["lvs"]["vips"].values()]
        assert len(addresses) == len(set(addresses))
        for vip in dc["lvs"]["vips"].values():
            assert netaddr.IPAddress(vip["address"]) in pool
            assert vip["directors"]
            assert set(vip["directors"]) <= set(dc["lvs"]["directors"])
        for cluster_name in dc["clusters"]:
            api_vip = plan["clusters"][cluster_name]["api"]["vip"]
            assert api_vip in addresses


def test_control_planes_have_odd_member_counts(plan):
    for cluster in plan["clusters"].values():
        assert len(cluster["etcd"]["members"]) % 2 == 1
        assert len(cluster["etcd_events"]["members"]) % 2 == 1
    for dc in plan["datacenters"].values():
        assert dc["consul"]["bootstrap_expect"] % 2 == 1


# ---- the example inventories themselves --------------------------------------------------


def _addresses_in(value):
    if isinstance(value, dict):
        for item in value.values():
            yield from _addresses_in(item)
    elif isinstance(value, (list, tuple)):
        for item in value:
            yield from _addresses_in(item)
    elif (
        isinstance(value, str) and value.count(".") == 3 and value.replace(".", "").replace("/", "").isdigit()
    ):
        yield value


def test_every_address_of_the_lab_is_inside_198_18_0_0_15():
    plan = plan_paths([_inventory("lab")])
    found = list(_addresses_in(plan.as_dict()))
    assert len(found) > 100
    assert [a for a in found if _net(a) not in LAB_SPACE] == []
    assert sorted(plan["datacenters"]) == ["lab1", "lab2"]
    assert [len(dc["racks"]) for dc in plan["datacenters"].values()] == [2, 2]
    assert {dc["bgp"]["mode"] for dc in plan["datacenters"].values()} == {"ebgp", "route_reflector"}


@pytest.mark.parametrize("name", ["bj1", "sh1"])
def test_realistic_datacenters_have_the_production_shape(name):
    plan = plan_paths([_inventory(name)])
    dc = plan["datacenters"][name]
    cluster = plan["clusters"][f"{name}-k8s"]
    events = [m["name"] for m in cluster["etcd_events"]["members"]]
    assert len(dc["racks"]) == 6
    assert len(cluster["masters"]) == 3
    assert len(events) == 3
    assert not set(events) & set(cluster["masters"])
    assert cluster["etcd_events"]["colocated_with_masters"] is False
    assert len(dc["lvs"]["directors"]) == 2
    assert len(dc["consul"]["servers"]) == 3
    assert 95 <= len(cluster["minions"]) <= 110
    assert dict(cluster["lab_overrides"]) == {
        "allow_fewer_than_3_masters": False,
        "events_etcd_on_masters": False,
    }
