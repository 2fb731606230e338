"""cloud58-signals on this machine: real /proc figures and a pod veth's counters under real traffic.

Two namespaces (``c58sg-<pid>-host`` and ``-pod``) joined by a veth pair stand for a node and one
of its pods: the host side is named like Calico's (``cali…``, one of the agent's default
prefixes), addresses inside 198.18.0.0/15. The agent's program (``agents/cloud58_signals.py``)
runs in the host namespace, where ``ip netns exec`` mounts a sysfs of that namespace, so it sees
the pair's host side and no interface of this machine; /proc is this machine's. It listens on
the namespace's loopback. The test sends UDP datagrams of known size across the pair in each
direction and waits (a 30 s guard turns a hang into a failure) until the agent's counters have
moved by at least what was sent; it asserts no durations. The process is stopped by PID and the
namespaces are removed.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest

from cloud58_lab import programs
from cloud58_lab.netlab import NetLab, run_prefix

REPO = Path(__file__).resolve().parents[2]
AGENT = REPO / "collections/ansible_collections/cloud58/platform/agents/cloud58_signals.py"
HOST_ADDRESS = "198.18.211.1"
POD_ADDRESS = "198.18.211.2"
VETH = "cali5e0a1b2c3d4"
PORT = 5311
DATAGRAMS = 300
PAYLOAD = 1000

SENDER = """
import socket, sys
sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
for _ in range(int(sys.argv[3])):
    sock.sendto(b"x" * int(sys.argv[4]), (sys.argv[1], int(sys.argv[2])))
"""
GET = """
import sys, urllib.request
sys.stdout.write(urllib.request.urlopen(sys.argv[1], timeout=10).read().decode())
"""


class Node:
    """The namespaces, the pair and the agent running in the host namespace."""

    def __init__(self, net: NetLab) -> None:
        self.net = net
        self.host, self.pod = net.add_linked_pair(
            "host", "pod", if_a=VETH, if_b="eth0", addr_a=f"{HOST_ADDRESS}/30", addr_b=f"{POD_ADDRESS}/30"
        )
        self.agent = subprocess.Popen(
            programs.argv(
                "ip", "netns", "exec", self.host, sys.executable, str(AGENT), "run",
                "--node", "signals-test", "--listen", "127.0.0.1:0", "--interval", "0.2",
            ),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )  # fmt: skip
        line = self.agent.stdout.readline()
        assert line.startswith('{"listening": "127.0.0.1:'), (line, self.agent.stderr.read())
        self.url = f"http://{json.loads(line)['listening']}"

    def get(self, path: str) -> str:
        return self.net.exec("host", sys.executable, "-c", GET, self.url + path).stdout

    def counter(self, name: str) -> int:
        for line in self.get("/metrics").splitlines():
            if line.startswith(f'cloud58_signals_interface_{name}_total{{interface="{VETH}"}} '):
                return int(line.split()[-1])
        return -1

    def send(self, direction: str) -> None:
        """DATAGRAMS datagrams of PAYLOAD bytes into the pod (``into-pod``) or out of it."""
        sender, address = ("host", POD_ADDRESS) if direction == "into-pod" else ("pod", HOST_ADDRESS)
        self.net.exec(sender, sys.executable, "-c", SENDER, address, str(PORT), str(DATAGRAMS), str(PAYLOAD))

    def stop(self) -> tuple[int, str]:
        self.agent.terminate()
        _out, err = self.agent.communicate(timeout=30)
        return self.agent.returncode, err


@pytest.fixture(scope="module")
def node():
    with NetLab(prefix=run_prefix("c58sg")) as net:
        started = Node(net)
        try:
            yield started
        finally:
            if started.agent.poll() is None:
                started.stop()


def _wait_at_least(read, wanted: int, what: str) -> int:
    deadline = time.monotonic() + 30
    while True:
        got = read()
        if got >= wanted:
            return got
        if time.monotonic() > deadline:
            pytest.fail(f"{what}: still {got}, expected at least {wanted}", pytrace=False)
        time.sleep(0.1)


@pytest.mark.parametrize(
    ("direction", "counter"),
    [
        # the host side of the pair receives what the pod sends, and transmits what it receives
        pytest.param("out-of-pod", "receive", id="pod-sends"),
        pytest.param("into-pod", "transmit", id="pod-receives"),
    ],
)
def test_veth_counters_move_by_at_least_the_traffic_sent(node, direction, counter):
    bytes_before, packets_before = node.counter(f"{counter}_bytes"), node.counter(f"{counter}_packets")
    assert min(bytes_before, packets_before) >= 0, node.get("/metrics")
    node.send(direction)
    _wait_at_least(
        lambda: node.counter(f"{counter}_bytes"),
        bytes_before + DATAGRAMS * PAYLOAD,
        f"{counter} bytes of {VETH}",
    )
    _wait_at_least(
        lambda: node.counter(f"{counter}_packets"), packets_before + DATAGRAMS, f"{counter} packets of {VETH}"
    )
    rates = json.loads(node.get("/signals.json"))["averages"]["1m"]["interfaces"][VETH]
    assert rates[f"{'rx' if counter == 'receive' else 'tx'}_bytes_per_second"] > 0


def test_node_figures_are_this_machines(node):
    document = json.loads(node.get("/signals.json"))
    meminfo = dict(line.split(":", 1) for line in Path("/proc/meminfo").read_text().splitlines())
    latest = document["latest"]
    assert (document["node"], sorted(document["averages"]), latest["memory_total_bytes"]) == (
        "signals-test",
        ["1m", "5m"],
        int(meminfo["MemTotal"].split()[0]) * 1024,
    )
    assert 0 <= latest["cpu_percent"] <= 100
    assert 0 < latest["memory_available_bytes"] < latest["memory_total_bytes"]
    assert list(document["averages"]["1m"]["interfaces"]) == [VETH]


def test_stops_on_sigterm_by_pid(node):
    assert node.stop() == (0, "")
