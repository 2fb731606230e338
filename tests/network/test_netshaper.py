"""cloud58-netshaper shapes a running pod's veth pair in both directions, proven with real traffic.

Two namespaces (``c58ns-<pid>-host`` and ``-pod``) joined by a veth pair stand for a node and
one of its pods: ``h0`` on the host side, ``eth0`` in the pod, addresses inside
198.18.0.0/15. The agent's program (``agents/cloud58_netshaper.py``) runs in the host
namespace the way it runs on a node. A Python sender streams TCP for a moment and the
receiver measures the rate after a warm-up: into the pod (host sends) and out of the pod
(pod sends). Measured rates must stay within 10 % of the limit (a figure below is measured again,
up to three times: the load of a shared machine only lowers it); a changed limit applies on
the same veth pair without touching the pod; removing it gives back full speed.

The tests share one pair and run in file order: limit, change, remove.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from ansible_collections.cloud58.platform.plugins.module_utils.node import shaper
from cloud58_lab import programs
from cloud58_lab.netlab import NetLab, run_prefix

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[2]
AGENT = REPO / "collections/ansible_collections/cloud58/platform/agents/cloud58_netshaper.py"
HOST_ADDRESS = "198.18.210.1"
POD_ADDRESS = "198.18.210.2"
PORT = 5201
POD = "lab-demo/echo-0"
VETH = "h0"
WARMUP_S = 0.7  # slow start and the initial bucket, not counted
WINDOW_S = 2.0  # the measured part of each stream
TOLERANCE = 0.10

RECEIVER = """
import socket, sys, time
address, port, warmup, window = sys.argv[1], int(sys.argv[2]), float(sys.argv[3]), float(sys.argv[4])
server = socket.socket()
server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
server.bind((address, port))
server.listen(1)
print("ready", flush=True)
conn, _ = server.accept()
conn.settimeout(20)
buf = bytearray(1 << 16)
total, start, samples = 0, None, []
while True:
    got = conn.recv_into(buf)
    if not got:
        sys.exit("the sender stopped before the window ended")
    now = time.monotonic()
    total += got
    start = now if start is None else start
    if now - start >= warmup:
        samples.append((now, total))
    if samples and now - samples[0][0] >= window:
        break
# The slope of bytes over time (least squares): a moment the receiver lagged behind does not
# count the way it would in (last - first) / time.
n = len(samples)
mean_t = sum(t for t, _ in samples) / n
mean_b = sum(b for _, b in samples) / n
slope = sum((t - mean_t) * (b - mean_b) for t, b in samples) / sum((t - mean_t) ** 2 for t, _ in samples)
print(slope * 8, flush=True)
"""
SENDER = """
import socket, sys, time
sock = socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=20)
chunk = b"x" * (1 << 16)
deadline = time.monotonic() + 20
try:
    while time.monotonic() < deadline:
        sock.sendall(chunk)
except OSError:
    pass  # the receiver closed: it has its figure
"""


def _in(ns: str, *argv) -> list[str]:
    return programs.argv("ip", "netns", "exec", ns, *argv)


class Pair:
    """The host and pod namespaces, the agent's program and the traffic between them."""

    def __init__(self, net: NetLab) -> None:
        self.net = net
        self.host, self.pod = net.add_linked_pair(
            "host", "pod", if_a=VETH, if_b="eth0", addr_a=f"{HOST_ADDRESS}/30", addr_b=f"{POD_ADDRESS}/30"
        )

    def run_in_host(self, argv: list[str]) -> tuple[int, str, str]:
        """The agent's ``run`` callable, in the host namespace."""
        done = subprocess.run(_in(self.host, *argv), capture_output=True, text=True, check=False)
        return done.returncode, done.stdout, done.stderr

    def agent(self, *args: str) -> subprocess.CompletedProcess:
        return subprocess.run(
            _in(self.host, programs.path("python3"), AGENT, *args),
            capture_output=True,
            text=True,
            check=False,
        )

    def apply(self, **rates: str) -> dict:
        args = ["apply", "--pod", POD, "--veth", VETH]
        for direction, rate in rates.items():
            args += [f"--{direction}", rate]
        done = self.agent(*args)
        assert done.returncode == 0, done.stderr
        return json.loads(done.stdout)

    def rate(self, direction: str) -> float:
        """Bits per second measured by a receiver in the pod (``ingress``) or on the host (``egress``)."""
        receiver_ns, address, sender_ns = (
            (self.pod, POD_ADDRESS, self.host)
            if direction == "ingress"
            else (self.host, HOST_ADDRESS, self.pod)
        )
        python = programs.path("python3")
        receiver = subprocess.Popen(
            _in(receiver_ns, python, "-c", RECEIVER, address, PORT, WARMUP_S, WINDOW_S),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        sender = None
        try:
            assert receiver.stdout.readline().strip() == "ready"
            sender = subprocess.Popen(
                _in(sender_ns, python, "-c", SENDER, address, PORT),
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
            out, err = receiver.communicate(timeout=30)
            assert receiver.returncode == 0, err
            return float(out.strip())
        finally:
            for proc in (receiver, sender):
                if proc is not None and proc.poll() is None:
                    proc.kill()
                    proc.wait()

    def shaped_rate(self, direction: str, limit: int, tries: int = 3) -> float:
        """The rate under a limit. tbf caps it, and a machine busy elsewhere can only lower a
        window's figure: a figure below the band is measured again, up to ``tries`` times, and
        the highest returned; a figure above it is returned at once."""
        figures = []
        for _ in range(tries):
            figures.append(self.rate(direction))
            if figures[-1] >= (1 - TOLERANCE) * limit:
                break
        return max(figures)


@pytest.fixture(scope="module")
def pair():
    with NetLab(prefix=run_prefix("c58ns")) as net:
        yield Pair(net)


def _within(measured: float, limit: int) -> bool:
    return abs(measured - limit) <= TOLERANCE * limit


@pytest.mark.parametrize("direction", ["ingress", "egress"])
def test_unlimited_pair_is_faster_than_every_limit_below(pair, direction):
    """Without shaping the pair carries far more than the limits below (else they would prove nothing)."""
    assert pair.rate(direction) > 4 * 50_000_000


def test_limit_applies_both_directions(pair):
    result = pair.apply(ingress="20M", egress="30M")
    assert result["changed"] is True
    assert result["applied"] == {"ingress": 20_000_000, "egress": 30_000_000}
    ingress, egress = pair.shaped_rate("ingress", 20_000_000), pair.shaped_rate("egress", 30_000_000)
    assert (_within(ingress, 20_000_000), _within(egress, 30_000_000)) == (True, True), (ingress, egress)


def test_same_limits_again_change_nothing(pair):
    result = pair.apply(ingress="20M", egress="30M")
    assert (result["changed"], result["commands"]) == (False, [])


def test_changed_limit_applies_in_place_on_the_running_pair(pair):
    ifb = shaper.ifb_name(VETH)
    result = pair.apply(ingress="50M", egress="20M")
    assert result["commands"] == [
        f"tc qdisc replace dev {VETH} root tbf rate 50000000bit burst 65536 latency 50000us",
        f"tc qdisc replace dev {ifb} root tbf rate 20000000bit burst 65536 latency 50000us",
    ]
    ingress, egress = pair.shaped_rate("ingress", 50_000_000), pair.shaped_rate("egress", 20_000_000)
    assert (_within(ingress, 50_000_000), _within(egress, 20_000_000)) == (True, True), (ingress, egress)


def test_show_reports_applied_rates_and_drops(pair):
    """The streams above pushed more than the limits in both directions: the tbf of each side
    (the veth's root for traffic into the pod, the ifb's for traffic out of it) dropped packets,
    and show reports both counts as the kernel's qdisc statistics have them."""
    done = pair.agent("show", "--veth", VETH)
    assert done.returncode == 0, done.stderr
    shown = json.loads(done.stdout)
    assert shown["applied"] == {"ingress": 50_000_000, "egress": 20_000_000}
    kernel = {
        direction: json.loads(pair.run_in_host(["tc", "-s", "-j", "qdisc", "show", "dev", dev])[1])
        for direction, dev in (("ingress", VETH), ("egress", shaper.ifb_name(VETH)))
    }
    roots = {d: next(q for q in qdiscs if q.get("root")) for d, qdiscs in kernel.items()}
    assert {d: q["kind"] for d, q in roots.items()} == {"ingress": "tbf", "egress": "tbf"}
    assert shown["drops"] == {d: q["drops"] for d, q in roots.items()}
    assert (shown["drops"]["ingress"] > 0, shown["drops"]["egress"] > 0) == (True, True), shown["drops"]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        pytest.param(
            ["--ingress", "10Mbit/s"],
            "cloud58-netshaper: pod lab-demo/echo-0: annotation kubernetes.io/ingress-bandwidth: "
            "'10Mbit/s' is not a rate in bits per second as a Kubernetes quantity (like 10M, 1G)\n",
            id="unit-text",
        ),
        pytest.param(
            ["--egress", "0"],
            "cloud58-netshaper: pod lab-demo/echo-0: annotation kubernetes.io/egress-bandwidth: '0' is "
            "below 1k (1 kbit/s), the smallest rate the kubelet accepts\n",
            id="zero",
        ),
        pytest.param(
            ["--annotations", '{"kubernetes.io/egress-bandwidth": "-1"}'],
            "cloud58-netshaper: pod lab-demo/echo-0: annotation kubernetes.io/egress-bandwidth: '-1' is "
            "below 1k (1 kbit/s), the smallest rate the kubelet accepts\n",
            id="negative",
        ),
    ],
)
def test_bad_rate_is_refused_before_anything_changes(pair, args, message):
    done = pair.agent("apply", "--pod", POD, "--veth", VETH, *args)
    assert (done.returncode, done.stderr, done.stdout) == (2, message, "")
    shown = json.loads(pair.agent("show", "--veth", VETH).stdout)
    assert shown["applied"] == {"ingress": 50_000_000, "egress": 20_000_000}


def test_a_redirect_to_a_deleted_ifb_is_made_anew_under_a_name_of_ours(pair):
    """The CNI bandwidth plugin's DEL deletes its ifb while the veth still lives; tc then shows
    the redirect's target as "*", a name the kernel takes for a new ifb. apply drops the filter
    that leads nowhere and redirects to an ifb of its own, which shapes as before."""
    ifb = shaper.ifb_name(VETH)
    assert pair.run_in_host(["ip", "link", "del", "dev", ifb])[0] == 0
    result = pair.apply(ingress="50M", egress="20M")
    assert result["commands"] == [
        f"tc qdisc del dev {VETH} ingress",
        f"ip link add {ifb} type ifb",
        f"ip link set {ifb} up",
        f"tc qdisc replace dev {ifb} root tbf rate 20000000bit burst 65536 latency 50000us",
        f"tc qdisc add dev {VETH} ingress",
        f"tc filter add dev {VETH} parent ffff: protocol all u32 match u32 0 0 action mirred egress "
        f"redirect dev {ifb}",
    ]
    assert pair.run_in_host(["ip", "link", "show", "dev", "*"])[0] != 0
    egress = pair.shaped_rate("egress", 20_000_000)
    assert _within(egress, 20_000_000), egress


def test_removed_limits_give_full_speed_back(pair):
    ifb = shaper.ifb_name(VETH)
    result = pair.apply()
    assert result["commands"] == [
        f"tc qdisc del dev {VETH} root",
        f"tc qdisc del dev {VETH} ingress",
        f"ip link del {ifb}",
    ]
    assert pair.rate("ingress") > 4 * 50_000_000
    assert pair.rate("egress") > 4 * 50_000_000
    assert pair.run_in_host(["ip", "link", "show", ifb])[0] != 0
