"""The TOA lab: a client, the nftables full-NAT director lab1-lvs1 and one realserver in
network namespaces, for the TOA eBPF programs of the role ``toa`` (docs/lvs.md, "TOA").

``tests/network/test_toa_ebpf.py`` and ``benchmarks/bench_toa.py`` build it the same way:

* namespaces ``<prefix>client``, ``<prefix>director``, ``<prefix>rs`` (a :class:`NetLab`);
  the client (198.18.4.2) and the realserver (198.18.5.2) each joined to the director by a
  veth, the director's client-facing interface is ``client0``;
* the director's table is ``render_ruleset`` of ``module_utils/lvs/fullnat.py`` for
  lab1-lvs1 of ``inventories/lab`` (its VIP 198.18.2.10, port 80 and local-address range
  are the plan's), one realserver ``198.18.5.2:8080``, applied with ``nft -f``;
* a cgroup v2 hierarchy mounted in the lab's own directory (outside /sys, which
  ``ip netns exec`` remounts) with one cgroup ``/<prefix>server``: :meth:`ToaLab.start_server`
  starts a server in the realserver's namespace inside it, where the realserver programs
  attach; the programs' pins go to a bpffs in the same directory.

The programs are built, attached and detached by the role's loader ``cloud58-toa-ebpf``
(the file in the source tree, or the role's installed copy). :meth:`ToaLab.close` detaches
whatever is attached, stops the servers by PID, deletes the namespaces, removes the cgroup
and both mounts, even after a failure, and reports what it could not clean and which of
our programs the kernel still holds. Every address is inside 198.18.0.0/15.
"""

from __future__ import annotations

import ipaddress
import json
import subprocess
from pathlib import Path

from ansible_collections.cloud58.platform.plugins.module_utils.lvs.fullnat import (
    director_state,
    render_ruleset,
)
from ansible_collections.cloud58.platform.plugins.module_utils.topology import build_plan, load_inventory
from cloud58_lab import programs
from cloud58_lab.netlab import NetLab, NetLabError

REPO = Path(__file__).resolve().parents[2]
INVENTORY = REPO / "inventories/lab"
ROLE_FILES = REPO / "collections/ansible_collections/cloud58/platform/roles/toa/files"
LOADER = ROLE_FILES / "cloud58-toa-ebpf"
SOURCES = ROLE_FILES / "ebpf"
DATACENTER = "lab1"
DIRECTOR = "lab1-lvs1"
VIP = "lab1-ingress"
VIP_ADDRESS = "198.18.2.10"
VIP_PORT = 80
CLIENT = "198.18.4.2"
REALSERVER = "198.18.5.2"
RS_PORT = 8080
SLOTS = 8
DIRECTOR_INTERFACE = "client0"
OUR_PROGRAMS = ("toa_director", "toa_sockops", "toa_getpeername4")

# Joins the cgroup given as argv[1], then runs argv[2:]: the server starts inside it.
_IN_CGROUP = (
    "import os, sys; open(sys.argv[1], 'w').write(str(os.getpid())); os.execv(sys.argv[2], sys.argv[2:])"
)


def loader(*args, check: bool = True, path: Path = LOADER) -> subprocess.CompletedProcess:
    """Run the loader with ``args``; with ``check``, its one-line error as :class:`NetLabError`."""
    proc = subprocess.run(
        [programs.path("python3"), str(path), *map(str, args)], capture_output=True, text=True, check=False
    )
    if check and proc.returncode != 0:
        raise NetLabError(proc.stderr.strip() or f"cloud58-toa-ebpf {args[0]}: exit {proc.returncode}")
    return proc


def our_programs() -> list[str]:
    """The names of our programs the kernel has loaded (``bpftool prog show``, by the loader)."""
    return sorted(p["name"] for p in json.loads(loader("status").stdout))


def mounted(path: Path) -> bool:
    return any(line.split()[4] == str(path) for line in Path("/proc/self/mountinfo").read_text().splitlines())


class ToaLab:
    """One TOA lab in ``work`` (a directory of its own); namespaces named ``<prefix>...``."""

    def __init__(self, prefix: str, work: Path, inventory: Path = INVENTORY) -> None:
        self.net = NetLab(prefix=prefix)
        self.work = Path(work)
        self.inventory = Path(inventory)
        self.objects = self.work / "objects"
        self.bpffs = self.work / "bpffs"
        self.cgroup2 = self.work / "cgroup2"
        self.cgroup = f"/{self.net.prefix}server"
        self.local_pool: ipaddress.IPv4Network | None = None

    @property
    def cgroup_dir(self) -> Path:
        return self.cgroup2 / self.cgroup.strip("/")

    def start(self) -> None:
        """The cgroup, the namespaces, the links and the director's full-NAT table."""
        plan = build_plan(load_inventory(str(self.inventory))).as_dict()
        lvs = plan["datacenters"][DATACENTER]["lvs"]
        state = director_state(
            lvs,
            DIRECTOR,
            {VIP: [{"address": REALSERVER, "port": RS_PORT, "vip_port": VIP_PORT}]},
            slots=SLOTS,
        )
        self.local_pool = ipaddress.ip_network(lvs["directors"][DIRECTOR]["local_addresses"]["cidr"])
        net = self.net
        self.cgroup2.mkdir()
        subprocess.run(programs.argv("mount", "-t", "cgroup2", "none", self.cgroup2), check=True)
        self.cgroup_dir.mkdir()
        net.add_namespace("client", forwarding=False)
        net.add_namespace("director")
        net.add_namespace("rs", forwarding=False)
        net.link(
            "client",
            "director",
            if_a="eth0",
            if_b=DIRECTOR_INTERFACE,
            addr_a=f"{CLIENT}/30",
            addr_b="198.18.4.1/30",
        )
        net.link("rs", "director", if_a="eth0", if_b="rs0", addr_a=f"{REALSERVER}/30", addr_b="198.18.5.1/30")
        net.exec("client", "ip", "route", "add", "default", "via", "198.18.4.1")
        net.exec("rs", "ip", "route", "add", "default", "via", "198.18.5.1")
        net.exec("director", "ip", "address", "add", f"{VIP_ADDRESS}/32", "dev", "lo")
        ruleset = self.work / "fullnat.nft"
        ruleset.write_text(render_ruleset(state) + "\n")
        net.exec("director", "nft", "-f", str(ruleset))

    def start_server(self, code: str, *args: str) -> subprocess.Popen:
        """Python ``code`` with ``args`` in the realserver's namespace, inside the lab's cgroup
        (joined before exec); ready once it printed ``ready``. Stopped by :meth:`close`."""
        server = programs.argv(
            "ip", "netns", "exec", self.net.ns("rs"), programs.path("python3"), "-c", code, *args
        )
        proc = subprocess.Popen(
            programs.argv("python3", "-c", _IN_CGROUP, self.cgroup_dir / "cgroup.procs", *server),
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
            start_new_session=True,
        )
        self.net.servers.append(proc)
        line = proc.stdout.readline().strip()
        if line != "ready":
            raise NetLabError(f"server in {self.net.ns('rs')}: printed {line!r} instead of 'ready'")
        return proc

    def build(self) -> None:
        """Compile the programs from the source tree into :attr:`objects`."""
        loader("build", "--src", SOURCES, "--out", self.objects)

    def _director(self) -> tuple:
        """The loader's arguments that name the director's pins, interface and namespace."""
        return ("--bpffs", self.bpffs, "--dev", DIRECTOR_INTERFACE, "--netns", self.net.ns("director"))

    def _realserver(self) -> tuple:
        """The loader's arguments that name the realserver's pins and cgroup."""
        return ("--bpffs", self.bpffs, "--cgroup2-mount", self.cgroup2, "--cgroup", self.cgroup)

    def attach(self) -> None:
        """Attach the built programs: the director's on ``client0``, the realserver's to the cgroup."""
        vip = f"{VIP_ADDRESS}:{VIP_PORT}"
        loader("director-attach", "--objects", self.objects, "--vip", vip, *self._director())
        loader("realserver-attach", "--objects", self.objects, *self._realserver())

    def detach(self) -> list[str]:
        """Detach whatever is attached; the loader's errors."""
        steps = []
        if self.net.ns("director") in self.net.namespaces:
            steps.append(("director-detach", *self._director()))
        if self.cgroup_dir.is_dir():  # else nothing was attached there
            steps.append(("realserver-detach", *self._realserver()))
        problems = []
        for args in steps:
            proc = loader(*args, check=False)
            if proc.returncode != 0:
                problems.append(proc.stderr.strip())
        return problems

    def close(self) -> tuple[list[str], list[str]]:
        """Detach, stop the servers, delete the namespaces, the cgroup and both mounts, each step
        even when one before failed: (what could not be cleaned, our programs still loaded)."""
        problems = self.detach()
        problems += self.net.close()
        try:
            if self.cgroup_dir.is_dir():
                self.cgroup_dir.rmdir()
        except OSError as e:
            problems.append(f"cgroup {self.cgroup_dir}: {e}")
        for mount in (self.cgroup2, self.bpffs):
            if mounted(mount):
                proc = subprocess.run(
                    programs.argv("umount", mount), capture_output=True, text=True, check=False
                )
                if proc.returncode != 0:
                    problems.append(f"umount {mount}: {proc.stderr.strip()}")
        return problems, our_programs()
