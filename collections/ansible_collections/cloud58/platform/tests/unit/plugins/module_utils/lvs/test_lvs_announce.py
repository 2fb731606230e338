"""VIP announcement: which VIPs a director announces, and its bird.conf text."""

from __future__ import annotations

import pytest

from ansible_collections.cloud58.platform.plugins.module_utils.lvs.announce import (
    LvsError,
    announced_vips,
    bird_config,
    healthy_from_json,
)

LVS = {
    "directors": {
        "d1": {
            "name": "d1",
            "address": "198.18.0.31",
            "vips": ["web", "api", "idle"],
            "local_addresses": {
                "cidr": "198.18.2.32/28",
                "first": "198.18.2.32",
                "last": "198.18.2.47",
                "count": 16,
            },
        },
        "d2": {"name": "d2", "address": "198.18.0.32", "vips": ["other"]},
    },
    "vips": {
        "web": {
            "name": "web",
            "address": "198.18.2.10",
            "ports": [80],
            "directors": ["d1"],
            "real_servers": [{"address": "198.18.5.2", "port": 8080, "vip_port": 80}],
        },
        "api": {
            "name": "api",
            "address": "198.18.2.1",
            "ports": [6443],
            "directors": ["d1"],
            "real_servers": [{"address": "198.18.0.11", "port": 6443}],
        },
        "idle": {
            "name": "idle",
            "address": "198.18.2.20",
            "ports": [80],
            "directors": ["d1"],
            "real_servers": [],
        },
        "other": {
            "name": "other",
            "address": "198.18.2.30",
            "ports": [80],
            "directors": ["d2"],
            "real_servers": [],
        },
    },
}
BGP = {
    "asn": 65111,
    "peers": [
        {"name": "r1-tor2", "address": "198.18.0.2", "asn": 65121, "session": "ebgp"},
        {"name": "r1-tor1", "address": "198.18.0.1", "asn": 65121, "session": "ebgp"},
    ],
}

EXPECTED = """\
# BIRD 2 configuration of LVS director d1: VIP announcement to the ToRs of its rack.
# Managed by cloud58.platform.lvs_director; edit the inventory or the healthy set, not this file.
# Only the static protocol below follows the healthy set: `birdc configure` applies a new
# one without restarting the BGP sessions.
router id 198.18.0.31;

protocol device {
}

# The VIPs with at least one healthy realserver. Blackholes exported to BGP only (the
# kernel protocol takes BGP routes alone): the VIPs themselves sit on lo.
protocol static cloud58_vips {
\tipv4;
\troute 198.18.2.1/32 blackhole;
\troute 198.18.2.10/32 blackhole;
}

# The local addresses of this director's full NAT, announced while BIRD runs: the
# realservers' answers to them come back here, where conntrack undoes the NAT.
protocol static cloud58_local_addresses {
\tipv4;
\troute 198.18.2.32/28 blackhole;
}

filter cloud58_vips_out {
\tif proto = "cloud58_vips" && net.len = 32 then accept;
\tif proto = "cloud58_local_addresses" && net = 198.18.2.32/28 then accept;
\treject;
}

# What the ToRs send (the datacenter's pod routes, their filter C58-TO-DIRECTORS) goes into
# the kernel; equal routes from both ToRs become one route with two next hops.
protocol kernel cloud58_kernel {
\tmerge paths yes;
\tipv4 {
\t\timport none;
\t\texport where source = RTS_BGP;
\t};
}

protocol bgp tor_r1_tor1 {
\tdescription "ToR r1-tor1";
\tlocal 198.18.0.31 as 65111;
\tneighbor 198.18.0.1 as 65121;
\thold time 6;
\tkeepalive time 2;
\tconnect retry time 1;
\tipv4 {
\t\timport all;
\t\texport filter cloud58_vips_out;
\t\tnext hop self;
\t\tgateway direct;
\t};
}

protocol bgp tor_r1_tor2 {
\tdescription "ToR r1-tor2";
\tlocal 198.18.0.31 as 65111;
\tneighbor 198.18.0.2 as 65121;
\thold time 6;
\tkeepalive time 2;
\tconnect retry time 1;
\tipv4 {
\t\timport all;
\t\texport filter cloud58_vips_out;
\t\tnext hop self;
\t\tgateway direct;
\t};
}
"""

OPTIONS = {"hold": 6, "keepalive": 2, "connect_retry": 1, "bfd": False}


def test_bird_config_announces_the_vips_with_realservers_to_each_tor():
    assert bird_config(LVS, "d1", BGP, options=OPTIONS) == EXPECTED


def test_an_empty_healthy_set_leaves_an_empty_static_protocol_and_the_same_sessions():
    text = bird_config(LVS, "d1", BGP, healthy=[], options=OPTIONS)
    assert text == EXPECTED.replace(
        "\troute 198.18.2.1/32 blackhole;\n\troute 198.18.2.10/32 blackhole;\n", ""
    )


def test_a_director_without_local_addresses_announces_its_vips_alone():
    lvs = {
        **LVS,
        "directors": {**LVS["directors"], "d1": {**LVS["directors"]["d1"], "local_addresses": None}},
    }
    text = bird_config(lvs, "d1", BGP, options=OPTIONS)
    local = EXPECTED[EXPECTED.index("# The local addresses") : EXPECTED.index("filter cloud58_vips_out")]
    assert text == EXPECTED.replace(local, "").replace(
        '\tif proto = "cloud58_local_addresses" && net = 198.18.2.32/28 then accept;\n', ""
    )


@pytest.mark.parametrize(
    ("healthy", "realservers", "expected"),
    [
        (None, None, ["198.18.2.1", "198.18.2.10"]),
        (
            None,
            {"idle": [{"address": "198.18.5.9", "port": 80}]},
            ["198.18.2.1", "198.18.2.10", "198.18.2.20"],
        ),
        (None, {"web": []}, ["198.18.2.1"]),
        (["198.18.2.20", "198.18.2.1"], None, ["198.18.2.1", "198.18.2.20"]),
        ([], None, []),
    ],
    ids=["plan-realservers", "override-adds", "override-empties", "healthy-set", "nothing-healthy"],
)
def test_announced_vips(healthy, realservers, expected):
    assert announced_vips(LVS, "d1", healthy, realservers) == expected


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        (
            {"healthy": ["198.18.2.30"]},
            "healthy: 198.18.2.30 is not a VIP of director 'd1' "
            "(its VIPs: 198.18.2.1 (api), 198.18.2.10 (web), 198.18.2.20 (idle))",
        ),
        ({"healthy": ["web"]}, "healthy: 'web' is not an IPv4 address"),
        (
            {"healthy": ["198.18.2.30"], "healthy_source": "/run/h.json"},
            "/run/h.json: 198.18.2.30 is not a VIP of director 'd1' "
            "(its VIPs: 198.18.2.1 (api), 198.18.2.10 (web), 198.18.2.20 (idle))",
        ),
        ({"healthy": "198.18.2.1"}, "healthy: '198.18.2.1' is not a list of VIP addresses"),
        ({"director": "d9"}, "director: 'd9' is not an LVS director of the plan (directors: d1, d2)"),
        (
            {"bgp": {"asn": 65111, "peers": []}},
            "hosts.d1.bgp: director 'd1' has no BGP peers (the ToRs of its rack)",
        ),
        ({"bgp": {"asn": "x", "peers": BGP["peers"]}}, "hosts.d1.bgp.asn: 'x' is not an AS number"),
        (
            {"bgp": {"asn": 65111, "peers": [{"name": "t", "address": "198.18.0.1", "asn": 0}]}},
            "hosts.d1.bgp.peers[0].asn: 0 is not an AS number",
        ),
        ({"options": {"hold": 0}}, "bgp_options.hold: 0 is not a positive number of seconds"),
        (
            {
                "lvs": {
                    **LVS,
                    "directors": {
                        **LVS["directors"],
                        "d1": {**LVS["directors"]["d1"], "local_addresses": {"cidr": "198.18.2.33/28"}},
                    },
                }
            },
            "lvs.directors.d1.local_addresses.cidr: '198.18.2.33/28' is not an IPv4 network",
        ),
    ],
    ids=[
        "foreign-vip",
        "not-an-address",
        "named-source",
        "not-a-list",
        "unknown-director",
        "no-peers",
        "bad-asn",
        "bad-peer-asn",
        "bad-timer",
        "bad-local-range",
    ],
)
def test_bad_input_is_named(kwargs, message):
    args = {"lvs": LVS, "director": "d1", "bgp": BGP, **kwargs}
    with pytest.raises(LvsError) as info:
        bird_config(**args)
    assert str(info.value) == message


@pytest.mark.parametrize(
    ("text", "result"),
    [
        ('{"healthy_vips": ["198.18.2.10", "198.18.2.1"]}', ["198.18.2.10", "198.18.2.1"]),
        ('{"healthy_vips": []}', []),
    ],
    ids=["two", "none"],
)
def test_healthy_file(text, result):
    assert healthy_from_json(text, "/run/cloud58/lvs-healthy.json") == result


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            "{",
            "/run/h.json: not JSON (Expecting property name enclosed in double quotes: "
            "line 1 column 2 (char 1))",
        ),
        (
            '["198.18.2.1"]',
            "/run/h.json: expected a mapping with a list healthy_vips, got '[\"198.18.2.1\"]'",
        ),
        ('{"healthy_vips": ["x"]}', "/run/h.json: healthy_vips: 'x' is not an IPv4 address"),
    ],
    ids=["not-json", "not-a-mapping", "bad-address"],
)
def test_bad_healthy_file_is_named(text, message):
    with pytest.raises(LvsError) as info:
        healthy_from_json(text, "/run/h.json")
    assert str(info.value) == message
