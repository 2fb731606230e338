"""The full-NAT data plane in nftables: desired state, ruleset text, element difference."""

from __future__ import annotations

import copy

import pytest

from ansible_collections.cloud58.platform.plugins.module_utils.lvs.fullnat import (
    LvsError,
    director_state,
    element_changes,
    element_commands,
    read_table,
    render_ruleset,
)

LVS = {
    "directors": {
        "d1": {
            "name": "d1",
            "vips": ["web", "api"],
            "local_addresses": {
                "cidr": "198.18.2.32/30",
                "first": "198.18.2.32",
                "last": "198.18.2.33",
                "count": 2,
            },
        },
        "d2": {"name": "d2", "vips": ["other"], "local_addresses": None},
    },
    "vips": {
        "web": {
            "name": "web",
            "address": "198.18.2.10",
            "ports": [80, 443],
            "directors": ["d1"],
            "real_servers": [],
        },
        "api": {
            "name": "api",
            "address": "198.18.2.1",
            "ports": [6443],
            "directors": ["d1"],
            "real_servers": [
                {"name": "m2", "address": "198.18.0.75", "port": 6443},
                {"name": "m1", "address": "198.18.0.11", "port": 6443},
            ],
        },
        "other": {
            "name": "other",
            "address": "198.18.2.20",
            "ports": [80],
            "directors": ["d2"],
            "real_servers": [],
        },
    },
}

WEB = [
    {"address": "198.18.9.3", "port": 8080, "vip_port": 80},
    {"address": "198.18.9.2", "port": 8080, "vip_port": 80},
]

RULESET = """\
table ip cloud58_fullnat {
\tset vips {
\t\ttype ipv4_addr
\t\telements = { 198.18.2.1,
\t\t\t     198.18.2.10 }
\t}

\tmap realservers {
\t\ttypeof ip daddr . tcp dport . numgen inc mod 4 : ip daddr . tcp dport
\t\telements = { 198.18.2.1 . 6443 . 0 : 198.18.0.11 . 6443,
\t\t\t     198.18.2.1 . 6443 . 1 : 198.18.0.75 . 6443,
\t\t\t     198.18.2.1 . 6443 . 2 : 198.18.0.11 . 6443,
\t\t\t     198.18.2.1 . 6443 . 3 : 198.18.0.75 . 6443,
\t\t\t     198.18.2.10 . 80 . 0 : 198.18.9.2 . 8080,
\t\t\t     198.18.2.10 . 80 . 1 : 198.18.9.3 . 8080,
\t\t\t     198.18.2.10 . 80 . 2 : 198.18.9.2 . 8080,
\t\t\t     198.18.2.10 . 80 . 3 : 198.18.9.3 . 8080 }
\t}

\tmap local_addresses {
\t\ttypeof numgen inc mod 4 : ip saddr
\t\telements = { 0 : 198.18.2.32,
\t\t\t     1 : 198.18.2.33,
\t\t\t     2 : 198.18.2.32,
\t\t\t     3 : 198.18.2.33 }
\t}

\tchain prerouting {
\t\ttype nat hook prerouting priority dstnat; policy accept;
\t\t{dnat}
\t}

\tchain postrouting {
\t\ttype nat hook postrouting priority srcnat; policy accept;
\t\t{snat}
\t}
}
"""


SNAT = (
    "ct status dnat ct original ip daddr @vips"
    " snat ip to jhash ip saddr . tcp sport mod 4 seed 0xc1058 map @local_addresses"
)


@pytest.mark.parametrize(
    ("scheduler", "pick"),
    [
        pytest.param("rr", "numgen inc mod 4", id="rr"),
        pytest.param("random", "numgen random mod 4", id="random"),
        pytest.param("sh", "jhash ip saddr mod 4 seed 0xc1058", id="sh"),
    ],
)
def test_ruleset_of_a_director(scheduler, pick):
    state = director_state(LVS, "d1", {"web": WEB}, scheduler, 4)
    dnat = (
        f"ip daddr @vips dnat ip to ip daddr . tcp dport . {pick} map @realservers"
        f' comment "cloud58-fullnat v1 scheduler={scheduler} slots=4"'
    )
    expected = RULESET.replace("{dnat}", dnat).replace("{snat}", SNAT)
    assert render_ruleset(state) == expected


def test_ruleset_without_realservers_has_no_empty_element_list():
    state = director_state(LVS, "d1", {"api": []}, "rr", 2)
    assert render_ruleset(state, "t").splitlines()[:12] == [
        "table ip t {",
        "\tset vips {",
        "\t\ttype ipv4_addr",
        "\t\telements = { 198.18.2.1,",
        "\t\t\t     198.18.2.10 }",
        "\t}",
        "",
        "\tmap realservers {",
        "\t\ttypeof ip daddr . tcp dport . numgen inc mod 2 : ip daddr . tcp dport",
        "\t}",
        "",
        "\tmap local_addresses {",
    ]


def test_state_deals_slots_round_robin_in_address_order():
    state = director_state(LVS, "d1", {"web": WEB[:1], "api": []}, "sh", 3)
    assert state == {
        "scheduler": "sh",
        "slots": 3,
        "elements": {
            "vips": {"198.18.2.1": None, "198.18.2.10": None},
            "realservers": {
                "198.18.2.10 . 80 . 0": "198.18.9.3 . 8080",
                "198.18.2.10 . 80 . 1": "198.18.9.3 . 8080",
                "198.18.2.10 . 80 . 2": "198.18.9.3 . 8080",
            },
            "local_addresses": {"0": "198.18.2.32", "1": "198.18.2.33", "2": "198.18.2.32"},
        },
    }


@pytest.mark.parametrize(
    ("director", "realservers", "scheduler", "slots", "message"),
    [
        pytest.param(
            "d9",
            None,
            "rr",
            4,
            "director: 'd9' is not an LVS director of the plan (directors: d1, d2)",
            id="director",
        ),
        pytest.param(
            "d2",
            None,
            "rr",
            4,
            "lvs.directors.d2.local_addresses: director 'd2' has no local-address range in the plan"
            " (set networks.local_address_pool and lvs.local_addresses_per_director)",
            id="no-local-addresses",
        ),
        pytest.param(
            "d1",
            {"nope": []},
            "rr",
            4,
            "realservers: VIP 'nope' is not in the plan's lvs.vips (VIPs: api, other, web)",
            id="vip-outside-plan",
        ),
        pytest.param(
            "d1",
            {"other": []},
            "rr",
            4,
            "realservers: VIP 'other' is not assigned to director 'd1' (its directors: d2)",
            id="vip-of-another-director",
        ),
        pytest.param(
            "d1",
            {"web": [{"address": "198.18.9.x", "port": 80}]},
            "rr",
            4,
            "realservers.web[0].address: '198.18.9.x' is not an IPv4 address",
            id="address",
        ),
        pytest.param(
            "d1",
            {"web": [{"address": "198.18.9.2", "port": 0}]},
            "rr",
            4,
            "realservers.web[0].port: 0 is not a TCP port (1-65535)",
            id="port",
        ),
        pytest.param(
            "d1",
            {"web": [{"address": "198.18.9.2", "port": 8080}]},
            "rr",
            4,
            "realservers.web[0].vip_port: 8080 is not a port of VIP 'web' (ports: 80, 443)",
            id="vip-port",
        ),
        pytest.param(
            "d1",
            {"web": [WEB[0], WEB[0]]},
            "rr",
            4,
            "realservers.web[1]: 198.18.9.3:8080 is listed twice for web:80",
            id="duplicate",
        ),
        pytest.param(
            "d1",
            {"web": "198.18.9.2"},
            "rr",
            4,
            "realservers.web: '198.18.9.2' is not a list of realservers",
            id="not-a-list",
        ),
        pytest.param(
            "d1",
            {"web": WEB},
            "rr",
            1,
            "slots: 1 is fewer than the 2 local addresses of 'd1'",
            id="slots-laddr",
        ),
        pytest.param(
            "d1",
            {"web": [*WEB, {"address": "198.18.9.4", "port": 8080, "vip_port": 80}]},
            "rr",
            2,
            "slots: 2 is fewer than the 3 realservers of web:80",
            id="slots-rs",
        ),
        pytest.param("d1", None, "wrr", 4, "scheduler: 'wrr' is not one of rr, random, sh", id="scheduler"),
        pytest.param(
            "d1", None, "rr", 0, "slots: 0 is not a number of slots between 1 and 65536", id="slots-zero"
        ),
    ],
)
def test_bad_input_names_field_and_value(director, realservers, scheduler, slots, message):
    with pytest.raises(LvsError) as e:
        director_state(LVS, director, realservers, scheduler, slots)
    assert str(e.value) == message


def test_plan_real_servers_are_the_default():
    lvs = copy.deepcopy(LVS)
    state = director_state(lvs, "d1", None, "rr", 2)
    assert state["elements"]["realservers"] == {
        "198.18.2.1 . 6443 . 0": "198.18.0.11 . 6443",
        "198.18.2.1 . 6443 . 1": "198.18.0.75 . 6443",
    }


BEFORE = {
    "vips": {"198.18.2.10": None},
    "realservers": {"198.18.2.10 . 80 . 0": "198.18.9.2 . 8080", "198.18.2.10 . 80 . 1": "198.18.9.3 . 8080"},
    "local_addresses": {"0": "198.18.2.32", "1": "198.18.2.33"},
}


@pytest.mark.parametrize(
    ("after", "commands"),
    [
        pytest.param(BEFORE, "", id="unchanged"),
        pytest.param(
            {
                **BEFORE,
                "realservers": {
                    "198.18.2.10 . 80 . 0": "198.18.9.2 . 8080",
                    "198.18.2.10 . 80 . 1": "198.18.9.2 . 8080",
                },
            },
            "delete element ip t realservers { 198.18.2.10 . 80 . 1 }\n"
            "add element ip t realservers { 198.18.2.10 . 80 . 1 : 198.18.9.2 . 8080 }\n",
            id="realserver-removed",
        ),
        pytest.param(
            {
                "vips": {"198.18.2.10": None, "198.18.2.11": None},
                "realservers": {},
                "local_addresses": BEFORE["local_addresses"],
            },
            "delete element ip t realservers { 198.18.2.10 . 80 . 0, 198.18.2.10 . 80 . 1 }\n"
            "add element ip t vips { 198.18.2.11 }\n",
            id="vip-added-realservers-emptied",
        ),
        pytest.param(
            {**BEFORE, "vips": {}, "local_addresses": {"0": "198.18.2.32", "1": "198.18.2.32"}},
            "delete element ip t vips { 198.18.2.10 }\n"
            "delete element ip t local_addresses { 1 }\n"
            "add element ip t local_addresses { 1 : 198.18.2.32 }\n",
            id="vip-removed-local-address-changed",
        ),
    ],
)
def test_element_commands(after, commands):
    assert element_commands(element_changes(BEFORE, after), "t") == commands


def test_element_changes_of_a_changed_value_delete_and_add():
    after = {**BEFORE, "local_addresses": {"0": "198.18.2.32", "1": "198.18.2.34"}}
    assert element_changes(BEFORE, after) == {
        "local_addresses": {"delete": {"1": "198.18.2.33"}, "add": {"1": "198.18.2.34"}}
    }


NFT_JSON = {
    "nftables": [
        {"metainfo": {"version": "1.0.6", "json_schema_version": 1}},
        {"table": {"family": "ip", "name": "t", "handle": 7}},
        {
            "set": {
                "family": "ip",
                "name": "vips",
                "table": "t",
                "type": "ipv4_addr",
                "handle": 1,
                "elem": ["198.18.2.10", "198.18.2.9"],
            }
        },
        {
            "map": {
                "family": "ip",
                "name": "realservers",
                "table": "t",
                "handle": 2,
                "elem": [
                    [{"concat": ["198.18.2.10", 80, 10]}, {"concat": ["198.18.9.3", 8080]}],
                    [{"concat": ["198.18.2.10", 80, 2]}, {"concat": ["198.18.9.2", 8080]}],
                ],
            }
        },
        {"map": {"family": "ip", "name": "local_addresses", "table": "t", "handle": 3}},
        {
            "rule": {
                "family": "ip",
                "table": "t",
                "chain": "prerouting",
                "handle": 4,
                "comment": "cloud58-fullnat v1 scheduler=rr slots=4",
            }
        },
        {"rule": {"family": "ip", "table": "t", "chain": "postrouting", "handle": 5}},
    ]
}


def test_read_table_from_nft_json_in_ruleset_order():
    assert read_table(NFT_JSON, "t") == {
        "structure": "cloud58-fullnat v1 scheduler=rr slots=4",
        "handle": 7,
        "elements": {
            "vips": {"198.18.2.9": None, "198.18.2.10": None},
            "realservers": {
                "198.18.2.10 . 80 . 2": "198.18.9.2 . 8080",
                "198.18.2.10 . 80 . 10": "198.18.9.3 . 8080",
            },
            "local_addresses": {},
        },
    }


def test_read_table_rejects_an_unknown_element_form():
    data = {
        "nftables": [
            {"set": {"name": "vips", "table": "t", "elem": [{"prefix": {"addr": "198.18.2.0", "len": 24}}]}}
        ]
    }
    with pytest.raises(LvsError) as e:
        read_table(data, "t")
    assert (
        str(e.value) == "table t set vips: unexpected element {'prefix': {'addr': '198.18.2.0', 'len': 24}}"
        " in the output of nft -j"
    )
