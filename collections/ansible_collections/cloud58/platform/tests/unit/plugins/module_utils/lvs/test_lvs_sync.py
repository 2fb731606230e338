"""Realservers from Kubernetes: Service selection, ready endpoints, the element transaction."""

from __future__ import annotations

import json

import pytest

from ansible_collections.cloud58.platform.plugins.module_utils.lvs.fullnat import director_state
from ansible_collections.cloud58.platform.plugins.module_utils.lvs.sync import (
    announcement,
    api_errors_text,
    prometheus_text,
    ready_endpoints,
    realservers,
    selected_services,
    stats_commands,
    stats_counters,
    stats_keys,
    stats_ruleset,
    update,
)

LVS = {
    "directors": {
        "d1": {
            "name": "d1",
            "vips": ["web", "api"],
            "local_addresses": {
                "cidr": "198.18.2.32/31",
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
            "real_servers": [{"name": "m1", "address": "198.18.0.11", "port": 6443}],
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


def service(name, *, vip=None, ports=(("http", 80),), namespace="shop", scheduler=None, protocol="TCP"):
    annotations = {}
    if vip is not None:
        annotations["lvs.cloud58.io/vip"] = vip
    if scheduler is not None:
        annotations["lvs.cloud58.io/scheduler"] = scheduler
    return {
        "metadata": {"namespace": namespace, "name": name, "annotations": annotations},
        "spec": {"ports": [{"name": n, "port": p, "protocol": protocol} for n, p in ports]},
    }


def endpoint(address, ready=True, terminating=None):
    conditions = {} if ready is None else {"ready": ready}
    if terminating is not None:
        conditions["terminating"] = terminating
    return {"addresses": [address], "conditions": conditions}


def endpoint_slice(
    service_name, endpoints, *, ports=(("http", 8080),), namespace="shop", name=None, address_type="IPv4"
):
    return {
        "metadata": {
            "namespace": namespace,
            "name": name or f"{service_name}-abcde",
            "labels": {"kubernetes.io/service-name": service_name},
        },
        "addressType": address_type,
        "endpoints": endpoints,
        "ports": [{"name": n, "port": p, "protocol": "TCP"} for n, p in ports],
    }


@pytest.mark.parametrize(
    ("services", "expected_claims", "expected_problems"),
    [
        pytest.param(
            [service("web", vip="web")],
            {"web": {"service": "shop/web", "ports": [(80, "http")]}},
            [],
            id="by-vip-name",
        ),
        pytest.param(
            [service("web", vip="198.18.2.10", ports=(("https", 443), ("http", 80)))],
            {"web": {"service": "shop/web", "ports": [(80, "http"), (443, "https")]}},
            [],
            id="by-address-ports-sorted",
        ),
        pytest.param([service("plain")], {}, [], id="not-annotated-ignored"),
        pytest.param([service("o", vip="other")], {}, [], id="other-directors-vip-ignored"),
        pytest.param(
            [service("web", vip="198.18.3.3")],
            {},
            [
                "Service shop/web: annotation lvs.cloud58.io/vip: '198.18.3.3' is not a VIP of the plan "
                "(VIPs: api, other, web)"
            ],
            id="unknown-vip",
        ),
        pytest.param(
            [service("web", vip="web", scheduler="sh")],
            {},
            [
                "Service shop/web: annotation lvs.cloud58.io/scheduler: 'sh' is not the scheduler of "
                "director 'd1' (rr); the Service is ignored"
            ],
            id="other-scheduler",
        ),
        pytest.param(
            [service("web", vip="web", scheduler="rr")],
            {"web": {"service": "shop/web", "ports": [(80, "http")]}},
            [],
            id="same-scheduler",
        ),
        pytest.param(
            [service("web2", vip="web", namespace="b"), service("web1", vip="web", namespace="a")],
            {"web": {"service": "a/web1", "ports": [(80, "http")]}},
            ["Service b/web2: annotation lvs.cloud58.io/vip: VIP 'web' is already claimed by Service a/web1"],
            id="claimed-twice-first-wins",
        ),
        pytest.param(
            [service("web", vip="web", ports=(("http", 80), ("admin", 9000)))],
            {"web": {"service": "shop/web", "ports": [(80, "http")]}},
            ["Service shop/web: port 9000 is not a port of VIP 'web' (ports: 80, 443); the port is ignored"],
            id="port-not-of-vip",
        ),
        pytest.param(
            [service("web", vip="web", protocol="UDP")],
            {"web": {"service": "shop/web", "ports": []}},
            [],
            id="udp-port-skipped",
        ),
    ],
)
def test_selected_services(services, expected_claims, expected_problems):
    assert selected_services(services, LVS, "d1", "rr") == (expected_claims, expected_problems)


@pytest.mark.parametrize(
    ("slices", "expected"),
    [
        pytest.param(
            [endpoint_slice("web", [endpoint("198.18.9.3"), endpoint("198.18.9.2")])],
            {"http": [("198.18.9.2", 8080), ("198.18.9.3", 8080)]},
            id="ready-sorted",
        ),
        pytest.param(
            [endpoint_slice("web", [endpoint("198.18.9.2", ready=None)])],
            {"http": [("198.18.9.2", 8080)]},
            id="unset-ready-counts-as-ready",
        ),
        pytest.param(
            [
                endpoint_slice(
                    "web",
                    [
                        endpoint("198.18.9.2"),
                        endpoint("198.18.9.3", ready=False),
                        endpoint("198.18.9.4", ready=True, terminating=True),
                    ],
                )
            ],
            {"http": [("198.18.9.2", 8080)]},
            id="not-ready-and-terminating-drained",
        ),
        pytest.param(
            [
                endpoint_slice("web", [endpoint("198.18.9.2")], name="a"),
                endpoint_slice("web", [endpoint("198.18.9.2"), endpoint("198.18.9.5")], name="b"),
            ],
            {"http": [("198.18.9.2", 8080), ("198.18.9.5", 8080)]},
            id="duplicates-across-slices-collapse",
        ),
        pytest.param(
            [
                endpoint_slice("web", [endpoint("198.18.9.2")], namespace="other"),
                endpoint_slice("api", [endpoint("198.18.9.3")]),
                endpoint_slice("web", [endpoint("fd00::1")], address_type="IPv6"),
            ],
            {},
            id="other-namespace-service-and-ipv6-ignored",
        ),
        pytest.param(
            [endpoint_slice("web", [endpoint("198.18.9.2")], ports=(("http", 8080), ("https", 8443)))],
            {"http": [("198.18.9.2", 8080)], "https": [("198.18.9.2", 8443)]},
            id="two-ports",
        ),
        pytest.param([endpoint_slice("web", [])], {}, id="no-endpoints"),
    ],
)
def test_ready_endpoints(slices, expected):
    assert ready_endpoints(slices, "shop/web") == expected


WEB_SVC = service("web", vip="web", ports=(("http", 80), ("https", 443)))
WEB_SLICE = endpoint_slice(
    "web",
    [endpoint("198.18.9.3"), endpoint("198.18.9.2"), endpoint("198.18.9.4", ready=False)],
    ports=(("http", 8080), ("https", 8443)),
)
WEB_PREVIOUS = {"web": [{"address": "198.18.9.7", "port": 8080, "vip_port": 80}]}


@pytest.mark.parametrize(
    ("services", "slices", "slots", "previous", "expected"),
    [
        pytest.param(
            [WEB_SVC],
            [WEB_SLICE],
            4,
            None,
            (
                {
                    "web": [
                        {"address": "198.18.9.2", "port": 8080, "vip_port": 80},
                        {"address": "198.18.9.3", "port": 8080, "vip_port": 80},
                        {"address": "198.18.9.2", "port": 8443, "vip_port": 443},
                        {"address": "198.18.9.3", "port": 8443, "vip_port": 443},
                    ]
                },
                [],
            ),
            id="ready-endpoints-by-vip-port",
        ),
        pytest.param(
            [WEB_SVC],
            [],
            4,
            WEB_PREVIOUS,
            ({"web": []}, []),
            id="no-ready-endpoint-empties-the-vip",
        ),
        pytest.param([], [WEB_SLICE], 4, WEB_PREVIOUS, ({}, []), id="service-gone-back-to-plan"),
        pytest.param(
            [WEB_SVC],
            [WEB_SLICE],
            1,
            WEB_PREVIOUS,
            (
                WEB_PREVIOUS,
                [
                    "Service shop/web (VIP web): 2 ready endpoints for VIP port 80 are more than the "
                    "1 slots; VIP web keeps its realservers"
                ],
            ),
            id="too-many-keeps-previous",
        ),
        pytest.param(
            [WEB_SVC],
            [endpoint_slice("web", [endpoint("not-an-address")])],
            4,
            WEB_PREVIOUS,
            (
                WEB_PREVIOUS,
                [
                    "Service shop/web (VIP web) endpoint [0]: 'not-an-address' is not an IPv4 address; "
                    "VIP web keeps its realservers"
                ],
            ),
            id="bad-address-keeps-previous",
        ),
        pytest.param(
            [WEB_SVC],
            [endpoint_slice("web", [endpoint("not-an-address")])],
            4,
            None,
            (
                {},
                [
                    "Service shop/web (VIP web) endpoint [0]: 'not-an-address' is not an IPv4 address; "
                    "VIP web keeps its realservers"
                ],
            ),
            id="bad-address-first-time-plan",
        ),
    ],
)
def test_realservers(services, slices, slots, previous, expected):
    assert realservers(services, slices, LVS, "d1", slots=slots, previous=previous) == expected


@pytest.mark.parametrize(
    ("endpoints", "reused"),
    [
        pytest.param([endpoint("198.18.9.2")], True, id="same-endpoints-not-checked-again"),
        pytest.param([endpoint("198.18.9.2"), endpoint("198.18.9.3")], False, id="changed-computed-again"),
    ],
)
def test_realservers_reuse_previous(endpoints, reused):
    previous = {"web": [{"address": "198.18.9.2", "vip_port": 80, "port": 8080}]}
    slices = [endpoint_slice("web", endpoints)]
    overrides, _problems = realservers([WEB_SVC], slices, LVS, "d1", previous=previous)
    assert (overrides["web"] is previous["web"]) == reused


def _before(wanted):
    return {"wanted": wanted, "elements": director_state(LVS, "d1", wanted, "rr", 2)["elements"]}


RS2 = {"address": "198.18.9.2", "port": 8080, "vip_port": 80}
RS3 = {"address": "198.18.9.3", "port": 8080, "vip_port": 80}


@pytest.mark.parametrize(
    ("before", "after", "expected"),
    [
        pytest.param(
            {"web": [RS2]},
            {"web": [RS2, RS3]},
            (
                "delete element ip t realservers { 198.18.2.10 . 80 . 1 }\n"
                "add element ip t realservers { 198.18.2.10 . 80 . 1 : 198.18.9.3 . 8080 }\n",
                {"delete": 1, "add": 1},
            ),
            id="scale-up-moves-one-slot",
        ),
        pytest.param(
            {"web": [RS2, RS3]},
            {"web": [RS3]},
            (
                "delete element ip t realservers { 198.18.2.10 . 80 . 0 }\n"
                "add element ip t realservers { 198.18.2.10 . 80 . 0 : 198.18.9.3 . 8080 }\n",
                {"delete": 1, "add": 1},
            ),
            id="drain-one-realserver",
        ),
        pytest.param(
            {"web": [RS2]},
            {"web": []},
            (
                "delete element ip t realservers { 198.18.2.10 . 80 . 0, 198.18.2.10 . 80 . 1 }\n",
                {"delete": 2, "add": 0},
            ),
            id="last-realserver-gone",
        ),
        pytest.param(
            {"web": [RS2], "api": [{"address": "198.18.0.12", "port": 6443}]},
            {"web": [RS2]},
            (
                "delete element ip t realservers { 198.18.2.1 . 6443 . 0, 198.18.2.1 . 6443 . 1 }\n"
                "add element ip t realservers { 198.18.2.1 . 6443 . 0 : 198.18.0.11 . 6443, "
                "198.18.2.1 . 6443 . 1 : 198.18.0.11 . 6443 }\n",
                {"delete": 2, "add": 2},
            ),
            id="service-gone-back-to-plan",
        ),
        pytest.param(
            {"web": [RS2, RS3]}, {"web": [RS2, RS3]}, ("", {"delete": 0, "add": 0}), id="same-no-transaction"
        ),
    ],
)
def test_update(before, after, expected):
    elements, script, counts = update(LVS, "d1", after, _before(before), scheduler="rr", slots=2, table="t")
    assert (script, counts) == expected
    # the VIPs computed again and the ones kept add up to the whole director's state
    assert elements == _before(after)["elements"]


def test_stats_keys():
    realservers_map = {
        "198.18.2.10 . 80 . 0": "198.18.9.2 . 8080",
        "198.18.2.10 . 80 . 1": "198.18.9.3 . 8080",
        "198.18.2.10 . 80 . 2": "198.18.9.2 . 8080",
        "198.18.2.10 . 443 . 0": "198.18.9.2 . 8443",
    }
    assert stats_keys(realservers_map) == [
        "198.18.2.10 . 198.18.9.2 . 8080",
        "198.18.2.10 . 198.18.9.2 . 8443",
        "198.18.2.10 . 198.18.9.3 . 8080",
    ]


STATS_RULESET = """\
table ip cloud58_fullnat_stats {
\tset connections {
\t\ttype ipv4_addr . ipv4_addr . inet_service
\t\tcounter
\t\telements = { 198.18.2.10 . 198.18.9.2 . 8080 }
\t}

\tset to_realservers {
\t\ttype ipv4_addr . ipv4_addr . inet_service
\t\tcounter
\t\telements = { 198.18.2.10 . 198.18.9.2 . 8080 }
\t}

\tset from_realservers {
\t\ttype ipv4_addr . ipv4_addr . inet_service
\t\tcounter
\t\telements = { 198.18.2.10 . 198.18.9.2 . 8080 }
\t}

\tchain forward {
\t\ttype filter hook forward priority filter; policy accept;
\t\tct status dnat ct direction original ct state new ct original ip daddr . ip daddr . tcp dport @connections
\t\tct status dnat ct direction original ct original ip daddr . ip daddr . tcp dport @to_realservers
\t\tct status dnat ct direction reply ct original ip daddr . ip saddr . tcp sport @from_realservers
\t}
}
"""


def test_stats_ruleset():
    assert stats_ruleset(["198.18.2.10 . 198.18.9.2 . 8080"]) == STATS_RULESET


@pytest.mark.parametrize(
    ("before", "after", "expected"),
    [
        pytest.param(["a . b . 1"], ["a . b . 1"], "", id="same"),
        pytest.param(
            ["a . b . 1", "a . c . 1"],
            ["a . c . 1", "a . d . 1"],
            "delete element ip s connections { a . b . 1 }\n"
            "delete element ip s to_realservers { a . b . 1 }\n"
            "delete element ip s from_realservers { a . b . 1 }\n"
            "add element ip s connections { a . d . 1 }\n"
            "add element ip s to_realservers { a . d . 1 }\n"
            "add element ip s from_realservers { a . d . 1 }\n",
            id="one-gone-one-new",
        ),
    ],
)
def test_stats_commands(before, after, expected):
    assert stats_commands(before, after, "s") == expected


def _counter_set(name, packets, nbytes):
    elem = {
        "val": {"concat": ["198.18.2.10", "198.18.9.2", 8080]},
        "counter": {"packets": packets, "bytes": nbytes},
    }
    return {"set": {"family": "ip", "name": name, "table": "cloud58_fullnat_stats", "elem": [{"elem": elem}]}}


def test_stats_counters_to_prometheus_text():
    data = {
        "nftables": [
            {"metainfo": {"version": "1.0.6"}},
            _counter_set("connections", 2, 120),
            _counter_set("to_realservers", 9, 600),
            _counter_set("from_realservers", 7, 1400),
        ]
    }
    labels = 'director="d1",vip="198.18.2.10",realserver="198.18.9.2",port="8080"'
    assert prometheus_text(stats_counters(data), "d1") == (
        "# HELP cloud58_lvs_connections_total New connections DNATed from a VIP to a realserver.\n"
        "# TYPE cloud58_lvs_connections_total counter\n"
        f"cloud58_lvs_connections_total{{{labels}}} 2\n"
        "# HELP cloud58_lvs_to_realserver_bytes_total Bytes sent to a realserver for a VIP.\n"
        "# TYPE cloud58_lvs_to_realserver_bytes_total counter\n"
        f"cloud58_lvs_to_realserver_bytes_total{{{labels}}} 600\n"
        "# HELP cloud58_lvs_to_realserver_packets_total Packets sent to a realserver for a VIP.\n"
        "# TYPE cloud58_lvs_to_realserver_packets_total counter\n"
        f"cloud58_lvs_to_realserver_packets_total{{{labels}}} 9\n"
        "# HELP cloud58_lvs_from_realserver_bytes_total Bytes a realserver answered for a VIP.\n"
        "# TYPE cloud58_lvs_from_realserver_bytes_total counter\n"
        f"cloud58_lvs_from_realserver_bytes_total{{{labels}}} 1400\n"
        "# HELP cloud58_lvs_from_realserver_packets_total Packets a realserver answered for a VIP.\n"
        "# TYPE cloud58_lvs_from_realserver_packets_total counter\n"
        f"cloud58_lvs_from_realserver_packets_total{{{labels}}} 7\n"
    )


@pytest.mark.parametrize(
    ("errors", "series"),
    [
        pytest.param({}, [], id="none"),
        pytest.param(
            {("watch", "error"): 1, ("list", "403"): 3, ("list", "error"): 2},
            [
                'cloud58_lvs_sync_api_errors_total{director="d1",call="list",status="403"} 3',
                'cloud58_lvs_sync_api_errors_total{director="d1",call="list",status="error"} 2',
                'cloud58_lvs_sync_api_errors_total{director="d1",call="watch",status="error"} 1',
            ],
            id="sorted-by-call-and-status",
        ),
    ],
)
def test_api_errors_text(errors, series):
    assert api_errors_text(errors, "d1").splitlines() == [
        "# HELP cloud58_lvs_sync_api_errors_total Calls to the API server that failed, by call and HTTP "
        "status (error: none).",
        "# TYPE cloud58_lvs_sync_api_errors_total counter",
        *series,
    ]


# ---- the healthy set for BIRD (issue #14 item 2) ----------------------------------------------
BGP = {"asn": 65111, "peers": [{"name": "tor1", "address": "198.18.0.1", "asn": 65121}]}


@pytest.mark.parametrize(
    ("wanted", "healthy", "routes"),
    [
        pytest.param(
            {"web": [{"address": "198.18.5.2", "port": 8080, "vip_port": 80}]},
            ["198.18.2.1", "198.18.2.10"],
            ["\troute 198.18.2.1/32 blackhole;", "\troute 198.18.2.10/32 blackhole;"],
            id="ready-endpoint",
        ),
        pytest.param(
            {"web": []}, ["198.18.2.1"], ["\troute 198.18.2.1/32 blackhole;"], id="last-endpoint-gone"
        ),
        pytest.param({}, ["198.18.2.1"], ["\troute 198.18.2.1/32 blackhole;"], id="no-service-plan-has-none"),
        pytest.param({"api": [], "web": []}, [], [], id="nothing-healthy"),
    ],
)
def test_announcement_follows_the_realservers(wanted, healthy, routes):
    lvs = {
        **LVS,
        "directors": {**LVS["directors"], "d1": {**LVS["directors"]["d1"], "address": "198.18.0.31"}},
    }
    got_healthy, text, conf = announcement(lvs, "d1", wanted, BGP, {"hold": 6})
    assert got_healthy == healthy
    assert text == json.dumps({"healthy_vips": healthy}) + "\n"
    static = conf.split("protocol static cloud58_vips {\n\tipv4;\n", 1)[1].split("}\n", 1)[0]
    assert static.splitlines() == routes
    assert "\thold time 6;" in conf.splitlines()
