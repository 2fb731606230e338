"""ToR and core FRR configuration data from the lab plan: peers, AS numbers, filters."""

from __future__ import annotations

import subprocess
from pathlib import Path
from types import MappingProxyType

import pytest

from ansible_collections.cloud58.platform.plugins.module_utils.bgp import (
    BgpError,
    bgp_options,
    fabric_from_plan,
    router_config,
    router_names,
)
from ansible_collections.cloud58.platform.plugins.module_utils.topology import build_plan, load_inventory

REPO = Path(__file__).resolve().parents[9]


@pytest.fixture(scope="module")
def plan():
    return build_plan(load_inventory(str(REPO / "inventories/lab"))).as_dict()


def _entries(config, name):
    pl = next(p for p in config["prefix_lists"] if p["name"] == name)
    return [(e["action"], e["prefix"], e["ge"], e["le"]) for e in pl["entries"]]


def test_router_names_are_tors_then_cores(plan):
    fabric = fabric_from_plan(plan, "lab1")
    assert router_names(fabric) == [
        "lab1-r1-tor1",
        "lab1-r1-tor2",
        "lab1-r2-tor1",
        "lab1-r2-tor2",
        "lab1-core1",
    ]


def test_ebgp_tor_peers_with_its_rack_and_the_core(plan):
    config = router_config(fabric_from_plan(plan, "lab1"), "lab1-r1-tor1")
    assert (config["asn"], config["router_id"], config["networks"]) == (
        65121,
        "198.18.0.1",
        ["198.18.0.0/26"],
    )
    nodes, cores, _directors = config["peer_groups"]
    assert {
        k: nodes[k] for k in ("name", "remote_as", "as_override", "route_reflector_client", "next_hop_self")
    } == {
        "name": "NODES",
        "remote_as": 65111,
        "as_override": True,
        "route_reflector_client": False,
        "next_hop_self": False,
    }
    assert (cores["name"], cores["remote_as"]) == ("CORES", 65100)
    assert [(n["address"], n["group"], n["description"]) for n in config["neighbors"]] == [
        ("198.18.0.11", "NODES", "lab1-m1"),
        ("198.18.0.12", "NODES", "lab1-m3"),
        ("198.18.0.21", "NODES", "lab1-w1"),
        ("198.18.0.31", "DIRECTORS", "lab1-lvs1"),
        ("198.18.1.0", "CORES", "lab1-core1"),
    ]
    assert config["interfaces"] == [{"address": "198.18.1.1/31", "description": "uplink to lab1-core1"}]


def test_tor_filters_accept_only_the_rack_pool_from_nodes(plan):
    config = router_config(fabric_from_plan(plan, "lab1"), "lab1-r1-tor1")
    assert _entries(config, "C58-FROM-NODES") == [
        ("deny", "0.0.0.0/0", None, None),
        ("permit", "198.18.16.0/23", 26, 32),
        ("deny", "0.0.0.0/0", None, 32),
    ]
    assert _entries(config, "C58-TO-CORES") == [
        ("deny", "0.0.0.0/0", None, None),
        ("permit", "198.18.16.0/23", 26, 32),
        ("permit", "198.18.0.0/26", None, None),
        ("permit", "198.18.2.0/27", None, 32),
        ("permit", "198.18.2.32/27", None, 32),
        ("deny", "0.0.0.0/0", None, 32),
    ]


def test_service_ranges_are_accepted_where_calico_advertises_them(plan):
    options = {"advertise_service_cluster_ips": True, "service_loadbalancer_ips": ["198.18.2.16/28"]}
    config = router_config(fabric_from_plan(plan, "lab1"), "lab1-r2-tor1", options)
    assert _entries(config, "C58-FROM-NODES")[1:-1] == [
        ("permit", "198.18.18.0/24", 26, 32),
        ("permit", "198.18.2.16/28", None, 32),
        ("permit", "198.18.8.0/24", None, 32),
    ]


def test_route_reflector_tor_reflects_to_its_rack(plan):
    config = router_config(fabric_from_plan(plan, "lab2"), "lab2-r1-tor1")
    nodes = config["peer_groups"][0]
    assert (config["asn"], nodes["remote_as"]) == (65211, 65211)
    assert (nodes["route_reflector_client"], nodes["next_hop_self"], nodes["as_override"]) == (
        True,
        True,
        False,
    )


def test_core_peers_with_every_tor_by_its_own_as(plan):
    config = router_config(fabric_from_plan(plan, "lab1"), "lab1-core1", {"bfd": True})
    assert [(n["address"], n["remote_as"], n["description"]) for n in config["neighbors"]] == [
        ("198.18.1.1", 65121, "lab1-r1-tor1"),
        ("198.18.1.3", 65121, "lab1-r1-tor2"),
        ("198.18.1.5", 65122, "lab1-r2-tor1"),
        ("198.18.1.7", 65122, "lab1-r2-tor2"),
    ]
    assert config["peer_groups"][0]["bfd"] is True
    assert config["bfd"] == {"interval_ms": 300, "multiplier": 3, "profile": "C58-FABRIC"}


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"hold": 6, "keepalive": 3}, "option keepalive = 3: more than a third of hold 6"),
        ({"maximum_paths": 0}, "option maximum_paths = 0: outside 1..128"),
        ({"node_neighbors": "all"}, "option node_neighbors = 'all': not one of per_node, listen_range"),
        ({"bfd": "yes"}, "option bfd = 'yes': expected true or false"),
        (
            {"service_loadbalancer_ips": ["10.0.0.0/28", "10.0.0.0/33"]},
            "option service_loadbalancer_ips[1] = '10.0.0.0/33': not a CIDR",
        ),
        (
            {"service_external_ips": ["10.0.0.1/28"]},
            "option service_external_ips[0] = '10.0.0.1/28': not a CIDR: 10.0.0.1/28 has host bits set",
        ),
        ({"maximum_path": 4}, "option maximum_path = 4: unknown BGP option; did you mean 'maximum_paths'?"),
        ({"fixed_ip_reservations": []}, "option fixed_ip_reservations = []: expected a mapping"),
        ({"client_prefixes": "0.0.0.0/0"}, "option client_prefixes = '0.0.0.0/0': expected a list of CIDRs"),
    ],
    ids=[
        "keepalive",
        "paths",
        "neighbors-mode",
        "bfd-type",
        "bad-cidr",
        "host-bits",
        "misspelt",
        "not-mapping",
        "clients-not-list",
    ],
)
def test_bad_options_are_named(options, message):
    with pytest.raises(BgpError) as info:
        bgp_options(options)
    assert str(info.value) == message


def test_options_from_a_frozen_plan_come_back_as_plain_data():
    frozen = MappingProxyType(
        {
            "service_loadbalancer_ips": ("10.0.0.0/28",),
            "fixed_ip_reservations": MappingProxyType({"c": {"a": ("10.0.0.1",)}}),
        }
    )
    options = bgp_options(frozen)
    assert options["service_loadbalancer_ips"] == ["10.0.0.0/28"]
    assert options["fixed_ip_reservations"] == {"c": {"a": ["10.0.0.1"]}}
    assert isinstance(options["fixed_ip_reservations"], dict)


def test_listen_range_mode_lists_no_node_neighbors(plan):
    config = router_config(fabric_from_plan(plan, "lab1"), "lab1-r2-tor2", {"node_neighbors": "listen_range"})
    assert config["peer_groups"][0]["listen_range"] == "198.18.0.64/26"
    assert [n["group"] for n in config["neighbors"]] == ["DIRECTORS", "CORES"]


def _rendered(config):
    jinja2 = pytest.importorskip("jinja2")
    templates = REPO / "collections/ansible_collections/cloud58/platform/roles/tor_router/templates"
    env = jinja2.Environment(loader=jinja2.FileSystemLoader(str(templates)), trim_blocks=True)
    return env.get_template("frr.conf.j2").render(tor_router_config=config)


DIRECTOR_LINES = {
    "lab1-r1-tor1": """\
ip prefix-list C58-FROM-DIRECTORS seq 10 deny 0.0.0.0/0
ip prefix-list C58-FROM-DIRECTORS seq 20 permit 198.18.2.0/27 ge 32 le 32
ip prefix-list C58-FROM-DIRECTORS seq 30 permit 198.18.2.32/27 le 32
ip prefix-list C58-FROM-DIRECTORS seq 40 deny 0.0.0.0/0 le 32
ip prefix-list C58-TO-DIRECTORS seq 10 deny 0.0.0.0/0
ip prefix-list C58-TO-DIRECTORS seq 20 permit 198.18.16.0/21 le 32
ip prefix-list C58-TO-DIRECTORS seq 30 deny 0.0.0.0/0 le 32
route-map C58-FROM-DIRECTORS permit 10
 match ip address prefix-list C58-FROM-DIRECTORS
route-map C58-TO-DIRECTORS permit 10
 match ip address prefix-list C58-TO-DIRECTORS
 neighbor DIRECTORS peer-group
 neighbor DIRECTORS remote-as 65111
 neighbor DIRECTORS description LVS directors of rack lab1-r1
 neighbor DIRECTORS timers connect 2
 neighbor 198.18.0.31 peer-group DIRECTORS
 neighbor 198.18.0.31 description lab1-lvs1
  neighbor DIRECTORS activate
  neighbor DIRECTORS as-override
  neighbor DIRECTORS route-map C58-FROM-DIRECTORS in
  neighbor DIRECTORS route-map C58-TO-DIRECTORS out""",
    "lab2-r1-tor1": """\
ip prefix-list C58-FROM-DIRECTORS seq 10 deny 0.0.0.0/0
ip prefix-list C58-FROM-DIRECTORS seq 20 permit 198.19.2.0/27 ge 32 le 32
ip prefix-list C58-FROM-DIRECTORS seq 30 permit 198.19.2.32/27 le 32
ip prefix-list C58-FROM-DIRECTORS seq 40 deny 0.0.0.0/0 le 32
ip prefix-list C58-TO-DIRECTORS seq 10 deny 0.0.0.0/0
ip prefix-list C58-TO-DIRECTORS seq 20 permit 198.19.16.0/21 le 32
ip prefix-list C58-TO-DIRECTORS seq 30 deny 0.0.0.0/0 le 32
route-map C58-FROM-DIRECTORS permit 10
 match ip address prefix-list C58-FROM-DIRECTORS
route-map C58-TO-DIRECTORS permit 10
 match ip address prefix-list C58-TO-DIRECTORS
 neighbor DIRECTORS peer-group
 neighbor DIRECTORS remote-as 65211
 neighbor DIRECTORS description LVS directors of rack lab2-r1
 neighbor DIRECTORS timers connect 2
 neighbor 198.19.0.31 peer-group DIRECTORS
 neighbor 198.19.0.31 description lab2-lvs1
  neighbor DIRECTORS activate
  neighbor DIRECTORS route-reflector-client
  neighbor DIRECTORS next-hop-self
  neighbor DIRECTORS route-map C58-FROM-DIRECTORS in
  neighbor DIRECTORS route-map C58-TO-DIRECTORS out""",
}


@pytest.mark.parametrize("router", sorted(DIRECTOR_LINES), ids=["ebgp", "route-reflector"])
def test_tor_accepts_vips_and_local_addresses_from_its_directors_and_sends_them_pod_routes(plan, router):
    config = router_config(fabric_from_plan(plan, router.split("-")[0]), router)
    lines = [line for line in _rendered(config).splitlines() if "DIRECTORS" in line or "-lvs" in line]
    assert "\n".join(lines) == DIRECTOR_LINES[router]
    assert config["maximum_paths"] == 8


FROM_CORES = [
    ("deny", "0.0.0.0/0", None, None),
    ("permit", "198.18.16.0/21", None, 32),
    ("permit", "198.18.0.0/24", None, 32),
    ("permit", "198.18.2.0/27", None, 32),
    ("permit", "198.18.2.32/27", None, 32),
    ("deny", "0.0.0.0/0", None, 32),
]
TO_DIRECTORS = [
    ("deny", "0.0.0.0/0", None, None),
    ("permit", "198.18.16.0/21", None, 32),
    ("deny", "0.0.0.0/0", None, 32),
]

TWO_CLIENTS = [("permit", "198.18.6.0/24", None, None), ("permit", "198.18.7.0/25", None, None)]


@pytest.mark.parametrize(
    ("clients", "from_cores", "to_directors"),
    [
        ([], FROM_CORES, TO_DIRECTORS),
        (
            ["198.18.6.0/24", "198.18.7.0/25"],
            [*FROM_CORES[:-1], *TWO_CLIENTS, FROM_CORES[-1]],
            [*TO_DIRECTORS[:-1], *TWO_CLIENTS, TO_DIRECTORS[-1]],
        ),
        (
            ["0.0.0.0/0"],
            [*FROM_CORES[1:-1], ("permit", "0.0.0.0/0", None, None), FROM_CORES[-1]],
            [TO_DIRECTORS[1], ("permit", "0.0.0.0/0", None, None), TO_DIRECTORS[-1]],
        ),
    ],
    ids=["none", "two-prefixes", "default-route"],
)
def test_clients_behind_the_cores_go_from_the_cores_to_the_directors_and_nowhere_else(
    plan, clients, from_cores, to_directors
):
    fabric = fabric_from_plan(plan, "lab1")
    plain = router_config(fabric, "lab1-r1-tor1")
    tor = router_config(fabric, "lab1-r1-tor1", {"client_prefixes": clients})
    assert (_entries(tor, "C58-FROM-CORES"), _entries(tor, "C58-TO-DIRECTORS")) == (from_cores, to_directors)
    others = ["C58-FROM-NODES", "C58-TO-NODES", "C58-TO-CORES", "C58-FROM-DIRECTORS"]
    assert [_entries(tor, n) for n in others] == [_entries(plain, n) for n in others]
    assert [_entries(plain, n)[0] for n in others] == [("deny", "0.0.0.0/0", None, None)] * 4
    # the core sends them to the ToRs and accepts them from none
    core = router_config(fabric, "lab1-core1", {"client_prefixes": clients})
    assert _entries(core, "C58-TO-TORS") == from_cores
    assert _entries(core, "C58-FROM-TORS") == FROM_CORES


def test_tor_of_a_rack_without_directors_has_no_director_group(plan):
    fabric = fabric_from_plan(plan, "lab1").with_nodes(["lab1-m1", "lab1-w1"])
    config = router_config(fabric, "lab1-r1-tor1")
    assert [g["name"] for g in config["peer_groups"]] == ["NODES", "CORES"]
    assert [p["name"] for p in config["prefix_lists"]] == [
        "C58-FROM-NODES",
        "C58-TO-NODES",
        "C58-FROM-CORES",
        "C58-TO-CORES",
    ]
    assert "DIRECTORS" not in _rendered(config)


@pytest.mark.parametrize("router", ["lab1-r1-tor1", "lab1-core1", "lab2-r2-tor2"])
@pytest.mark.parametrize(
    "options",
    [
        {},
        {
            "bfd": True,
            "node_neighbors": "listen_range",
            "graceful_restart": True,
            "client_prefixes": ["198.18.6.0/24", "0.0.0.0/0"],
        },
    ],
)
def test_rendered_frr_conf_passes_vtysh_syntax_check(plan, tmp_path, router, options):
    jinja2 = pytest.importorskip("jinja2")
    templates = REPO / "collections/ansible_collections/cloud58/platform/roles/tor_router/templates"
    env = jinja2.Environment(loader=jinja2.FileSystemLoader(str(templates)), trim_blocks=True)
    dc = router.split("-")[0]
    config = router_config(fabric_from_plan(plan, dc), router, options)
    text = env.get_template("frr.conf.j2").render(tor_router_config=config)
    conf = tmp_path / "frr.conf"
    conf.write_text(text)
    assert f"router bgp {config['asn']}\n" in text
    assert ("bgp graceful-restart-disable" in text) is not options.get("graceful_restart", False)
    result = subprocess.run(["vtysh", "-C", "-f", str(conf)], capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stdout + result.stderr
