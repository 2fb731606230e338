"""LVS directors announce their healthy VIPs to the ToR by BGP; the ToR spreads them by ECMP.

One rack of a fabric built in the test (eBGP scheme, rack AS 65111, ToR AS 65121, core AS
65100): the ToR and the core run FRR with the configurations the role tor_router renders
(``router_config`` through its ``frr.conf.j2``, with the option ``client_prefixes``); two
LVS directors run BIRD with the configuration ``announce.bird_config`` renders and full NAT
in nftables (``fullnat.render_ruleset``, the table the module nft_fullnat writes). The
rack's second ToR exists in the fabric (every rack has two) but is not started. A node of
the rack (BIRD, hand-written: a static pod block, the local ranges learned) holds the VIP's
realserver, a pod wired as Calico wires it; a client sits behind the core, which originates
its prefix. Namespaces ``c58vip-<pid>-*``; every address is inside 198.18.0.0/15.

The tests share one lab and run in file order: both directors announce the VIP (two next
hops) and each its own local-address range, and learn the pod route and the client's (in
their kernels); the client's connections spread over both directors and reach the pod from
their local addresses; one director withdraws the VIP by a new healthy set and ``birdc
configure`` (one next hop, no session restart, its local addresses still announced, every
connection through the other); a director cut off is dropped after the hold time; a
hand-written config announces prefixes outside the VIP and local-address ranges (refused).
"""

from __future__ import annotations

import ipaddress

import pytest

from ansible_collections.cloud58.platform.plugins.module_utils.bgp import router_config
from ansible_collections.cloud58.platform.plugins.module_utils.bgp.fabric import (
    ClusterNet,
    Core,
    Fabric,
    Node,
    PodPool,
    Rack,
    Tor,
    Uplink,
)
from ansible_collections.cloud58.platform.plugins.module_utils.lvs.announce import bird_config
from ansible_collections.cloud58.platform.plugins.module_utils.lvs.fullnat import (
    director_state,
    render_ruleset,
)
from cloud58_lab.bgplab import render_frr
from cloud58_lab.netlab import NetLab, run_prefix, wait_until

pytestmark = pytest.mark.slow

TOR = "tor1"
TOR_ADDRESS = "198.18.0.1"
DIRECTORS = {"lvs1": "198.18.0.31", "lvs2": "198.18.0.32"}
VIP = "198.18.2.10"
VIP_POOL = "198.18.2.0/27"
LOCAL_POOL = "198.18.2.32/27"
LOCAL = {"lvs1": "198.18.2.32/28", "lvs2": "198.18.2.48/28"}  # as the planner aligns them
NODE, NODE_ADDRESS = "w1", "198.18.0.21"
BLOCK = "198.18.16.0/26"  # the node's pod block, in the rack's pool 198.18.16.0/23
POD, POD_PORT = "198.18.16.5", 8080  # the VIP's realserver: a pod of the node's block
CORE, CORE_ASN = "core1", 65100
UPLINK = Uplink(CORE, tor_address="198.18.1.0", core_address="198.18.1.1")
# A client outside the datacenter, behind the core: its prefix is the core's to announce (its
# upstream's, in a real datacenter), and the option client_prefixes lets it through.
CLIENT_NET, CLIENT, CLIENT_GATEWAY = "198.18.6.0/30", "198.18.6.2", "198.18.6.1"
CONNECTIONS = 32  # all on one director by chance: 2 in 2**32
RACK_ASN = 65111
TOR_ASN = 65121
OPTIONS = {
    "keepalive": 3,
    "hold": 9,
    "connect_retry": 2,
    "soft_reconfiguration": True,
    "client_prefixes": [CLIENT_NET],
}

FABRIC = Fabric(
    datacenter="vt",
    mode="ebgp",
    core_asn=CORE_ASN,
    cores=(Core(CORE, "198.18.1.255", CORE_ASN),),
    racks=(
        Rack(
            name="r1",
            node_subnet="198.18.0.0/26",
            node_asn=RACK_ASN,
            tors=(
                Tor(TOR, "r1", TOR_ADDRESS, TOR_ASN, uplinks=(UPLINK,)),
                Tor("tor2", "r1", "198.18.0.2", TOR_ASN),
            ),
            nodes=(
                *(Node(name, "r1", address, RACK_ASN, roles=("lvs",)) for name, address in DIRECTORS.items()),
                Node(NODE, "r1", NODE_ADDRESS, RACK_ASN, cluster="vt-k8s", roles=("minion",)),
            ),
            pod_pools=(PodPool("vt-k8s", "r1", "198.18.16.0/23", 26),),
        ),
    ),
    nodes_network="198.18.0.0/24",
    vip_pool=VIP_POOL,
    clusters=(ClusterNet("vt-k8s", "198.18.16.0/21", "198.18.8.0/24", 26),),
    local_address_pool=LOCAL_POOL,
)
LVS = {
    "directors": {
        name: {
            "name": name,
            "address": address,
            "vips": ["web"],
            "local_addresses": {
                "cidr": LOCAL[name],
                "first": LOCAL[name].split("/")[0],
                "count": 16,
            },
        }
        for name, address in DIRECTORS.items()
    },
    "vips": {
        "web": {
            "name": "web",
            "address": VIP,
            "ports": [80],
            "directors": sorted(DIRECTORS),
            "real_servers": [{"address": POD, "port": POD_PORT, "vip_port": 80}],
        }
    },
}
BGP = {"asn": RACK_ASN, "peers": [{"name": TOR, "address": TOR_ADDRESS, "asn": TOR_ASN}]}


def _exporting_session(router_id: str, imports: str = "none") -> str:
    """A hand-written BIRD's session with the ToR that exports every route it has and
    imports ``imports`` (a BIRD import clause)."""
    return (
        f"protocol bgp tor_tor1 {{\n\tlocal {router_id} as {RACK_ASN};\n"
        f"\tneighbor {TOR_ADDRESS} as {TOR_ASN};\n"
        "\thold time 9;\n\tkeepalive time 3;\n\tconnect retry time 2;\n"
        f"\tipv4 {{\n\t\timport {imports};\n\t\texport all;\n\t\tnext hop self;\n\t}};\n}}\n"
    )


# What no director may announce: a host route outside the VIP pool, the pool itself, a
# range outside the local-address pool. Hand-written: the renderer never produces them.
BAD_CONFIG = f"""\
router id {DIRECTORS["lvs2"]};
protocol device {{
}}
protocol static bad {{
\tipv4;
\troute 198.18.3.1/32 blackhole;
\troute {VIP_POOL} blackhole;
\troute 198.18.2.64/28 blackhole;
\troute 198.18.2.11/32 blackhole;
}}
""" + _exporting_session(DIRECTORS["lvs2"])


# The node's BIRD: its pod block, as calico-node announces it, and the directors' local
# ranges learned into its kernel (a realserver answers a local address); hand-written.
NODE_CONFIG = f"""\
router id {NODE_ADDRESS};
protocol device {{
}}
protocol kernel {{
\tipv4 {{ export where source = RTS_BGP; }};
}}
protocol static pod_block {{
\tipv4;
\troute {BLOCK} blackhole;
}}
""" + _exporting_session(NODE_ADDRESS, f"where net ~ [ {LOCAL_POOL}+ ]")


def _director_conf(name, healthy=None):
    return bird_config(LVS, name, BGP, healthy=healthy, options=OPTIONS)


def _director_data_plane(lab, name):
    """Director ``name``'s full NAT in nftables (the table the module nft_fullnat writes, the
    plan's realserver: the pod). No default route: it answers the client by the route to the
    client's prefix its BIRD learns from the ToR."""
    ruleset = lab.workdir / f"{name}.nft"
    ruleset.write_text(render_ruleset(director_state(LVS, name)))
    lab.exec(name, "nft", "-f", str(ruleset))


def _carried_by(net, count=CONNECTIONS):
    """``count`` connections of the client to the VIP: {director whose local address the pod
    saw: connections}, None for a connection that failed."""
    ranges = {name: ipaddress.ip_network(cidr) for name, cidr in LOCAL.items()}
    carried = {}
    for _ in range(count):
        answer = net.tcp_request("client", VIP, 80)
        name, _, peer = (answer or "").partition(" ")
        assert name in ("pod", ""), answer
        director = next((d for d, r in ranges.items() if peer and ipaddress.ip_address(peer) in r), None)
        carried[director] = carried.get(director, 0) + 1
    return carried


@pytest.fixture(scope="module")
def net():
    lab = NetLab(prefix=run_prefix("c58vip"))
    try:
        lab.add_switch("sw")
        lab.add_namespace(TOR)
        lab.attach("sw", TOR, "eth0", f"{TOR_ADDRESS}/26", port="p0")
        for index, (name, address) in enumerate(sorted(DIRECTORS.items()), start=1):
            lab.add_namespace(name)
            lab.attach("sw", name, "eth0", f"{address}/26", port=f"p{index}")
        lab.add_namespace(NODE)
        lab.attach("sw", NODE, "eth0", f"{NODE_ADDRESS}/26", port=f"p{len(DIRECTORS) + 1}")
        lab.add_pod(NODE, "pod", POD, "calipod0")
        lab.start_tcp_echo("pod", POD, POD_PORT, with_peer=True)
        lab.add_namespace(CORE)
        lab.link(
            TOR,
            CORE,
            if_a="core0",
            if_b="tor0",
            addr_a=f"{UPLINK.tor_address}/31",
            addr_b=f"{UPLINK.core_address}/31",
        )
        lab.add_namespace("client", forwarding=False)
        lab.link(
            "client", CORE, if_a="eth0", if_b="client0", addr_a=f"{CLIENT}/30", addr_b=f"{CLIENT_GATEWAY}/30"
        )
        lab.exec("client", "ip", "route", "add", "default", "via", CLIENT_GATEWAY)
        lab.start_frr(TOR, render_frr(router_config(FABRIC, TOR, OPTIONS)))
        core_conf = render_frr(router_config(FABRIC, CORE, OPTIONS))
        lab.start_frr(CORE, core_conf)
        # the client's prefix, originated where a real core learns it from its upstream
        originate = [f"router bgp {CORE_ASN}", "address-family ipv4 unicast", f"network {CLIENT_NET}"]
        lab.configure_frr(CORE, originate, core_conf)
        for name in sorted(DIRECTORS):
            _director_data_plane(lab, name)
            lab.start_bird(name, _director_conf(name))
        lab.start_bird(NODE, NODE_CONFIG)
        yield lab
    finally:
        problems = lab.close()
        assert problems == [], f"lab cleanup left: {problems}"


def _reconfigure(net, name, text):
    """Replace director ``name``'s bird.conf and apply it with ``birdc configure``; BIRD's last line."""
    (net.routers[name].directory / "bird.conf").write_text(text)
    return net.birdc(name, "configure").splitlines()[-1]


def _established(net, peer):
    data = net.vtysh(TOR, f"show bgp neighbors {peer} json", as_json=True)
    return data[peer]["bgpState"], data[peer]["connectionsEstablished"]


def test_both_directors_announce_the_vip_and_the_tor_installs_two_next_hops(net):
    wait_until(
        lambda: (
            net.sessions(TOR)
            == {a: "Established" for a in [*DIRECTORS.values(), NODE_ADDRESS, UPLINK.core_address]}
        ),
        60,
        what="ToR sessions with both directors, the node and the core",
    )
    wait_until(lambda: len(net.kernel_nexthops(TOR, f"{VIP}/32")) == 2, 30, what="two next hops for the VIP")
    assert net.kernel_nexthops(TOR, f"{VIP}/32") == ["198.18.0.31", "198.18.0.32"]
    wait_until(lambda: net.kernel_nexthops(TOR, CLIENT_NET), 30, what="the client's prefix from the core")
    assert net.kernel_nexthops(TOR, CLIENT_NET) == [UPLINK.core_address]
    # the rack subnet is the ToR's own network statement
    assert net.bgp_prefixes(TOR) == {"198.18.0.0/26", f"{VIP}/32", *LOCAL.values(), BLOCK, CLIENT_NET}
    assert net.received_prefixes(TOR, DIRECTORS["lvs1"]) == {f"{VIP}/32", LOCAL["lvs1"]}
    # each local-address range to the director that owns it, and only there
    assert {name: net.kernel_nexthops(TOR, LOCAL[name]) for name in DIRECTORS} == {
        name: [address] for name, address in DIRECTORS.items()
    }


def test_the_directors_learn_the_pod_route_and_the_clients_and_nothing_else(net):
    wait_until(
        lambda: all(
            net.kernel_nexthops(name, BLOCK) and net.kernel_nexthops(name, CLIENT_NET) for name in DIRECTORS
        ),
        30,
        what="the pod route and the client's",
    )
    # the node itself: it shares the rack subnet with the ToR's session to the director, so
    # the ToR passes its next hop on unchanged (FRR, eBGP third-party next hop)
    assert {name: net.kernel_nexthops(name, BLOCK) for name in DIRECTORS} == {
        name: [NODE_ADDRESS] for name in DIRECTORS
    }
    # the client's prefix from the core, through the ToR
    assert {name: net.kernel_nexthops(name, CLIENT_NET) for name in DIRECTORS} == {
        name: [TOR_ADDRESS] for name in DIRECTORS
    }
    # the ToR's filter C58-TO-DIRECTORS: no VIP, no local range of the other director
    assert {name: net.bgp_prefixes(name) for name in DIRECTORS} == {
        name: {BLOCK, CLIENT_NET} for name in DIRECTORS
    }


def test_one_clients_connections_spread_over_both_directors_by_full_nat(net):
    """The ToR hashes each connection's ports (fib_multipath_hash_policy=1) over its two next
    hops for the VIP; each director rewrites it to the pod and to one of its own local
    addresses, and the pod's answer goes back through the director that carried it."""
    wait_until(
        lambda: all(net.kernel_nexthops(NODE, cidr) for cidr in LOCAL.values()), 30, what="the local ranges"
    )
    assert {cidr: net.kernel_nexthops(NODE, cidr) for cidr in LOCAL.values()} == {
        LOCAL[name]: [address] for name, address in DIRECTORS.items()
    }
    carried = _carried_by(net)
    assert sorted(carried, key=str) == ["lvs1", "lvs2"], carried
    assert sum(carried.values()) == CONNECTIONS


def test_a_director_without_healthy_realservers_withdraws_without_restarting_bird_or_the_session(net):
    pids = net.routers["lvs1"].pids
    # "Reconfigured" at once: only the static protocol changed, no protocol restarts.
    assert _reconfigure(net, "lvs1", _director_conf("lvs1", healthy=[])) == "Reconfigured"
    wait_until(lambda: len(net.kernel_nexthops(TOR, f"{VIP}/32")) == 1, 30, what="one next hop left")
    assert net.kernel_nexthops(TOR, f"{VIP}/32") == ["198.18.0.32"]
    assert net.received_prefixes(TOR, DIRECTORS["lvs1"]) == {LOCAL["lvs1"]}
    assert net.routers["lvs1"].pids == pids
    assert _established(net, DIRECTORS["lvs1"]) == ("Established", 1)
    # the client's every connection now through lvs2
    assert _carried_by(net) == {"lvs2": CONNECTIONS}


def test_the_director_announces_again_when_the_vip_is_healthy(net):
    assert _reconfigure(net, "lvs1", _director_conf("lvs1", healthy=[VIP])) == "Reconfigured"
    wait_until(lambda: len(net.kernel_nexthops(TOR, f"{VIP}/32")) == 2, 30, what="two next hops again")
    assert net.kernel_nexthops(TOR, f"{VIP}/32") == ["198.18.0.31", "198.18.0.32"]
    assert _established(net, DIRECTORS["lvs1"]) == ("Established", 1)


def test_a_director_cut_off_is_dropped_after_the_hold_time_and_the_other_carries_everything(net):
    """lvs1's link down (a dead machine says nothing to its peers): the ToR keeps its next hop
    until the hold time (9 s) ends, then the client's connections all go through lvs2.
    Connections lvs1 carried are lost: nftables keeps no state another director could take."""
    net.set_links("lvs1", up=False)
    try:
        wait_until(
            lambda: net.kernel_nexthops(TOR, f"{VIP}/32") == [DIRECTORS["lvs2"]], 30, what="lvs1 dropped"
        )
        # dropped with the session, which only the hold timer ends here (no BFD)
        assert net.sessions(TOR)[DIRECTORS["lvs1"]] != "Established"
        assert _carried_by(net) == {"lvs2": CONNECTIONS}
    finally:
        net.set_links("lvs1", up=True)
    wait_until(lambda: len(net.kernel_nexthops(TOR, f"{VIP}/32")) == 2, 60, what="lvs1 back")
    assert net.kernel_nexthops(TOR, f"{VIP}/32") == ["198.18.0.31", "198.18.0.32"]


def test_the_tor_refuses_what_is_not_a_vip_host_route(net):
    # other protocols and filters: BIRD restarts what changed
    assert _reconfigure(net, "lvs2", BAD_CONFIG) == "Reconfiguration in progress"
    received = {"198.18.3.1/32", VIP_POOL, "198.18.2.64/28", "198.18.2.11/32"}
    wait_until(
        lambda: net.received_prefixes(TOR, DIRECTORS["lvs2"]) == received, 30, what="the bad routes sent"
    )
    wait_until(lambda: len(net.kernel_nexthops(TOR, f"{VIP}/32")) == 1, 30, what="the VIP from lvs1 only")
    assert net.bgp_prefixes(TOR) == {
        "198.18.0.0/26",
        f"{VIP}/32",
        "198.18.2.11/32",
        LOCAL["lvs1"],
        BLOCK,
        CLIENT_NET,
    }
    assert net.kernel_nexthops(TOR, "198.18.3.1/32") == []
    assert net.kernel_nexthops(TOR, VIP_POOL) == []
    assert net.kernel_nexthops(TOR, "198.18.2.64/28") == []
    # lvs2 no longer announces the VIP (its static protocol is gone): lvs1 alone carries it.
    assert net.kernel_nexthops(TOR, f"{VIP}/32") == ["198.18.0.31"]
    assert net.kernel_nexthops(TOR, "198.18.2.11/32") == ["198.18.0.32"]
