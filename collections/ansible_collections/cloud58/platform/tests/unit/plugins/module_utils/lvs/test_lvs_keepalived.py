"""The fnat data plane: keepalived text for a director, the DPVS keyword schema, the NAT subset."""

from __future__ import annotations

import pytest

from ansible_collections.cloud58.platform.plugins.module_utils.lvs.keepalived import (
    address_runs,
    nat_subset,
    render_config,
)
from ansible_collections.cloud58.platform.plugins.module_utils.lvs.keepalived_schema import check_config
from ansible_collections.cloud58.platform.plugins.module_utils.lvs.plan import LvsError

LVS = {
    "directors": {
        "d1": {
            "name": "d1",
            "vips": ["web", "api"],
            "local_addresses": {
                "cidr": "198.18.2.32/30",
                "first": "198.18.2.32",
                "last": "198.18.2.35",
                "count": 4,
            },
        },
        "d2": {"name": "d2", "vips": ["web"], "local_addresses": None},
    },
    "vips": {
        "web": {
            "name": "web",
            "address": "198.18.2.10",
            "ports": [80, 443],
            "directors": ["d1", "d2"],
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
    },
}

WEB = {"web": [{"address": "198.18.9.3", "port": 8080, "vip_port": 80}]}

HEADER = """\
# Managed by cloud58.platform.lvs_director (fnat data plane) for d1; local changes are overwritten.
# DPVS keepalived: lb_kind FNAT, local_address_group and syn_proxy are not stock keepalived.
"""

CHECK = """\
        TCP_CHECK {
            connect_timeout 3
            retry 3
            delay_before_retry 3
            delay_loop 6
        }
"""

# the plan's realservers only: web has none, so it gets no virtual_server
DEFAULT = (
    HEADER
    + """
local_address_group laddr_d1 {
    198.18.2.32-35 dpdk0
}

virtual_server 198.18.2.1 6443 {
    lb_algo rr
    lb_kind FNAT
    protocol TCP
    laddr_group_name laddr_d1
    real_server 198.18.0.11 6443 {
"""
    + CHECK
    + """\
    }
    real_server 198.18.0.75 6443 {
"""
    + CHECK
    + """\
    }
}
"""
)

TUNED = (
    HEADER
    + """
local_address_group laddr_d1 {
    198.18.2.32-35 eth1
}

virtual_server 198.18.2.1 6443 {
    lb_algo conhash
    lb_kind FNAT
    protocol TCP
    laddr_group_name laddr_d1
    syn_proxy
    establish_timeout 90
    ha_suspend
    persistence_timeout 60
    real_server 198.18.0.11 6443 {
        TCP_CHECK {
            connect_timeout 5
            retry 1
            delay_before_retry 2
            delay_loop 10
        }
    }
    real_server 198.18.0.75 6443 {
        TCP_CHECK {
            connect_timeout 5
            retry 1
            delay_before_retry 2
            delay_loop 10
        }
    }
}

virtual_server 198.18.2.10 80 {
    lb_algo conhash
    lb_kind FNAT
    protocol TCP
    laddr_group_name laddr_d1
    syn_proxy
    establish_timeout 90
    ha_suspend
    persistence_timeout 60
    real_server 198.18.9.3 8080 {
        TCP_CHECK {
            connect_timeout 5
            retry 1
            delay_before_retry 2
            delay_loop 10
        }
    }
}
"""
)

TUNED_OPTIONS = {
    "lb_algo": "conhash",
    "syn_proxy": True,
    "laddr_interface": "eth1",
    "connect_timeout": 5,
    "retry": 1,
    "delay_before_retry": 2,
    "delay_loop": 10,
    "virtual_server_options": {"persistence_timeout": 60, "ha_suspend": None, "establish_timeout": 90},
}


@pytest.mark.parametrize(
    ("realservers", "options", "expected"),
    [
        pytest.param(None, None, DEFAULT, id="plan-realservers-defaults"),
        pytest.param(WEB, TUNED_OPTIONS, TUNED, id="override-syn-proxy-extra-options"),
    ],
)
def test_render_config(realservers, options, expected):
    assert render_config(LVS, "d1", realservers, options) == expected


@pytest.mark.parametrize(
    ("args", "message"),
    [
        pytest.param(
            ("d9", None, None),
            "director: 'd9' is not an LVS director of the plan (directors: d1, d2)",
            id="unknown-director",
        ),
        pytest.param(
            ("d2", None, None),
            "lvs.directors.d2.local_addresses: director 'd2' has no local-address range in the plan "
            "(set networks.local_address_pool and lvs.local_addresses_per_director)",
            id="no-local-addresses",
        ),
        pytest.param(
            ("d1", {"web": [{"address": "198.18.9.3", "port": 8080, "vip_port": 81}]}, None),
            "realservers.web[0].vip_port: 81 is not a port of VIP 'web' (ports: 80, 443)",
            id="bad-vip-port",
        ),
        pytest.param(
            ("d1", None, {"syn_proxi": True}),
            "options: syn_proxi not one of connect_timeout, delay_before_retry, delay_loop, laddr_interface, "
            "lb_algo, retry, syn_proxy, virtual_server_options",
            id="unknown-option",
        ),
        pytest.param(
            ("d1", None, {"virtual_server_options": ["ha_suspend"]}),
            "virtual_server_options: ['ha_suspend'] is not a mapping of keyword to value",
            id="options-not-a-mapping",
        ),
    ],
)
def test_render_config_errors(args, message):
    director, realservers, options = args
    with pytest.raises(LvsError) as e:
        render_config(LVS, director, realservers, options)
    assert str(e.value) == message


@pytest.mark.parametrize(
    ("addresses", "entries"),
    [
        pytest.param(["198.18.2.32"], ["198.18.2.32"], id="one"),
        pytest.param(["198.18.2.32", "198.18.2.33"], ["198.18.2.32-33"], id="two"),
        pytest.param(["198.18.2.32", "198.18.2.34"], ["198.18.2.32", "198.18.2.34"], id="gap"),
        pytest.param(
            ["198.18.2.253", "198.18.2.254", "198.18.2.255", "198.18.3.0", "198.18.3.1"],
            ["198.18.2.253-254", "198.18.2.255", "198.18.3.0-1"],
            id="across-a-24-and-255",
        ),
    ],
)
def test_address_runs(addresses, entries):
    assert address_runs(addresses) == entries


def test_rendered_configs_pass_the_schema():
    assert (check_config(DEFAULT), check_config(TUNED)) == ([], [])


# Each case changes one line of DEFAULT (found by its text) and names the exact problems.
@pytest.mark.parametrize(
    ("old", "new", "problems"),
    [
        pytest.param(
            "    lb_kind FNAT\n",
            "    lb_kinds FNAT\n",
            [
                "keepalived.conf:10: virtual_server 198.18.2.1 6443: unknown keyword 'lb_kinds' (did you "
                "mean 'lb_kind'?)"
            ],
            id="unknown-keyword-did-you-mean",
        ),
        pytest.param(
            "    protocol TCP\n",
            "    frobnicate\n",
            ["keepalived.conf:11: virtual_server 198.18.2.1 6443: unknown keyword 'frobnicate'"],
            id="unknown-keyword",
        ),
        pytest.param(
            "            retry 3\n            delay_before_retry 3\n            delay_loop 6\n        }\n    "
            "}\n    real_server 198.18.0.75",
            "            retry 3\n            delay_before_retry 3\n            delay_loop 6\n        }\n"
            "        laddr_group_name laddr_d1\n    }\n    real_server 198.18.0.75",
            [
                "keepalived.conf:20: real_server 198.18.0.11 6443: 'laddr_group_name' belongs in "
                "virtual_server, not in real_server"
            ],
            id="keyword-in-the-wrong-block",
        ),
        pytest.param(
            "    lb_algo rr\n",
            "    lb_algo\n",
            ["keepalived.conf:9: virtual_server 198.18.2.1 6443: 'lb_algo' needs <scheduler>, got nothing"],
            id="missing-argument",
        ),
        pytest.param(
            "    lb_kind FNAT\n",
            "    lb_kind FXAT\n",
            [
                "keepalived.conf:10: virtual_server 198.18.2.1 6443: 'lb_kind' 'FXAT' is not a forwarding "
                "method "
                "(NAT, DR, TUN, FNAT, SNAT)"
            ],
            id="bad-value",
        ),
        pytest.param(
            "    laddr_group_name laddr_d1\n",
            "    laddr_group_name laddr_d1\n    syn_proxy on\n",
            ["keepalived.conf:13: virtual_server 198.18.2.1 6443: 'syn_proxy' takes no argument, got 'on'"],
            id="flag-with-an-argument",
        ),
        pytest.param(
            "    198.18.2.32-35 dpdk0\n",
            "    198.18.2.32-35\n",
            [
                "keepalived.conf:5: local_address_group laddr_d1: entry '198.18.2.32-35' is not "
                "'<IPv4 address>[-<last byte>] <interface>'"
            ],
            id="local-address-without-interface",
        ),
        pytest.param(
            "    198.18.2.32-35 dpdk0\n",
            "    198.18.2.32-31 dpdk0\n",
            [
                "keepalived.conf:5: local_address_group laddr_d1: entry '198.18.2.32-31': the range's last "
                "byte "
                "must be above 32 and at most 254"
            ],
            id="local-address-range-backwards",
        ),
        pytest.param(
            "            connect_timeout 3\n",
            "            connect_timeout 0.5\n",
            [
                "keepalived.conf:15: TCP_CHECK: 'connect_timeout' '0.5' is not a number of seconds (at least "
                "1)",
                "keepalived.conf:23: TCP_CHECK: 'connect_timeout' '0.5' is not a number of seconds (at least "
                "1)",
            ],
            id="timer-too-small-in-both-checks",
        ),
        pytest.param(
            "        TCP_CHECK {\n            connect_timeout 3\n            retry 3\n            "
            "delay_before_retry 3\n"
            "            delay_loop 6\n        }\n    }\n    real_server 198.18.0.75 6443 {\n",
            "        HTTP_GET {\n        }\n    }\n    real_server 198.18.0.75 6443 {\n",
            [
                "keepalived.conf:14: real_server 198.18.0.11 6443: 'HTTP_GET' is a block of DPVS keepalived "
                "whose contents this schema does not cover"
            ],
            id="uncovered-checker",
        ),
        pytest.param(
            "    real_server 198.18.0.11 6443 {\n",
            "    real_server 198.18.0.11 http {\n",
            [
                "keepalived.conf:13: virtual_server 198.18.2.1 6443: 'real_server' 'http' is not a port "
                "(1-65535)"
            ],
            id="bad-port",
        ),
        pytest.param(
            "virtual_server 198.18.2.1 6443 {\n",
            "virtual_server 198.18.2.1 6443\n",
            # the lines of the block that was never opened land on the top level
            [
                "keepalived.conf:8: top level: 'virtual_server' opens a block: end the line with '{'",
                "keepalived.conf:9: top level: 'lb_algo' belongs in virtual_server, not in top level",
                "keepalived.conf:10: top level: 'lb_kind' belongs in virtual_server, not in top level",
                "keepalived.conf:11: top level: 'protocol' belongs in virtual_server, not in top level",
                "keepalived.conf:12: top level: 'laddr_group_name' belongs in virtual_server, not in top "
                "level",
                "keepalived.conf:13: top level: 'real_server' belongs in virtual_server, not in top level",
                "keepalived.conf:21: top level: 'real_server' belongs in virtual_server, not in top level",
                "keepalived.conf:29: top level: '}' closes no block",
            ],
            id="block-not-opened",
        ),
        pytest.param(
            "    lb_algo rr\n",
            "    lb_algo rr {\n",
            # the rest of the file falls into the block of lb_algo
            [
                "keepalived.conf:8: virtual_server 198.18.2.1 6443: the block is not closed ('}' missing)",
                "keepalived.conf:8: top level: 'virtual_server' has no real_server (keepalived ignores it)",
                "keepalived.conf:9: virtual_server 198.18.2.1 6443: 'lb_algo' does not open a block",
            ],
            id="block-on-a-plain-keyword",
        ),
    ],
)
def test_check_config_problems(old, new, problems):
    assert DEFAULT.count(old) >= 1
    assert check_config(DEFAULT.replace(old, new)) == problems


def test_virtual_server_without_real_server_is_an_error():
    text = "virtual_server 198.18.2.10 80 {\n    lb_algo rr\n    lb_kind FNAT\n}\n"
    assert check_config(text, "/etc/keepalived/keepalived.conf") == [
        "/etc/keepalived/keepalived.conf:1: top level: 'virtual_server' has no real_server (keepalived "
        "ignores it)"
    ]


NAT_TUNED = """\
virtual_server 198.18.2.1 6443 {
    lb_algo sh
    lb_kind NAT
    protocol TCP
    ha_suspend
    persistence_timeout 60
    real_server 198.18.0.11 6443 {
        TCP_CHECK {
            connect_timeout 5
            retry 1
            delay_before_retry 2
            delay_loop 10
        }
    }
    real_server 198.18.0.75 6443 {
        TCP_CHECK {
            connect_timeout 5
            retry 1
            delay_before_retry 2
            delay_loop 10
        }
    }
}

virtual_server 198.18.2.10 80 {
    lb_algo sh
    lb_kind NAT
    protocol TCP
    ha_suspend
    persistence_timeout 60
    real_server 198.18.9.3 8080 {
        TCP_CHECK {
            connect_timeout 5
            retry 1
            delay_before_retry 2
            delay_loop 10
        }
    }
}
"""


def test_nat_subset_drops_dpvs_keywords_and_maps_values():
    assert nat_subset(TUNED) == NAT_TUNED


def test_nat_subset_refuses_a_config_that_breaks_the_schema():
    with pytest.raises(LvsError) as e:
        nat_subset(DEFAULT.replace("    protocol TCP\n", "    protocol TCP\n    synproxy\n"), "d1.conf")
    assert str(e.value) == (
        "d1.conf:12: virtual_server 198.18.2.1 6443: unknown keyword 'synproxy' (did you mean 'syn_proxy'?)"
    )


RS = "    real_server 198.18.0.11 6443 {\n    }\n"


# Small files of their own: the reading of lines (comments, quotes) and the virtual_server forms.
@pytest.mark.parametrize(
    ("text", "problems"),
    [
        pytest.param(
            "# comment\n! comment too\nvirtual_server 198.18.2.1 6443 {  # trailing comment\n"
            "    real_server 198.18.0.11 6443 {\n"
            '        notify_up "/usr/local/bin/up --vip 198.18.2.1"\n'
            "    }\n}\n",
            [],
            id="comments-and-quoted-text",
        ),
        pytest.param("virtual_server fwmark 7 {\n" + RS + "}\n", [], id="fwmark"),
        pytest.param(
            "virtual_server fwmark seven {\n" + RS + "}\n",
            ["k.conf:1: top level: 'seven' is not a mark (1-4294967295)"],
            id="fwmark-not-a-number",
        ),
        pytest.param("virtual_server group web {\n" + RS + "}\n", [], id="group"),
        pytest.param(
            "virtual_server web.example 80 {\n" + RS + "}\n",
            ["k.conf:1: top level: 'web.example' is not an IP address (nor fwmark or group)"],
            id="name-instead-of-address",
        ),
        pytest.param(
            "virtual_server 198.18.2.1 6443 {\n    lb_algo rr wrr\n" + RS + "}\n",
            ["k.conf:2: virtual_server 198.18.2.1 6443: 'lb_algo' takes at most <scheduler>, got 'rr wrr'"],
            id="too-many-arguments",
        ),
        pytest.param(
            "virtual_server 198.18.2.1 6443 {\n    real_server 198.18.0.11 6443 {\n"
            "        connect_ip 198.18.0.12\n    }\n}\n",
            [
                "k.conf:3: real_server 198.18.0.11 6443: 'connect_ip' belongs in TCP_CHECK, "
                "not in real_server",
            ],
            id="checker-keyword-on-the-realserver",
        ),
        pytest.param(
            "virtual_server 198.18.2.1 6443 {\n    protocol tcp\n" + RS + "}\n}\n",
            ["k.conf:6: top level: '}' closes no block"],
            id="protocol-any-case-and-an-extra-brace",
        ),
        pytest.param(
            "virtual_server 198.18.2.1 6443 { lb_algo rr }\n",
            [
                "k.conf:1: top level: put one keyword on a line, '{' at its end and '}' on a line of its own",
            ],
            id="one-line-block",
        ),
    ],
)
def test_check_config_lines_and_virtual_server_forms(text, problems):
    assert check_config(text, "k.conf") == problems
