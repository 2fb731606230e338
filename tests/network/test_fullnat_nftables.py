"""Full NAT through an LVS director in nftables, proven with real packets.

The director is lab1-lvs1 of inventories/lab: its VIPs, ports and local-address range are
the plan's. Namespaces (``c58lvs-<pid>-*``): a client, the director and two realservers,
each joined to the director by a veth; the realservers' default route points to the
director, the VIP sits on the director's ``lo``. Each realserver answers a connection with
its name and the peer address it sees. The data plane is set by the module
``cloud58.platform.nft_fullnat`` itself (its file run in the director's namespace, the way
Ansible runs it on a host). Every address is inside 198.18.0.0/15.

The tests share one lab and run in file order: apply, traffic, remove a realserver,
change the scheduler, delete the table.
"""

from __future__ import annotations

import ipaddress
import json
import os
import subprocess
from pathlib import Path

import pytest

from ansible_collections.cloud58.platform.plugins.module_utils.topology import build_plan, load_inventory
from cloud58_lab import programs
from cloud58_lab.netlab import NetLab, run_prefix

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[2]
MODULE = REPO / "collections/ansible_collections/cloud58/platform/plugins/modules/nft_fullnat.py"
DATACENTER = "lab1"
DIRECTOR = "lab1-lvs1"
VIP = "lab1-ingress"
VIP_ADDRESS = "198.18.2.10"
CLIENT = "198.18.4.2"
REALSERVERS = {"rs1": "198.18.5.2", "rs2": "198.18.5.6"}
RS_PORT = 8080
HOLD_PORT = 8443  # realservers of VIP port 443: answer only after the client's first byte
SLOTS = 8
TABLE = "cloud58_fullnat"
CONNECTIONS = 8


def _realservers(*names, held=()):
    """The module's realservers option: ``names`` behind VIP port 80, ``held`` behind 443."""
    entries = [{"address": REALSERVERS[n], "port": RS_PORT, "vip_port": 80} for n in names]
    entries += [{"address": REALSERVERS[n], "port": HOLD_PORT, "vip_port": 443} for n in held]
    return {VIP: entries}


class Lab:
    def __init__(self, net, lvs, workdir):
        self.net = net
        self.lvs = lvs
        self.workdir = workdir
        self.runs = 0

    def module(self, check_mode=False, **args):
        """Run the module's file in the director's namespace; its JSON result."""
        self.runs += 1
        params = {"director": DIRECTOR, "lvs": self.lvs, "slots": SLOTS, **args}
        path = self.workdir / f"args-{self.runs}.json"
        internal = {"_ansible_check_mode": check_mode, "_ansible_diff": True}
        path.write_text(json.dumps({"ANSIBLE_MODULE_ARGS": {**params, **internal}}))
        env = dict(os.environ, PYTHONPATH=str(REPO / "collections"))
        proc = subprocess.run(
            programs.argv(
                "ip", "netns", "exec", self.net.ns("director"), programs.path("python3"), MODULE, path
            ),
            capture_output=True,
            text=True,
            env=env,
            check=False,
        )
        result = json.loads(proc.stdout)
        result.pop("invocation", None)
        return result

    def table(self):
        """``nft -j list table`` in the director: the JSON objects of the table."""
        out = self.net.exec("director", "nft", "-j", "list", "table", "ip", TABLE).stdout
        return json.loads(out)["nftables"][1:]

    def handles(self):
        """Every object of the table with its handle: a reload gives them new handles."""
        out = {}
        for item in self.table():
            for kind, obj in item.items():
                if kind in ("table", "set", "map", "chain", "rule"):
                    out[(kind, obj.get("chain", ""), obj.get("name", ""))] = obj["handle"]
        return out

    def elements(self, name):
        for item in self.table():
            obj = item.get("map") or item.get("set")
            if obj and obj["name"] == name:
                return obj.get("elem", [])
        raise AssertionError(f"table {TABLE} has no set {name}")

    def connect(self, port=80):
        """One connection from the client to the VIP: (realserver name, peer it saw) or None."""
        answer = self.net.tcp_request("client", VIP_ADDRESS, port)
        return tuple(answer.split()) if answer else None


@pytest.fixture(scope="module")
def lab(request, tmp_path_factory):
    root = request.config.rootpath
    plan = build_plan(load_inventory(str(root / "inventories/lab"))).as_dict()
    lvs = plan["datacenters"][DATACENTER]["lvs"]
    net = NetLab(prefix=run_prefix("c58lvs"))
    try:
        net.add_namespace("client", forwarding=False)
        net.add_namespace("director")
        net.link(
            "client", "director", if_a="eth0", if_b="client0", addr_a=f"{CLIENT}/30", addr_b="198.18.4.1/30"
        )
        net.exec("client", "ip", "route", "add", "default", "via", "198.18.4.1")
        net.exec("director", "ip", "address", "add", f"{VIP_ADDRESS}/32", "dev", "lo")
        for index, (name, address) in enumerate(sorted(REALSERVERS.items())):
            gateway = str(ipaddress.ip_address(address) - 1)
            net.add_namespace(name, forwarding=False)
            net.link(
                name, "director", if_a="eth0", if_b=f"{name}0", addr_a=f"{address}/30", addr_b=f"{gateway}/30"
            )
            net.exec(name, "ip", "route", "add", "default", "via", gateway)
            net.start_tcp_echo(name, address, RS_PORT, with_peer=True)
            net.start_tcp_echo(name, address, HOLD_PORT, with_peer=True, wait_for_byte=True)
            assert index < 2
        yield Lab(net, lvs, tmp_path_factory.mktemp("fullnat"))
    finally:
        problems = net.close()
        assert problems == [], f"lab cleanup left: {problems}"


class HeldConnection:
    """A client connection to VIP port 443 kept open until :meth:`finish` sends its byte."""

    def __init__(self, net):
        code = (
            "import socket,sys\n"
            f"c=socket.create_connection(({VIP_ADDRESS!r}, 443), timeout=10)\n"
            "print('open', flush=True)\n"
            "sys.stdin.readline(); c.sendall(b'x')\n"
            "sys.stdout.write(c.recv(200).decode())\n"
        )
        self.proc = subprocess.Popen(
            programs.argv("ip", "netns", "exec", net.ns("client"), programs.path("python3"), "-c", code),
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
            start_new_session=True,
        )
        net.servers.append(self.proc)  # stopped by NetLab.close() if the test fails
        self.opened = self.proc.stdout.readline().strip() == "open"

    def finish(self):
        """Send the byte; the answer (realserver name, peer it saw), or None."""
        out, _ = self.proc.communicate("go\n", timeout=20)
        return tuple(out.split()) if self.proc.returncode == 0 and out else None


def _local_addresses(lab):
    pool = lab.lvs["directors"][DIRECTOR]["local_addresses"]
    return ipaddress.ip_network(pool["cidr"])


def test_module_creates_the_table_then_reports_no_change(lab):
    first = lab.module(realservers=_realservers("rs1", "rs2"))
    assert (first["changed"], first["action"], first["counts"]) == (
        True,
        "created",
        # the VIP lab1-ingress (port 80 here) and the cluster API VIP (its masters from the plan)
        {"vips": 2, "realservers": 2 * SLOTS, "local_addresses": SLOTS},
    )
    assert first["commands"].startswith(f"table ip {TABLE} {{\n")
    second = lab.module(realservers=_realservers("rs1", "rs2"))
    assert (second["changed"], second["action"], second["commands"]) == (False, "unchanged", "")


def test_connections_reach_both_realservers_from_a_local_address(lab):
    answers = [lab.connect() for _ in range(CONNECTIONS)]
    assert None not in answers, answers
    assert sorted({name for name, _ in answers}) == ["rs1", "rs2"]
    pool = _local_addresses(lab)
    peers = {peer for _, peer in answers}
    # full NAT: the realserver sees one of the director's local addresses, never the client
    assert CLIENT not in peers
    assert all(ipaddress.ip_address(p) in pool for p in peers), (peers, pool)


def test_vip_port_without_realservers_is_not_forwarded(lab):
    # port 443 of the VIP has no realservers: no DNAT, the director's own stack refuses it
    assert lab.connect(443) is None


def test_check_mode_shows_the_removal_and_changes_nothing(lab):
    before = lab.elements("realservers")
    result = lab.module(check_mode=True, realservers=_realservers("rs2"))
    assert (result["changed"], result["action"]) == (True, "updated")
    rs1 = f"{REALSERVERS['rs1']} . {RS_PORT}"
    rs2 = f"{REALSERVERS['rs2']} . {RS_PORT}"
    assert [
        line
        for line in result["diff"]["before"].splitlines()
        if line.startswith(f"realservers: {VIP_ADDRESS} ")
    ] == [
        f"realservers: {VIP_ADDRESS} . 80 . {slot} : {rs1 if slot % 2 == 0 else rs2}" for slot in range(SLOTS)
    ]
    assert [
        line
        for line in result["diff"]["after"].splitlines()
        if line.startswith(f"realservers: {VIP_ADDRESS} ")
    ] == [f"realservers: {VIP_ADDRESS} . 80 . {slot} : {rs2}" for slot in range(SLOTS)]
    assert lab.elements("realservers") == before


def test_removing_a_realserver_is_an_element_change_only(lab):
    handles = lab.handles()
    result = lab.module(realservers=_realservers("rs2"))
    slots = ", ".join(f"{VIP_ADDRESS} . 80 . {slot}" for slot in range(0, SLOTS, 2))
    targets = ", ".join(
        f"{VIP_ADDRESS} . 80 . {slot} : {REALSERVERS['rs2']} . {RS_PORT}" for slot in range(0, SLOTS, 2)
    )
    assert (result["changed"], result["action"], result["commands"]) == (
        True,
        "updated",
        f"delete element ip {TABLE} realservers {{ {slots} }}\n"
        f"add element ip {TABLE} realservers {{ {targets} }}\n",
    )
    # no reload: the table, its sets, chains and rules keep their handles
    assert lab.handles() == handles
    answers = [lab.connect() for _ in range(CONNECTIONS)]
    assert {name for name, _ in answers} == {"rs2"}


def test_second_apply_after_the_removal_reports_no_change(lab):
    result = lab.module(realservers=_realservers("rs2"))
    assert (result["changed"], result["action"], result["commands"]) == (False, "unchanged", "")


def test_adding_the_realserver_back_reaches_both_again(lab):
    result = lab.module(realservers=_realservers("rs1", "rs2"))
    assert (result["changed"], result["action"]) == (True, "updated")
    answers = [lab.connect() for _ in range(CONNECTIONS)]
    assert sorted({name for name, _ in answers}) == ["rs1", "rs2"]


def test_established_connection_keeps_its_removed_realserver(lab):
    assert lab.module(realservers=_realservers("rs1", "rs2", held=["rs1"]))["changed"] is True
    held = HeldConnection(lab.net)
    assert held.opened
    # rs1 leaves port 443 and rs2 takes its slots while the connection is open
    result = lab.module(realservers=_realservers("rs1", "rs2", held=["rs2"]))
    assert (result["changed"], result["action"]) == (True, "updated")
    new = HeldConnection(lab.net)
    assert new.finish()[0] == "rs2"
    # conntrack keeps the established connection on rs1: removal drains, it does not cut
    name, peer = held.finish()
    assert name == "rs1"
    assert ipaddress.ip_address(peer) in _local_addresses(lab)


def test_scheduler_change_replaces_the_table_in_one_transaction(lab):
    result = lab.module(realservers=_realservers("rs1", "rs2"), scheduler="sh")
    assert (result["changed"], result["action"]) == (True, "replaced")
    assert result["commands"].startswith(f"delete table ip {TABLE}\ntable ip {TABLE} {{\n")
    rules = [item["rule"] for item in lab.table() if "rule" in item and item["rule"]["chain"] == "prerouting"]
    assert [r["comment"] for r in rules] == [f"cloud58-fullnat v1 scheduler=sh slots={SLOTS}"]
    # source hashing: one client address always lands on the same slot's realserver
    names = {lab.connect()[0] for _ in range(CONNECTIONS)}
    assert len(names) == 1, names


def test_bad_realserver_address_fails_naming_the_field(lab):
    result = lab.module(realservers={VIP: [{"address": "198.18.5.x", "port": RS_PORT, "vip_port": 80}]})
    assert (result.get("failed"), result["msg"]) == (
        True,
        f"realservers.{VIP}[0].address: '198.18.5.x' is not an IPv4 address",
    )


def test_absent_deletes_the_table(lab):
    result = lab.module(state="absent")
    assert (result["changed"], result["action"], result["commands"]) == (
        True,
        "deleted",
        f"delete table ip {TABLE}\n",
    )
    tables = json.loads(lab.net.exec("director", "nft", "-j", "list", "tables").stdout)["nftables"][1:]
    assert tables == []
    again = lab.module(state="absent")
    assert (again["changed"], again["action"]) == (False, "unchanged")
