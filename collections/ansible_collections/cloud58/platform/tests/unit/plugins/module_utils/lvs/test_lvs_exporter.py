from __future__ import annotations

from pathlib import Path

import pytest

from ansible_collections.cloud58.platform.plugins.module_utils.lvs.exporter import (
    bgp_metrics_text,
    bird_bgp_sessions,
    metrics_text,
    vip_realservers,
)
from ansible_collections.cloud58.platform.plugins.module_utils.lvs.fullnat import read_table


def _nft(vips, realservers):
    """``nft -j list table ip t`` with the set ``vips`` and the map ``realservers`` (key and
    value tuples), as nft prints them."""
    return {
        "nftables": [
            {"metainfo": {"version": "1.0.6", "json_schema_version": 1}},
            {"table": {"family": "ip", "name": "t", "handle": 3}},
            {"set": {"family": "ip", "name": "vips", "table": "t", "handle": 1, "elem": list(vips)}},
            {
                "map": {
                    "family": "ip",
                    "name": "realservers",
                    "table": "t",
                    "handle": 2,
                    "elem": [[{"concat": list(k)}, {"concat": list(v)}] for k, v in realservers],
                }
            },
        ]
    }


# 198.18.2.10: ports 80 and 443, two realservers on 80 over four slots (one twice), one on 443;
# 198.18.2.9: in the set, no entry.
TWO_VIPS = _nft(
    ["198.18.2.10", "198.18.2.9"],
    [
        (("198.18.2.10", 80, 0), ("198.18.9.2", 8080)),
        (("198.18.2.10", 80, 1), ("198.18.9.3", 8080)),
        (("198.18.2.10", 80, 2), ("198.18.9.2", 8080)),
        (("198.18.2.10", 80, 3), ("198.18.9.3", 8080)),
        (("198.18.2.10", 443, 0), ("198.18.9.2", 8443)),
    ],
)


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        pytest.param(
            TWO_VIPS,
            {"198.18.2.9": {"realservers": 0, "ports": 0}, "198.18.2.10": {"realservers": 3, "ports": 2}},
            id="a-vip-without-entries-counts-0",
        ),
        pytest.param(_nft([], []), {}, id="empty-table"),
        pytest.param(
            _nft(["198.18.2.1"], [(("198.18.2.7", 53, 0), ("198.18.9.4", 53))]),
            {"198.18.2.1": {"realservers": 0, "ports": 0}, "198.18.2.7": {"realservers": 1, "ports": 1}},
            id="a-map-entry-of-a-vip-outside-the-set-is-counted",
        ),
    ],
)
def test_vip_realservers(data, expected):
    assert vip_realservers(read_table(data, "t")) == expected


def test_metrics_text_of_a_table():
    assert metrics_text(read_table(TWO_VIPS, "t"), "lab1-lvs1") == (
        "# HELP cloud58_lvs_table_present 1 while the director's full-NAT table exists.\n"
        "# TYPE cloud58_lvs_table_present gauge\n"
        'cloud58_lvs_table_present{director="lab1-lvs1"} 1\n'
        "# HELP cloud58_lvs_vip_realservers Distinct realservers (address and port) in the VIP's entries"
        " of the realservers map.\n"
        "# TYPE cloud58_lvs_vip_realservers gauge\n"
        'cloud58_lvs_vip_realservers{director="lab1-lvs1",vip="198.18.2.9"} 0\n'
        'cloud58_lvs_vip_realservers{director="lab1-lvs1",vip="198.18.2.10"} 3\n'
        "# HELP cloud58_lvs_vip_ports Distinct ports of the VIP in the realservers map.\n"
        "# TYPE cloud58_lvs_vip_ports gauge\n"
        'cloud58_lvs_vip_ports{director="lab1-lvs1",vip="198.18.2.9"} 0\n'
        'cloud58_lvs_vip_ports{director="lab1-lvs1",vip="198.18.2.10"} 2\n'
    )


def test_metrics_text_without_a_table_has_no_vip_series():
    assert metrics_text(None, "d1") == (
        "# HELP cloud58_lvs_table_present 1 while the director's full-NAT table exists.\n"
        "# TYPE cloud58_lvs_table_present gauge\n"
        'cloud58_lvs_table_present{director="d1"} 0\n'
        "# HELP cloud58_lvs_vip_realservers Distinct realservers (address and port) in the VIP's entries"
        " of the realservers map.\n"
        "# TYPE cloud58_lvs_vip_realservers gauge\n"
        "# HELP cloud58_lvs_vip_ports Distinct ports of the VIP in the realservers map.\n"
        "# TYPE cloud58_lvs_vip_ports gauge\n"
    )


# Real output of BIRD 2.0.12 (Debian 12): three BGP protocols, one established (multihop to a
# second BIRD in a namespace), one whose neighbor is unreachable, one disabled without a
# description.
BIRDC_OUTPUT = (Path(__file__).parent / "fixtures/birdc-show-protocols-all.txt").read_text()


def test_bird_bgp_sessions_from_real_birdc_output():
    assert bird_bgp_sessions(BIRDC_OUTPUT) == [
        {
            "protocol": "tor_lab1_r1_tor1",
            "peer": "lab1-r1-tor1",
            "neighbor": "198.18.250.2",
            "state": "Established",
        },
        {
            "protocol": "tor_lab1_r1_tor2",
            "peer": "lab1-r1-tor2",
            "neighbor": "198.18.250.9",
            "state": "Active",
        },
        {"protocol": "spare", "peer": "spare", "neighbor": "198.18.250.10", "state": "Down"},
    ]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        pytest.param(
            "BIRD 2.0.12 ready.\nName       Proto      Table      State  Since         Info\n", [], id="none"
        ),
        pytest.param(
            "device1    Device     ---        up     20:38:44.374\n  Description:    ToR x\n",
            [],
            id="not-bgp",
        ),
        pytest.param(
            "p1 BGP --- start 20:38:44.374 Idle\n",
            [{"protocol": "p1", "peer": "p1", "neighbor": "", "state": "Down"}],
            id="no-detail-lines",
        ),
    ],
)
def test_bird_bgp_sessions_edge_cases(text, expected):
    assert bird_bgp_sessions(text) == expected


def test_bgp_metrics_text_one_gauge_per_session():
    sessions = bird_bgp_sessions(BIRDC_OUTPUT)
    assert bgp_metrics_text(sessions, "lab1-lvs1").splitlines() == [
        "# HELP cloud58_bgp_speaker_up 1 while the director's BIRD answers on its control socket.",
        "# TYPE cloud58_bgp_speaker_up gauge",
        'cloud58_bgp_speaker_up{director="lab1-lvs1"} 1',
        "# HELP cloud58_bgp_session_up 1 while the BGP session to the peer is established.",
        "# TYPE cloud58_bgp_session_up gauge",
        'cloud58_bgp_session_up{director="lab1-lvs1",peer="lab1-r1-tor1",neighbor="198.18.250.2"} 1',
        'cloud58_bgp_session_up{director="lab1-lvs1",peer="lab1-r1-tor2",neighbor="198.18.250.9"} 0',
        'cloud58_bgp_session_up{director="lab1-lvs1",peer="spare",neighbor="198.18.250.10"} 0',
    ]


def test_bgp_metrics_text_bird_not_answering():
    assert bgp_metrics_text(None, "lab1-lvs1").splitlines()[2:] == [
        'cloud58_bgp_speaker_up{director="lab1-lvs1"} 0',
        "# HELP cloud58_bgp_session_up 1 while the BGP session to the peer is established.",
        "# TYPE cloud58_bgp_session_up gauge",
    ]
