"""TOA in eBPF through the nftables full-NAT director, proven with real packets.

Namespaces (``c58toa-<pid>-*``): a client, the director lab1-lvs1 of inventories/lab (its
VIP, port and local-address range are the plan's, the table is ``render_ruleset`` of
``module_utils/lvs/fullnat.py`` applied with ``nft -f``) and one realserver running an
unmodified Python TCP server, built by ``cloud58_lab.toalab`` (which the benchmark
``bench_toa.py`` shares). The role ``cloud58.platform.toa`` runs on this host with
ansible-playbook (every path under this test's directory): it installs its sources
(``roles/toa/files/ebpf/``) and loader ``cloud58-toa-ebpf``, compiles them and writes the
systemd units; there is no systemd here, so the test runs the units' ExecStart and
ExecStop command lines itself (the director's in the director's namespace). Programs are
pinned in a bpffs and attached through a cgroup v2 hierarchy the test mounts in its own
directory (outside /sys, which ``ip netns exec`` remounts).

The server answers every connection with what ``accept()`` and ``getpeername()`` returned
and with the peer the kernel's own connection table (``/proc/net/tcp`` of the realserver's
namespace) holds, which no eBPF program rewrites: that is the packet-level source.
The tests share one lab and run in file order: without programs; the role (refusals,
check mode, a run, a second run); attached; detached.
Every address is inside 198.18.0.0/15.
"""

from __future__ import annotations

import ipaddress
import json
import os
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from cloud58_lab import programs
from cloud58_lab.netlab import run_prefix
from cloud58_lab.toalab import (
    CLIENT,
    DIRECTOR_INTERFACE,
    OUR_PROGRAMS,
    REALSERVER,
    RS_PORT,
    VIP_ADDRESS,
    VIP_PORT,
    ToaLab,
    our_programs,
)

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[2]
PLAYBOOK = """\
- name: Let servers see their LVS clients
  hosts: all
  gather_facts: false
  roles:
    - cloud58.platform.toa
"""
# An unmodified server: it knows nothing of TOA. The third field is the kernel's own view
# of the peer: the ESTABLISHED entry of /proc/net/tcp whose local end is this socket.
SERVER = """
import socket, sys
def kernel_peer(local):
    want = "%08X:%04X" % (int.from_bytes(socket.inet_aton(local[0]), "little"), local[1])
    for line in open("/proc/net/tcp").read().splitlines()[1:]:
        f = line.split()
        if f[1] == want and f[3] == "01":
            a, p = f[2].split(":")
            return "%s:%d" % (socket.inet_ntoa(int(a, 16).to_bytes(4, "little")), int(p, 16))
    return "none"
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind((sys.argv[1], int(sys.argv[2]))); s.listen(16)
print("ready", flush=True)
while True:
    c, peer = s.accept()
    name = c.getpeername()
    c.sendall(("%s:%d %s:%d %s" % (peer + name + (kernel_peer(c.getsockname()),))).encode())
    c.close()
"""

CLIENT_CODE = """
import socket, sys
c = socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=5)
me = c.getsockname()
print("%s:%d %s" % (me[0], me[1], c.recv(200).decode()))
"""

# Prints the IPv4 packet (hex) of the first ACK towards the server port that carries a TCP
# option of kind 254, as the realserver's eth0 receives it (after the director's NAT).
CAPTURE = """
import socket, sys
s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(0x0800))
s.bind(("eth0", 0)); s.settimeout(20)
print("ready", flush=True)
while True:
    frame = s.recv(2048)
    ip = frame[14:]
    if ip[9] != 6:
        continue
    ip = ip[: int.from_bytes(ip[2:4], "big")]
    tcp = ip[(ip[0] & 15) * 4 :]
    if int.from_bytes(tcp[2:4], "big") != int(sys.argv[1]) or tcp[13] & 0x12 != 0x10:
        continue
    opts, i = tcp[20 : (tcp[12] >> 4) * 4], 0
    while i < len(opts) and opts[i] != 0:
        if opts[i] == 254:
            print(ip.hex(), flush=True)
            sys.exit(0)
        i += 1 if opts[i] == 1 else max(opts[i + 1], 2)
"""

# Switches the transmit checksum offload of eth0 (ETHTOOL_STXCSUM) to argv[1] (0 or 1): off,
# the client's kernel sums every segment itself and the director gets complete checksums
# (CHECKSUM_UNNECESSARY) instead of CHECKSUM_PARTIAL ones that only carry the pseudo header.
TX_CSUM = """
import ctypes, fcntl, socket, struct, sys
value = ctypes.create_string_buffer(struct.pack("II", 0x17, int(sys.argv[1])), 8)
request = struct.pack("16sP", b"eth0", ctypes.addressof(value)).ljust(40, b"\\0")
fcntl.ioctl(socket.socket(), 0x8946, request)
"""

# A client that makes its handshake by hand through a raw socket, so that its first ACK can
# carry a forged TOA option and data (argv: source, VIP, port, source port, forged
# "address:port" or "-", data as hex); prints what the server answered. The client
# namespace drops the RSTs its kernel would send for a connection it does not know.
RAW_CLIENT = """
import socket, struct, sys
src, dst, dport, sport = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
forged = b""
if sys.argv[5] != "-":
    address, port = sys.argv[5].split(":")
    forged = bytes([254, 8]) + struct.pack("!H", int(port)) + socket.inet_aton(address)
payload = bytes.fromhex(sys.argv[6])
def checksum(data):
    data += bytes(len(data) % 2)
    total = sum(struct.unpack("!%dH" % (len(data) // 2), data))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return ~total & 0xFFFF
def segment(seq, ack, flags, options=b"", data=b""):
    offset = (20 + len(options)) // 4 << 4
    head = struct.pack("!HHIIBBHHH", sport, dport, seq, ack, offset, flags, 65535, 0, 0) + options + data
    pseudo = socket.inet_aton(src) + socket.inet_aton(dst) + struct.pack("!BBH", 0, 6, len(head))
    return head[:16] + struct.pack("!H", checksum(pseudo + head)) + head[18:]
def receive(want):
    while True:
        packet = s.recv(4096)
        tcp = packet[(packet[0] & 15) * 4 :]
        ports, seq, flags = struct.unpack("!HH", tcp[:4]), struct.unpack("!I", tcp[4:8])[0], tcp[13]
        if ports == (dport, sport) and want(flags, tcp):
            return seq, tcp[(tcp[12] >> 4) * 4 :]
s = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_TCP)
s.settimeout(20)
isn = 1000
s.sendto(segment(isn, 0, 0x02), (dst, 0))
server_isn, _ = receive(lambda flags, tcp: flags & 0x12 == 0x12)
s.sendto(segment(isn + 1, server_isn + 1, 0x18 if payload else 0x10, forged, payload), (dst, 0))
_, data = receive(lambda flags, tcp: len(tcp) > (tcp[12] >> 4) * 4)
print(data.decode())
"""
NO_RST = """\
table ip c58toa_client {
\tchain output {
\t\ttype filter hook output priority 0; policy accept;
\t\ttcp flags & rst == rst drop
\t}
}
"""


def _capture(lab):
    """The capture in the realserver namespace, ready."""
    capture = subprocess.Popen(
        programs.argv(
            "ip", "netns", "exec", lab.net.ns("rs"), programs.path("python3"), "-c", CAPTURE, RS_PORT
        ),
        stdout=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    lab.net.servers.append(capture)
    assert capture.stdout.readline().strip() == "ready"
    return capture


def _checksum(data):
    if len(data) % 2:
        data += b"\0"
    total = sum(int.from_bytes(data[i : i + 2], "big") for i in range(0, len(data), 2))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return ~total & 0xFFFF


def _checksums(ip):
    """(IPv4 header checksum valid, state of the TCP checksum): ``complete`` when it sums the
    pseudo header and segment to zero; ``pseudo header`` when the field holds just the sum of
    the pseudo header (with the packet's addresses and TCP length), as under checksum
    offload (CHECKSUM_PARTIAL) before a NIC completes it; else ``wrong``."""
    ihl = (ip[0] & 15) * 4
    tcp = ip[ihl:]
    pseudo = ip[12:20] + b"\0\x06" + len(tcp).to_bytes(2, "big")
    if _checksum(pseudo + tcp) == 0:
        state = "complete"
    elif int.from_bytes(tcp[16:18], "big") == ~_checksum(pseudo) & 0xFFFF:
        state = "pseudo header"
    else:
        state = "wrong"
    return (_checksum(ip[:ihl]) == 0, state)


def _toa_option(ip):
    """The bytes of the last option of kind 254 in the TCP header of ``ip``."""
    tcp = ip[(ip[0] & 15) * 4 :]
    opts, i, found = tcp[20 : (tcp[12] >> 4) * 4], 0, b""
    while i < len(opts) and opts[i] != 0:
        if opts[i] == 1:
            i += 1
            continue
        if opts[i] == 254:
            found = opts[i : i + opts[i + 1]]
        i += opts[i + 1]
    return found


class Lab(ToaLab):
    """The TOA lab with the role: run by ansible-playbook, its units' command lines run here."""

    def __init__(self, prefix, work):
        super().__init__(prefix, work)
        self.runs = 0

    def connect(self):
        """One connection client -> VIP: {client, accept, getpeername, kernel} as 'addr:port'."""
        out = self.net.exec(
            "client", "python3", "-c", CLIENT_CODE, VIP_ADDRESS, str(VIP_PORT), timeout=20
        ).stdout.split()
        return dict(zip(("client", "accept", "getpeername", "kernel"), out, strict=True))

    def role_vars(self, **extra):
        """The role's variables: everything under this test's directory, the lab's interface."""
        role = self.work / "role"
        return {
            "toa_ebpf_src_dir": str(role / "src"),
            "toa_ebpf_build_dir": str(self.objects),
            "toa_ebpf_loader": str(role / "cloud58-toa-ebpf"),
            "toa_ebpf_unit_dir": str(role / "units"),
            "toa_ebpf_bpffs": str(self.bpffs),
            "toa_ebpf_cgroup2_mount": str(self.cgroup2),
            "toa_ebpf_cgroup": self.cgroup,
            "toa_ebpf_director": True,
            "toa_ebpf_director_interface": DIRECTOR_INTERFACE,
            "toa_ebpf_director_vips": [f"{VIP_ADDRESS}:{VIP_PORT}"],
            # no systemd here and the packages are there: the units' commands run below
            "toa_ebpf_install_packages": False,
            "toa_ebpf_start": False,
            "ansible_connection": "local",
            "ansible_python_interpreter": sys.executable,
            **extra,
        }

    def play(self, check=False, **extra):
        """Run the role on this host; ({changed, failures}, failed tasks' messages)."""
        self.runs += 1
        playbook = self.work / "play.yml"
        playbook.write_text(PLAYBOOK)
        variables = self.work / f"vars-{self.runs}.json"
        variables.write_text(json.dumps(self.role_vars(**extra)))
        env = dict(
            os.environ,
            ANSIBLE_CONFIG=str(REPO / "ansible.cfg"),
            ANSIBLE_STDOUT_CALLBACK="ansible.builtin.json",
            PYTHONPATH=str(REPO / "collections"),
        )
        proc = subprocess.run(
            programs.argv("ansible-playbook", "-i", "toa-host,", playbook, "-e", f"@{variables}")
            + (["--check", "--diff"] if check else []),
            capture_output=True,
            text=True,
            env=env,
            cwd=REPO,
            check=False,
        )
        report = json.loads(proc.stdout)
        stats = report["stats"]["toa-host"]
        failed = [
            result["msg"]
            for play in report["plays"]
            for task in play["tasks"]
            for result in task["hosts"].values()
            if result.get("failed")
        ]
        return {"changed": stats["changed"], "failures": stats["failures"]}, failed

    def unit_command(self, side, key):
        """``key`` (ExecStart, ExecStop) of the unit the role wrote, as argv, as systemd runs it
        (the director's in the director's namespace, where its interface is)."""
        text = (self.work / "role/units" / f"cloud58-toa-{side}.service").read_text()
        line = next(x for x in text.splitlines() if x.startswith(f"{key}="))
        argv = shlex.split(line.split("=", 1)[1])
        return (
            programs.argv("ip", "netns", "exec", self.net.ns("director"), *argv)
            if side == "director"
            else argv
        )

    def run_units(self, key):
        for side in ("director", "realserver"):
            proc = subprocess.run(self.unit_command(side, key), capture_output=True, text=True, check=False)
            assert proc.returncode == 0, proc.stderr


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    lab = Lab(run_prefix("c58toa"), tmp_path_factory.mktemp("toa"))
    try:
        lab.start()
        lab.start_server(SERVER, REALSERVER, str(RS_PORT))
        yield lab
    finally:
        problems, left = lab.close()
        assert (problems, left) == ([], []), "cleanup left attached programs or errors"


def _split(endpoint):
    address, port = endpoint.rsplit(":", 1)
    return address, int(port)


def test_without_toa_the_server_sees_a_local_address(lab):
    seen = lab.connect()
    assert our_programs() == []
    kernel_address, _ = _split(seen["kernel"])
    assert ipaddress.ip_address(kernel_address) in lab.local_pool, seen
    # accept() and getpeername() report the same local address the packets came from
    assert (seen["accept"], seen["getpeername"]) == (seen["kernel"], seen["kernel"])
    assert _split(seen["client"])[0] == CLIENT


KMOD_MISSING = (
    "toa-host: toa_kmod_package is not set: with toa_mode=kmod set it to the Debian package that"
    " ships the TOA module built for this host's kernel; toa_kmod_version is not set: with"
    " toa_mode=kmod set it to the exact version of toa_kmod_package"
)


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ({"toa_mode": "kmod"}, KMOD_MISSING),
        (
            {"toa_ebpf_director_interface": "", "toa_ebpf_director_vips": ["198.18.2.10"]},
            "toa-host: toa_ebpf_director_interface is not set: the director program needs the"
            " client-facing interface; toa_ebpf_director_vips: 198.18.2.10 is not ADDRESS:PORT (IPv4)",
        ),
    ],
    ids=["kmod-without-package-and-version", "director-without-interface-bad-vip"],
)
def test_role_refuses_incomplete_variables_before_changing_anything(lab, extra, message):
    assert lab.play(**extra) == ({"changed": 0, "failures": 1}, [message])
    assert not (lab.work / "role").exists()


def test_role_check_mode_changes_nothing(lab):
    # directories, sources, loader, units would change; nothing is compiled in check mode
    assert lab.play(check=True) == ({"changed": 4, "failures": 0}, [])
    assert not (lab.work / "role").exists()


def test_role_installs_and_compiles_then_reports_no_change(lab):
    (lab.work / "role/units").mkdir(parents=True)  # /etc/systemd/system on a host
    # directories, sources, loader, compilation, units
    assert lab.play() == ({"changed": 5, "failures": 0}, [])
    assert sorted(p.name for p in lab.objects.iterdir()) == [
        "toa_director.o",
        "toa_realserver.o",
        "vmlinux.h",
    ]
    assert lab.unit_command("realserver", "ExecStop") == [
        "/usr/bin/python3",
        str(lab.work / "role/cloud58-toa-ebpf"),
        "realserver-detach",
        "--bpffs",
        str(lab.bpffs),
        "--cgroup2-mount",
        str(lab.cgroup2),
        "--cgroup",
        lab.cgroup,
    ]
    assert lab.play() == ({"changed": 0, "failures": 0}, [])
    assert our_programs() == []


def test_units_attach_the_programs(lab):
    lab.run_units("ExecStart")
    assert our_programs() == sorted(OUR_PROGRAMS)


@pytest.mark.parametrize(
    ("tx_checksum", "tcp_checksum"),
    [(1, "pseudo header"), (0, "complete")],
    ids=["client-checksum-offload", "client-full-checksums"],
)
def test_with_toa_accept_and_getpeername_show_the_client(lab, tx_checksum, tcp_checksum):
    lab.net.exec("client", "python3", "-c", TX_CSUM, str(tx_checksum))
    capture = _capture(lab)
    seen = lab.connect()
    packet = bytes.fromhex(capture.communicate(timeout=30)[0].strip())
    # the exact client address and port, while the packets still come from the pool
    assert (seen["accept"], seen["getpeername"]) == (seen["client"], seen["client"]), seen
    client_address, client_port = _split(seen["client"])
    assert client_address == CLIENT
    kernel_address, _ = _split(seen["kernel"])
    assert ipaddress.ip_address(kernel_address) in lab.local_pool, seen
    assert ipaddress.ip_address(packet[12:16]) == ipaddress.ip_address(kernel_address)
    # the wire format: kind 254, length 8, client port, client IPv4 address
    expected = bytes([254, 8]) + client_port.to_bytes(2, "big") + ipaddress.ip_address(CLIENT).packed
    assert _toa_option(packet) == expected
    # both checksums right after the option, the new lengths and the NAT: with offload the
    # field sums the pseudo header (its TCP length grown by 8) and the segment is summed
    # later; without, the whole segment sums to zero
    assert _checksums(packet) == (True, tcp_checksum)


def test_more_connections_each_see_their_own_client_port(lab):
    ports = set()
    for _ in range(3):
        seen = lab.connect()
        assert (seen["accept"], seen["getpeername"]) == (seen["client"], seen["client"]), seen
        ports.add(_split(seen["client"])[1])
    assert len(ports) == 3


@pytest.mark.parametrize(
    ("sport", "forged", "data"),
    [
        (40123, "198.18.99.99:4242", b""),
        (40124, "-", bytes(range(250)) * 2),
        (40125, "198.18.99.99:4242", b"GET / HTTP/1.0\r\n\r\n"),
    ],
    ids=["forged-option", "data-in-first-ack", "forged-option-and-data"],
)
def test_first_ack_with_a_forged_option_or_data_still_shows_the_client(lab, sport, forged, data):
    ruleset = lab.work / "no-rst.nft"
    ruleset.write_text(NO_RST)
    lab.net.exec("client", "nft", "-f", str(ruleset))
    capture = _capture(lab)
    try:
        out = lab.net.exec(
            "client",
            "python3",
            "-c",
            RAW_CLIENT,
            CLIENT,
            VIP_ADDRESS,
            VIP_PORT,
            sport,
            forged,
            data.hex(),
            timeout=40,
        ).stdout.split()
    finally:
        lab.net.exec("client", "nft", "delete", "table", "ip", "c58toa_client")
    packet = bytes.fromhex(capture.communicate(timeout=30)[0].strip())
    accept, getpeername, kernel = out
    # the director appends the real client after any option the client sent; the last counts
    assert (accept, getpeername) == (f"{CLIENT}:{sport}", f"{CLIENT}:{sport}")
    assert ipaddress.ip_address(_split(kernel)[0]) in lab.local_pool
    # the packet as the realserver got it: the director's option last, the data behind it
    # unchanged, checksums complete (the raw client sums every segment itself)
    expected = bytes([254, 8]) + sport.to_bytes(2, "big") + ipaddress.ip_address(CLIENT).packed
    tcp = packet[(packet[0] & 15) * 4 :]
    assert (_toa_option(packet), tcp[(tcp[12] >> 4) * 4 :], _checksums(packet)) == (
        expected,
        data,
        (True, "complete"),
    )


def test_stopped_units_leave_nothing_and_the_server_sees_the_local_address_again(lab):
    lab.run_units("ExecStop")
    assert our_programs() == []
    # the pins are gone (newer kernels add their own maps.debug and progs.debug)
    assert sorted(p.name for p in lab.bpffs.iterdir() if not p.name.endswith(".debug")) == []
    seen = lab.connect()
    kernel_address, _ = _split(seen["kernel"])
    assert ipaddress.ip_address(kernel_address) in lab.local_pool, seen
    assert (seen["accept"], seen["getpeername"]) == (seen["kernel"], seen["kernel"])
