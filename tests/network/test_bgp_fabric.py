"""Pods are routable in the fabric without overlay: proven with real BGP speakers and packets.

The lab is datacenter lab1 of inventories/lab (eBGP scheme), two racks with two ToRs each
and two Kubernetes nodes per rack, plus the core router. ToRs and core run FRR with the
configuration the role tor_router renders; nodes run BIRD with the configuration
calico-node derives from the rendered Calico objects. Every address is the plan's, inside
198.18.0.0/15, in namespaces named c58t-<pid>-*.

The tests share one lab and run in file order; the last one stops a ToR.
"""

from __future__ import annotations

import signal
import time

import pytest

from ansible_collections.cloud58.platform.plugins.module_utils.bgp import calico_objects, fabric_from_plan
from ansible_collections.cloud58.platform.plugins.module_utils.topology import build_plan, load_inventory
from cloud58_lab.bgplab import FabricLab
from cloud58_lab.netlab import NetLab, wait_until

pytestmark = pytest.mark.slow

REPO_INVENTORY = "inventories/lab"
DATACENTER = "lab1"
CLUSTER = "lab1-k8s"
NODES = {"lab1-r1": ("lab1-m1", "lab1-m3"), "lab1-r2": ("lab1-m2", "lab1-w2")}
HOLD = 9
PORT = 8080
# Short timers for the lab (the fabric defaults are hold 9 / keepalive 3 / connect-retry 2).
OPTIONS = {"keepalive": 3, "hold": HOLD, "connect_retry": 2, "soft_reconfiguration": True}


@pytest.fixture(scope="module")
def lab(request):
    root = request.config.rootpath
    plan = build_plan(load_inventory(str(root / REPO_INVENTORY))).as_dict()
    fabric = fabric_from_plan(plan, DATACENTER).with_nodes([n for nodes in NODES.values() for n in nodes])
    objects = calico_objects(plan, CLUSTER)
    net = NetLab()
    try:
        fab = FabricLab(
            fabric, plan, CLUSTER, objects, net, options=OPTIONS, node_timers={"connect_retry": 2}
        )
        fab.build()
        fab.wait_converged(timeout=60)
        for host in fab.hosts.values():
            net.start_tcp_echo(host.pod, host.pod_address, PORT)
        yield fab
    finally:
        problems = net.close()
        assert problems == [], f"lab cleanup left: {problems}"


def _host(lab, name):
    return lab.hosts[name]


def _tor_addresses(lab, rack):
    return sorted(t.address for t in lab.fabric.rack(rack).tors)


def test_every_session_is_established(lab):
    for name in list(lab.configs) + list(lab.hosts):
        expected = {peer: "Established" for peer in lab.expected_peers(name)}
        assert lab.net.sessions(name) == expected, name


def test_tor_learns_blocks_and_rack_subnets_only(lab):
    blocks = {b for h in lab.hosts.values() for b in h.blocks}
    assert len(blocks) == 4
    expected = blocks | {"198.18.0.0/26", "198.18.0.64/26"}
    for tor in lab.fabric.tors():
        # the /32 of each pod stays on its node: a block is announced as one route
        assert lab.net.bgp_prefixes(tor.name) == expected, tor.name
    assert lab.net.bgp_prefixes("lab1-core1") == expected
    for node in lab.hosts:
        # nodes get pod routes only: no rack subnets, no default route
        assert lab.net.bgp_prefixes(node) == blocks, node


def test_pod_answers_from_a_node_in_the_other_rack(lab):
    target = _host(lab, "lab1-w2")
    for source in ("lab1-m1", "lab1-m3"):
        pod = _host(lab, source).pod
        assert lab.net.tcp_request(pod, target.pod_address, PORT) == target.pod
    # and back, rack 1 from rack 2
    back = _host(lab, "lab1-m1")
    assert lab.net.tcp_request(target.pod, back.pod_address, PORT) == back.pod


def test_two_ecmp_next_hops_toward_the_other_rack(lab):
    for source, target in (("lab1-m1", "lab1-w2"), ("lab1-m2", "lab1-m3")):
        block = _host(lab, target).blocks[0]
        rack = _host(lab, source).rack
        assert lab.net.kernel_nexthops(source, block) == _tor_addresses(lab, rack), (source, block)


def test_rack_neighbours_route_to_each_other_directly(lab):
    # third-party next hop: within a rack the ToR is not in the data path
    block = _host(lab, "lab1-m3").blocks[0]
    assert lab.net.kernel_nexthops("lab1-m1", block) == [_host(lab, "lab1-m3").address]


ROGUE = {
    "198.18.18.128/26": "a block of the other rack's pool",
    "198.19.250.0/24": "outside every pool of the datacenter",
    "0.0.0.0/0": "a default route",
}


def test_rogue_announcements_are_rejected_by_the_tor(lab):
    rogue = "lab1-m3"
    statics = "".join(f"  route {prefix} blackhole;\n" for prefix in ROGUE)
    accept = "".join(f"  if net = {prefix} then accept;\n" for prefix in ROGUE)
    lab.start_host(rogue, extra=f"protocol static rogue {{\n  ipv4;\n{statics}}}\n", export_extra=accept)
    try:
        address = _host(lab, rogue).address
        tor = lab.fabric.rack("lab1-r1").tors[0].name
        # the node does send them (the ToR keeps what it received before its filter) ...
        wait_until(
            lambda: set(ROGUE) <= lab.net.received_prefixes(tor, address),
            30,
            what="the rogue prefixes to reach the ToR",
        )
        assert lab.net.received_prefixes(tor, address) == set(ROGUE) | set(_host(lab, rogue).blocks)
        # ... and the filter keeps them out of every RIB
        for router in lab.configs:
            assert not set(ROGUE) & lab.net.bgp_prefixes(router), router
        for node in ("lab1-m2", "lab1-w2", "lab1-m1"):
            assert not set(ROGUE) & lab.net.bgp_prefixes(node), node
            assert lab.net.kernel_nexthops(node, "0.0.0.0/0") == [], node
    finally:
        lab.start_host(rogue)
        wait_until(lambda: lab.established(rogue), 30, what="the node back with its calico config")


def test_traffic_survives_a_stopped_tor(lab):
    """Power off r1-tor1 (links down, then SIGKILL: its peers hear nothing and wait out the
    hold time), then: routes converge to the other ToR, and TCP connects, every time."""
    tor = lab.fabric.rack("lab1-r1").tors[0]
    other = lab.fabric.rack("lab1-r1").tors[1]
    source, target = _host(lab, "lab1-m1"), _host(lab, "lab1-w2")
    assert lab.net.kernel_nexthops(source.name, target.blocks[0]) == sorted([tor.address, other.address])

    started = time.monotonic()
    lab.net.set_links(tor.name, up=False)
    lab.net.stop_router(tor.name, signal.SIGKILL)
    # bounded poll: the hold time, plus BIRD's and zebra's kernel sync, plus slack for a busy machine
    bound = HOLD + 10
    wait_until(
        lambda: lab.net.kernel_nexthops(source.name, target.blocks[0]) == [other.address],
        bound,
        what="rack 1's node to drop the stopped ToR",
    )
    uplink = {u.core: u.tor_address for u in other.uplinks}["lab1-core1"]
    wait_until(
        lambda: lab.net.kernel_nexthops("lab1-core1", source.blocks[0]) == [uplink],
        bound,
        what="the core to drop the stopped ToR",
    )
    converged = time.monotonic() - started
    answers = [lab.net.tcp_request(source.pod, target.pod_address, PORT) for _ in range(12)]
    assert answers == [target.pod] * 12
    assert lab.net.sessions(other.name) == {p: "Established" for p in lab.expected_peers(other.name)}
    print(f"converged {converged:.1f}s after the ToR stopped (hold time {HOLD}s)")
