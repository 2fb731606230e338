# -*- coding: utf-8 -*-
# Copyright: cloud58 platform team
# Apache License 2.0
"""Every derivation of the planner, on the small two-datacenter inventory of topology_factory."""

from __future__ import annotations

import json
import random

import pytest
from topology_factory import add_to_group, base, inventory, plan, remove_host, split

from ansible_collections.cloud58.platform.plugins.module_utils.bgp import DEFAULTS
from ansible_collections.cloud58.platform.plugins.module_utils.topology import Plan, build_plan
from ansible_collections.cloud58.platform.plugins.module_utils.topology.plan import pool_prefix


@pytest.fixture(scope="module")
def base_plan():
    return plan(base())


def _rack(data, name):
    return data["datacenters"][name.split("-")[0]]["racks"][name]


# ---- shape ----------------------------------------------------------------------------


def test_plan_top_level_shape(base_plan):
    assert sorted(base_plan) == ["clusters", "datacenters", "hosts", "version"]
    assert base_plan["version"] == 1
    assert sorted(base_plan["datacenters"]["dc1"]) == [
        "bgp",
        "bgp_options",
        "clusters",
        "consul",
        "hosts",
        "lvs",
        "name",
        "networks",
        "racks",
        "region",
        "routers",
    ]
    assert sorted(base_plan["datacenters"]["dc1"]["racks"]["dc1-r1"]) == [
        "hosts",
        "name",
        "node_asn",
        "node_subnet",
        "pod_pools",
        "tors",
    ]
    assert sorted(base_plan["hosts"]["dc1-w1"]) == [
        "address",
        "bgp",
        "cluster",
        "datacenter",
        "labels",
        "name",
        "node_labels",
        "pod_pool",
        "rack",
        "roles",
    ]
    assert sorted(base_plan["clusters"]["dc1-k8s"]) == [
        "api",
        "context",
        "datacenter",
        "dns_service_ip",
        "etcd",
        "etcd_events",
        "kubernetes_service_ip",
        "lab_overrides",
        "masters",
        "max_pods",
        "minions",
        "name",
        "nodes",
        "pod_block_size",
        "pod_cidr",
        "pod_pools",
        "pool_headroom_percent",
        "service_cidr",
    ]


# ---- hosts: roles, AS number, BGP peers, labels ----------------------------------------


@pytest.mark.parametrize(
    ("host", "roles", "cluster", "asn", "peers"),
    [
        pytest.param(
            "dc1-w1",
            ["minion"],
            "dc1-k8s",
            65111,
            [("dc1-r1-tor1", "198.18.0.1", 65121), ("dc1-r1-tor2", "198.18.0.2", 65121)],
            id="minion-rack1",
        ),
        pytest.param(
            "dc1-m2",
            ["master"],
            "dc1-k8s",
            65112,
            [("dc1-r2-tor1", "198.18.0.65", 65122), ("dc1-r2-tor2", "198.18.0.66", 65122)],
            id="master-rack2",
        ),
        pytest.param(
            "dc2-e3",
            ["etcd_events"],
            "dc2-k8s",
            65212,
            [("dc2-r2-tor1", "198.19.0.65", 65222), ("dc2-r2-tor2", "198.19.0.66", 65222)],
            id="events-other-datacenter",
        ),
        pytest.param(
            "dc1-lvs1",
            ["lvs"],
            None,
            65111,
            [("dc1-r1-tor1", "198.18.0.1", 65121), ("dc1-r1-tor2", "198.18.0.2", 65121)],
            id="director-has-no-cluster",
        ),
        pytest.param(
            "dc2-c1",
            ["consul_server"],
            None,
            65211,
            [("dc2-r1-tor1", "198.19.0.1", 65221), ("dc2-r1-tor2", "198.19.0.2", 65221)],
            id="consul-server",
        ),
    ],
)
def test_host_roles_as_number_and_both_tors_as_peers(base_plan, host, roles, cluster, asn, peers):  # noqa: PLR0917
    entry = base_plan["hosts"][host]
    assert list(entry["roles"]) == roles
    assert entry["cluster"] == cluster
    assert entry["bgp"]["asn"] == asn
    assert [(p["name"], p["address"], p["asn"]) for p in entry["bgp"]["peers"]] == peers
    assert {p["session"] for p in entry["bgp"]["peers"]} == {"ebgp"}


def test_route_reflector_mode_makes_ibgp_sessions_with_reflecting_tors():
    data = base()
    data["datacenters"]["dc1"]["bgp"]["mode"] = "route_reflector"
    for name in ("dc1-r1", "dc1-r2"):
        for tor in _rack(data, name)["tors"]:
            tor["asn"] = _rack(data, name)["node_asn"]
    result = plan(data)
    peers = result["hosts"]["dc1-w1"]["bgp"]["peers"]
    assert [(p["asn"], p["session"]) for p in peers] == [(65111, "ibgp"), (65111, "ibgp")]
    tor = result["datacenters"]["dc1"]["routers"]["tors"]["dc1-r1-tor1"]
    assert tor["route_reflector"] is True
    assert {n["route_reflector_client"] for n in tor["neighbors"] if n["kind"] == "host"} == {True}
    assert [n["route_reflector_client"] for n in tor["neighbors"] if n["kind"] == "core"] == [False]


def test_a_host_in_several_groups_gets_every_role_in_fixed_order():
    data = base()
    add_to_group(data, "consul_servers", "dc1-m1")
    remove_host(data, "dc1-c1")
    result = plan(data)
    assert list(result["hosts"]["dc1-m1"]["roles"]) == ["master", "consul_server"]
    assert result["hosts"]["dc1-m1"]["labels"]["function"] == "master"


@pytest.mark.parametrize(
    ("labels", "expected_labels", "expected_node_labels"),
    [
        pytest.param(
            None,
            {"function": "minion", "location": "dc1", "rack": "dc1-r1"},
            {
                "cloud58.io/function": "minion",
                "cloud58.io/location": "dc1",
                "cloud58.io/rack": "dc1-r1",
                "topology.kubernetes.io/region": "dc1",
                "topology.kubernetes.io/zone": "dc1-r1",
            },
            id="defaults",
        ),
        pytest.param(
            {"function": "web", "location": "dc1-hall-2", "example.com/team": "search"},
            {"function": "web", "location": "dc1-hall-2", "rack": "dc1-r1", "example.com/team": "search"},
            {
                "cloud58.io/function": "web",
                "cloud58.io/location": "dc1-hall-2",
                "cloud58.io/rack": "dc1-r1",
                "example.com/team": "search",
                "topology.kubernetes.io/region": "dc1",
                "topology.kubernetes.io/zone": "dc1-r1",
            },
            id="given-and-prefixed",
        ),
        pytest.param(
            {"rack": "dc1-r1"},
            {"function": "minion", "location": "dc1", "rack": "dc1-r1"},
            {
                "cloud58.io/function": "minion",
                "cloud58.io/location": "dc1",
                "cloud58.io/rack": "dc1-r1",
                "topology.kubernetes.io/region": "dc1",
                "topology.kubernetes.io/zone": "dc1-r1",
            },
            id="rack-label-that-agrees",
        ),
    ],
)
def test_labels_function_location_rack(labels, expected_labels, expected_node_labels):
    data = base()
    if labels is not None:
        data["hosts"]["dc1-w1"]["labels"] = labels
    entry = plan(data)["hosts"]["dc1-w1"]
    assert dict(entry["labels"]) == expected_labels
    assert dict(entry["node_labels"]) == expected_node_labels


# ---- pod pools --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("nodes", "headroom", "block", "prefix"),
    [
        pytest.param(1, 0, 26, 26, id="one-node-no-headroom"),
        pytest.param(1, 50, 26, 25, id="one-node-half-headroom-rounds-up"),
        pytest.param(2, 50, 26, 24, id="two-nodes-three-blocks-four"),
        pytest.param(3, 50, 26, 23, id="three-nodes-five-blocks-eight"),
        pytest.param(4, 0, 24, 22, id="exact-power-of-two"),
        pytest.param(17, 50, 24, 19, id="bj1-rack-26-blocks-32"),
        pytest.param(21, 50, 24, 19, id="32-blocks-exactly"),
        pytest.param(22, 50, 24, 18, id="33-blocks-64"),
        pytest.param(10, 100, 24, 19, id="double-headroom"),
        pytest.param(0, 50, 24, 24, id="no-node-one-block"),
    ],
)
def test_pool_prefix_from_nodes_headroom_and_block(nodes, headroom, block, prefix):
    assert pool_prefix(nodes, headroom, block) == prefix


def test_per_rack_pools_in_rack_order_from_the_start_of_pod_cidr(base_plan):
    pools = base_plan["clusters"]["dc1-k8s"]["pod_pools"]
    assert {rack: dict(pool) for rack, pool in pools.items()} == {
        "dc1-r1": {"cidr": "198.18.16.0/23", "block_size": 26, "nodes": 3, "capacity_nodes": 8},
        "dc1-r2": {"cidr": "198.18.18.0/24", "block_size": 26, "nodes": 2, "capacity_nodes": 4},
    }
    assert dict(base_plan["datacenters"]["dc1"]["racks"]["dc1-r1"]["pod_pools"]) == {
        "dc1-k8s": "198.18.16.0/23"
    }
    assert base_plan["hosts"]["dc1-m3"]["pod_pool"] == "198.18.16.0/23"
    assert base_plan["hosts"]["dc1-e1"]["pod_pool"] is None  # events etcd hosts are not nodes


def test_pools_are_aligned_to_their_size():
    data = base()
    remove_host(data, "dc1-w1")
    remove_host(data, "dc1-m3")
    data["hosts"]["dc1-m3"] = {"rack": "dc1-r2", "address": "198.18.0.78"}
    add_to_group(data, "masters", "dc1-m3")
    pools = plan(data)["clusters"]["dc1-k8s"]["pod_pools"]
    # r1: 1 node -> 2 blocks (/25); r2: 3 nodes -> 8 blocks (/23), aligned past the gap
    assert {rack: pool["cidr"] for rack, pool in pools.items()} == {
        "dc1-r1": "198.18.16.0/25",
        "dc1-r2": "198.18.18.0/23",
    }


def test_adding_a_rack_that_sorts_last_moves_no_existing_pool(base_plan):
    data = base()
    _rack(data, "dc1-r1")  # unchanged
    data["datacenters"]["dc1"]["racks"]["dc1-r3"] = {
        "node_subnet": "198.18.0.128/26",
        "node_asn": 65013,
        "tors": [
            {"name": "dc1-r3-tor1", "address": "198.18.0.129", "asn": 65023},
            {"name": "dc1-r3-tor2", "address": "198.18.0.130", "asn": 65023},
        ],
    }
    data["hosts"]["dc1-w3"] = {"rack": "dc1-r3", "address": "198.18.0.140"}
    add_to_group(data, "minions", "dc1-w3")
    pools = plan(data)["clusters"]["dc1-k8s"]["pod_pools"]
    before = base_plan["clusters"]["dc1-k8s"]["pod_pools"]
    assert pools["dc1-r1"] == before["dc1-r1"]
    assert pools["dc1-r2"] == before["dc1-r2"]
    assert pools["dc1-r3"]["cidr"] == "198.18.19.0/25"


# ---- control plane --------------------------------------------------------------------


def test_etcd_members_and_initial_cluster(base_plan):
    etcd = base_plan["clusters"]["dc1-k8s"]["etcd"]
    assert etcd["initial_cluster"] == (
        "dc1-m1=https://198.18.0.11:2380,dc1-m2=https://198.18.0.75:2380,dc1-m3=https://198.18.0.12:2380"
    )
    assert etcd["endpoints"] == "https://198.18.0.11:2379,https://198.18.0.75:2379,https://198.18.0.12:2379"
    assert [m["name"] for m in etcd["members"]] == ["dc1-m1", "dc1-m2", "dc1-m3"]
    assert dict(etcd["members"][0]) == {
        "name": "dc1-m1",
        "address": "198.18.0.11",
        "client_url": "https://198.18.0.11:2379",
        "peer_url": "https://198.18.0.11:2380",
    }
    assert (etcd["client_port"], etcd["peer_port"]) == (2379, 2380)


def test_events_etcd_on_its_own_hosts_and_ports(base_plan):
    events = base_plan["clusters"]["dc1-k8s"]["etcd_events"]
    assert events["initial_cluster"] == (
        "dc1-e1=https://198.18.0.13:2382,dc1-e2=https://198.18.0.76:2382,dc1-e3=https://198.18.0.77:2382"
    )
    assert (events["client_port"], events["peer_port"]) == (2383, 2382)
    assert events["colocated_with_masters"] is False


def test_events_etcd_on_masters_with_the_lab_override():
    data = base()
    for name in ("dc1-e1", "dc1-e2", "dc1-e3"):
        remove_host(data, name)
    for name in ("dc1-m1", "dc1-m2", "dc1-m3"):
        add_to_group(data, "etcd_events", name)
    data["clusters"]["dc1-k8s"]["lab_overrides"] = {"events_etcd_on_masters": True}
    events = plan(data)["clusters"]["dc1-k8s"]["etcd_events"]
    assert events["colocated_with_masters"] is True
    assert events["endpoints"] == "https://198.18.0.11:2383,https://198.18.0.75:2383,https://198.18.0.12:2383"


def test_one_master_with_the_lab_override():
    data = base()
    remove_host(data, "dc1-m2")
    remove_host(data, "dc1-m3")
    data["clusters"]["dc1-k8s"]["lab_overrides"] = {"allow_fewer_than_3_masters": True}
    cluster = plan(data)["clusters"]["dc1-k8s"]
    assert cluster["etcd"]["initial_cluster"] == "dc1-m1=https://198.18.0.11:2380"
    assert dict(cluster["lab_overrides"]) == {
        "allow_fewer_than_3_masters": True,
        "events_etcd_on_masters": False,
    }


def test_api_endpoint_and_service_addresses(base_plan):
    cluster = base_plan["clusters"]["dc1-k8s"]
    api = cluster["api"]
    assert api["server"] == "https://api.dc1.test:6443"
    assert (api["vip"], api["vip_name"], api["port"]) == ("198.18.2.1", "dc1-k8s-api", 6443)
    assert [(e["name"], e["address"], e["port"]) for e in api["endpoints"]] == [
        ("dc1-m1", "198.18.0.11", 6443),
        ("dc1-m2", "198.18.0.75", 6443),
        ("dc1-m3", "198.18.0.12", 6443),
    ]
    assert (cluster["kubernetes_service_ip"], cluster["dns_service_ip"]) == ("198.18.8.1", "198.18.8.10")
    assert list(cluster["nodes"]) == ["dc1-m1", "dc1-m2", "dc1-m3", "dc1-w1", "dc1-w2"]
    assert cluster["context"] == "dc1-k8s"


@pytest.mark.parametrize(
    ("consul_datacenter", "servers", "expected_name"),
    [
        pytest.param(None, ["dc1-c1"], "dc1", id="one-server-default-name"),
        pytest.param("beijing-1", ["dc1-c1", "dc1-m1", "dc1-m2"], "beijing-1", id="three-servers-named"),
    ],
)
def test_consul_servers(consul_datacenter, servers, expected_name):
    data = base()
    if consul_datacenter:
        data["datacenters"]["dc1"]["consul_datacenter"] = consul_datacenter
    for name in servers:
        if name not in data["groups"]["consul_servers"]:
            add_to_group(data, "consul_servers", name)
    consul = plan(data)["datacenters"]["dc1"]["consul"]
    assert consul["datacenter"] == expected_name
    assert [s["name"] for s in consul["servers"]] == servers
    assert list(consul["retry_join"]) == [data["hosts"][s]["address"] for s in servers]
    assert consul["bootstrap_expect"] == len(servers)


# ---- LVS ----------------------------------------------------------------------------------


def test_every_director_announces_every_vip_by_default(base_plan):
    lvs = base_plan["datacenters"]["dc1"]["lvs"]
    assert {name: list(vip["directors"]) for name, vip in lvs["vips"].items()} == {
        "dc1-k8s-api": ["dc1-lvs1", "dc1-lvs2"],
        "dc1-web": ["dc1-lvs1", "dc1-lvs2"],
    }
    assert list(lvs["directors"]["dc1-lvs1"]["vips"]) == ["dc1-k8s-api", "dc1-web"]
    assert [(r["name"], r["port"]) for r in lvs["vips"]["dc1-k8s-api"]["real_servers"]] == [
        ("dc1-m1", 6443),
        ("dc1-m2", 6443),
        ("dc1-m3", 6443),
    ]
    assert list(lvs["vips"]["dc1-web"]["ports"]) == [80, 443]


def _with_directors(count, per_vip):
    data = base()
    for n in range(3, count + 1):
        name = f"dc1-lvs{n}"
        data["hosts"][name] = {"rack": "dc1-r2", "address": f"198.18.0.{100 + n}"}
        add_to_group(data, "lvs", name)
    data["datacenters"]["dc1"]["lvs"]["vips"] = [
        {"name": f"svc{n:02d}", "address": f"198.18.2.{10 + n}"} for n in range(12)
    ]
    data["datacenters"]["dc1"]["lvs"]["directors_per_vip"] = per_vip
    data["datacenters"]["dc1"]["networks"]["local_address_pool"] = "198.18.2.64/26"
    return plan(data)["datacenters"]["dc1"]["lvs"]


def test_directors_per_vip_spreads_vips_by_rendezvous_hashing():
    lvs = _with_directors(4, 2)
    assert {len(vip["directors"]) for vip in lvs["vips"].values()} == {2}
    loads = sorted(len(d["vips"]) for d in lvs["directors"].values())
    assert sum(loads) == 13 * 2
    assert loads[0] >= 1  # every director gets some
    assert lvs == _with_directors(4, 2)  # deterministic


def test_adding_a_director_moves_only_vips_that_choose_it():
    before = _with_directors(4, 2)["vips"]
    after = _with_directors(5, 2)["vips"]
    for name, vip in before.items():
        new = set(after[name]["directors"])
        old = set(vip["directors"])
        assert new == old or (new - old == {"dc1-lvs5"} and len(old - new) == 1), name


@pytest.mark.parametrize(
    ("per_director", "ranges"),
    [
        pytest.param(
            None,
            {
                "dc1-lvs1": ("198.18.2.32/29", "198.18.2.32", "198.18.2.39", 8),
                "dc1-lvs2": ("198.18.2.40/29", "198.18.2.40", "198.18.2.47", 8),
            },
            id="default-8",
        ),
        pytest.param(
            5,
            {
                "dc1-lvs1": ("198.18.2.32/29", "198.18.2.32", "198.18.2.36", 5),
                "dc1-lvs2": ("198.18.2.40/29", "198.18.2.40", "198.18.2.44", 5),
            },
            id="5-aligned-to-8",
        ),
        pytest.param(
            16,
            {
                "dc1-lvs1": ("198.18.2.32/28", "198.18.2.32", "198.18.2.47", 16),
                "dc1-lvs2": ("198.18.2.48/28", "198.18.2.48", "198.18.2.63", 16),
            },
            id="16-fills-the-pool",
        ),
    ],
)
def test_local_address_ranges_do_not_overlap(per_director, ranges):
    data = base()
    if per_director:
        data["datacenters"]["dc1"]["lvs"]["local_addresses_per_director"] = per_director
    directors = plan(data)["datacenters"]["dc1"]["lvs"]["directors"]
    got = {
        name: (
            d["local_addresses"]["cidr"],
            d["local_addresses"]["first"],
            d["local_addresses"]["last"],
            d["local_addresses"]["count"],
        )
        for name, d in directors.items()
    }
    assert got == ranges


# ---- routers ------------------------------------------------------------------------------


def test_tor_to_core_links_are_31s_from_the_fabric(base_plan):
    cores = base_plan["datacenters"]["dc1"]["routers"]["cores"]
    assert [
        (link["tor"], link["cidr"], link["local"], link["remote"]) for link in cores["dc1-core1"]["links"]
    ] == [
        ("dc1-r1-tor1", "198.18.1.0/31", "198.18.1.0", "198.18.1.1"),
        ("dc1-r1-tor2", "198.18.1.2/31", "198.18.1.2", "198.18.1.3"),
        ("dc1-r2-tor1", "198.18.1.4/31", "198.18.1.4", "198.18.1.5"),
        ("dc1-r2-tor2", "198.18.1.6/31", "198.18.1.6", "198.18.1.7"),
    ]
    tor = base_plan["datacenters"]["dc1"]["routers"]["tors"]["dc1-r2-tor1"]
    assert [dict(u) for u in tor["uplinks"]] == [
        {"core": "dc1-core1", "cidr": "198.18.1.4/31", "local": "198.18.1.5", "remote": "198.18.1.4"}
    ]


def test_links_skip_the_core_router_addresses():
    data = base()
    data["datacenters"]["dc1"]["bgp"]["core_routers"][0]["address"] = "198.18.1.2"
    links = plan(data)["datacenters"]["dc1"]["routers"]["cores"]["dc1-core1"]["links"]
    assert [link["cidr"] for link in links] == [
        "198.18.1.0/31",
        "198.18.1.4/31",
        "198.18.1.6/31",
        "198.18.1.8/31",
    ]


def test_tor_config_inputs(base_plan):
    tor = base_plan["datacenters"]["dc1"]["routers"]["tors"]["dc1-r1-tor1"]
    assert (tor["asn"], tor["router_id"], tor["rack"], tor["route_reflector"]) == (
        65121,
        "198.18.0.1",
        "dc1-r1",
        False,
    )
    assert [(n["name"], n["address"], n["asn"], n["kind"]) for n in tor["neighbors"]] == [
        ("dc1-c1", "198.18.0.41", 65111, "host"),
        ("dc1-e1", "198.18.0.13", 65111, "host"),
        ("dc1-lvs1", "198.18.0.31", 65111, "host"),
        ("dc1-m1", "198.18.0.11", 65111, "host"),
        ("dc1-m3", "198.18.0.12", 65111, "host"),
        ("dc1-w1", "198.18.0.21", 65111, "host"),
        ("dc1-core1", "198.18.1.0", 65100, "core"),
    ]
    assert list(tor["announce"]) == ["198.18.0.0/26"]
    # the rack's pod pool, and the VIP and local-address pools because a director is in the rack
    assert list(tor["host_prefixes"]) == ["198.18.2.0/27", "198.18.2.32/27", "198.18.16.0/23"]


def test_core_config_inputs_peer_with_every_tor_and_the_other_datacenters(base_plan):
    core = base_plan["datacenters"]["dc1"]["routers"]["cores"]["dc1-core1"]
    assert (core["asn"], core["router_id"], list(core["announce"])) == (
        65100,
        "198.18.1.30",
        ["198.18.0.0/24"],
    )
    assert [(n["name"], n["address"], n["asn"], n["kind"], n["multihop"]) for n in core["neighbors"]] == [
        ("dc1-r1-tor1", "198.18.1.1", 65121, "tor", False),
        ("dc1-r1-tor2", "198.18.1.3", 65121, "tor", False),
        ("dc1-r2-tor1", "198.18.1.5", 65122, "tor", False),
        ("dc1-r2-tor2", "198.18.1.7", 65122, "tor", False),
        ("dc2-core1", "198.19.1.30", 65200, "core", True),
    ]


# ---- determinism and immutability -------------------------------------------------------


def _shuffled(data, seed):
    rng = random.Random(seed)

    def shuffle_dict(mapping):
        items = list(mapping.items())
        rng.shuffle(items)
        return dict(items)

    out = {
        "datacenters": shuffle_dict(data["datacenters"]),
        "clusters": shuffle_dict(data["clusters"]),
        "hosts": shuffle_dict(data["hosts"]),
        "groups": {},
    }
    for dc in out["datacenters"].values():
        dc["racks"] = shuffle_dict(dc["racks"])
        for rack in dc["racks"].values():
            rng.shuffle(rack["tors"])
    for group, members in shuffle_dict(data["groups"]).items():
        shuffled = list(members)
        rng.shuffle(shuffled)
        out["groups"][group] = shuffled
    return out


# ---- BGP options -------------------------------------------------------------------------


def test_without_bgp_options_every_datacenter_carries_the_defaults(base_plan):
    for name in ("dc1", "dc2"):
        assert base_plan.as_dict()["datacenters"][name]["bgp_options"] == DEFAULTS


def test_the_inventory_bgp_options_are_carried_checked_and_normalised():
    data = base()
    data["bgp_options"] = {
        "hold": 30,
        "service_loadbalancer_ips": ["198.18.2.16/28"],
        "fixed_ip_reservations": {"dc1-k8s": {"legacy": ["198.18.16.5"]}},
    }
    options = plan(data).as_dict()["datacenters"]["dc1"]["bgp_options"]
    assert options == {
        **DEFAULTS,
        "hold": 30,
        "service_loadbalancer_ips": ["198.18.2.16/28"],
        "fixed_ip_reservations": {"dc1-k8s": {"legacy": ["198.18.16.5"]}},
    }


def test_inventories_planned_together_keep_their_own_bgp_options():
    first, second = split(base())
    first["bgp_options"] = {"maximum_paths": 4}
    second["bgp_options"] = {"maximum_paths": 16, "bfd": True}
    datacenters = plan([first, second]).as_dict()["datacenters"]
    assert (datacenters["dc1"]["bgp_options"]["maximum_paths"], datacenters["dc1"]["bgp_options"]["bfd"]) == (
        4,
        False,
    )
    assert (datacenters["dc2"]["bgp_options"]["maximum_paths"], datacenters["dc2"]["bgp_options"]["bfd"]) == (
        16,
        True,
    )


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_same_inventory_in_any_order_gives_byte_identical_json(base_plan, seed):
    assert plan(_shuffled(base(), seed)).to_json() == base_plan.to_json()


def test_json_is_canonical(base_plan):
    text = base_plan.to_json()
    assert text.endswith("}\n")
    assert text == json.dumps(json.loads(text), sort_keys=True, indent=2) + "\n"
    assert build_plan(inventory(base())) == base_plan


def test_the_plan_is_immutable_and_exports_copies(base_plan):
    with pytest.raises(TypeError):
        base_plan["hosts"]["dc1-w1"]["rack"] = "dc1-r2"
    with pytest.raises(AttributeError):
        base_plan["hosts"]["dc1-w1"]["roles"].append("lvs")
    copy = base_plan.as_dict()
    copy["hosts"]["dc1-w1"]["rack"] = "elsewhere"
    assert base_plan["hosts"]["dc1-w1"]["rack"] == "dc1-r1"
    assert isinstance(base_plan, Plan)
