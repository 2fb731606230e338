"""Routers and hosts in network namespaces: the BGP lab the network tests and ``make lab`` share.

A :class:`NetLab` owns everything it creates and removes it again, even after a failure:

* network namespaces named ``<prefix><name>`` (the prefix is unique per run, for example
  ``c58t-4711-``), each with ``lo`` up and IPv4 forwarding on;
* L2 segments: a namespace holding one Linux bridge; members join it through a veth pair
  created *inside* the namespaces (``ip -n``), so no name ever touches the root namespace;
* or, to meet the lab's host containers, an existing bridge of the root namespace (a podman
  network's): a member joins it through a veth whose root end is named after the run's
  prefix and goes with the member's namespace (:meth:`NetLab.attach_bridge`);
* another process's namespace under a lab name (``ip netns attach``; a host container's, so
  that a speaker runs in it): deleting the name leaves the namespace to its owner
  (:meth:`NetLab.adopt_namespace`);
* point-to-point links (veth pairs) between two namespaces;
* FRR (``zebra`` + ``bgpd``, optionally ``bfdd``) and BIRD 2 processes, started in the
  foreground through ``ip netns exec`` so that the PID the lab records is the daemon's
  own; each router has its own directory for its config, sockets, PID files and logs.

Processes are stopped by PID only (SIGTERM, then SIGKILL after a bounded wait);
namespaces are deleted by their exact names. ``close()`` is idempotent and runs every
cleanup step even when an earlier one fails.

Queries return plain data: BGP session states (``vtysh ... show bgp summary json``,
``birdc show protocols``), BGP RIB prefixes, and kernel routes with their next hops
(``ip -j route``), so tests compare them with ``==``.

Every address a lab uses must be inside 198.18.0.0/15 (:data:`LAB_NETWORK`); the lab
refuses any other.
"""

from __future__ import annotations

import contextlib
import hashlib
import ipaddress
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

from cloud58_lab import programs

LAB_NETWORK = ipaddress.ip_network("198.18.0.0/15")
FRR_USER = "frr"
_IFNAME_MAX = 15


class NetLabError(Exception):
    """Something in the lab could not be created, started or queried."""


def run_prefix(tag: str = "c58t") -> str:
    """A namespace prefix unique to this process: ``c58t-<pid>-``."""
    return f"{tag}-{os.getpid()}-"


def check_lab_address(value: str) -> ipaddress.IPv4Interface:
    """``value`` (``a.b.c.d/len`` or ``a.b.c.d``) as an interface inside 198.18.0.0/15, else raise."""
    iface = ipaddress.ip_interface(value)
    if iface.ip not in LAB_NETWORK:
        raise NetLabError(f"address {value} is outside the lab network {LAB_NETWORK}")
    return iface


def _run(args: list[str], *, check: bool = True, timeout: float = 30) -> subprocess.CompletedProcess:
    proc = subprocess.run(
        programs.resolve(args), capture_output=True, text=True, timeout=timeout, check=False
    )
    if check and proc.returncode != 0:
        raise NetLabError(f"{' '.join(args)} failed ({proc.returncode}): {proc.stderr.strip()}")
    return proc


def free_ports(count: int) -> list[int]:
    """``count`` distinct TCP ports free on 127.0.0.1 (bound at once, then released)."""
    socks = []
    try:
        for _ in range(count):
            s = socket.socket()
            s.bind(("127.0.0.1", 0))
            socks.append(s)
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


def wait_until(
    predicate: Callable[[], object], timeout: float, interval: float = 0.3, what: str = ""
) -> object:
    """Poll ``predicate`` until it returns a truthy value; raise TimeoutError after ``timeout`` s."""
    deadline = time.monotonic() + timeout
    last = None
    while True:
        last = predicate()
        if last:
            return last
        if time.monotonic() >= deadline:
            raise TimeoutError(f"timed out after {timeout}s waiting for {what or predicate}: last={last!r}")
        time.sleep(interval)


@dataclass
class Router:
    """One routing daemon set (FRR or BIRD) running in one namespace."""

    name: str
    kind: str  # "frr" or "bird"
    netns: str
    directory: Path
    processes: dict[str, subprocess.Popen] = field(default_factory=dict)

    @property
    def pids(self) -> dict[str, int]:
        return {daemon: proc.pid for daemon, proc in self.processes.items()}

    def alive(self) -> bool:
        return bool(self.processes) and all(p.poll() is None for p in self.processes.values())

    def log_tail(self, lines: int = 30) -> str:
        out = []
        for log in sorted(self.directory.glob("*.log")):
            text = log.read_text(errors="replace").splitlines()[-lines:]
            out.append(f"--- {log.name}\n" + "\n".join(text))
        return "\n".join(out)


class NetLab:
    """Namespaces, links and routers of one lab run. Use as a context manager."""

    def __init__(self, prefix: str | None = None, workdir: str | Path | None = None) -> None:
        self.prefix = prefix or run_prefix()
        self._own_workdir = workdir is None
        self.workdir = Path(workdir or tempfile.mkdtemp(prefix=self.prefix))
        self.workdir.mkdir(parents=True, exist_ok=True)
        os.chmod(self.workdir, 0o755)  # the frr user walks into its router directories
        self.namespaces: list[str] = []
        self.routers: dict[str, Router] = {}
        self.servers: list[subprocess.Popen] = []
        self._closed = False

    # ---- lifecycle ------------------------------------------------------------------------
    def __enter__(self) -> NetLab:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> list[str]:
        """Stop every process by PID, delete every namespace; return what could not be cleaned."""
        if self._closed:
            return []
        self._closed = True
        problems = []
        for proc in self.servers:
            problems += stop_process(proc)
        for router in list(self.routers.values()):
            for proc in router.processes.values():
                problems += stop_process(proc)
        for ns in reversed(self.namespaces):
            proc = _run(["ip", "netns", "delete", ns], check=False)
            if proc.returncode != 0 and ns in _existing_namespaces():
                problems.append(f"netns {ns}: {proc.stderr.strip()}")
        if self._own_workdir:
            shutil.rmtree(self.workdir, ignore_errors=True)
        return problems

    # ---- namespaces and links ---------------------------------------------------------------
    def ns(self, name: str) -> str:
        """The full namespace name of lab member ``name``."""
        return self.prefix + name

    def add_namespace(self, name: str, forwarding: bool = True) -> str:
        full = self.ns(name)
        _run(["ip", "netns", "add", full])
        self.namespaces.append(full)
        self.exec(name, "ip", "link", "set", "lo", "up")
        value = "1" if forwarding else "0"
        self.exec(name, "sysctl", "-qw", f"net.ipv4.ip_forward={value}")
        # Multipath and asymmetric paths are normal in a fabric: no reverse-path filter.
        self.exec(name, "sysctl", "-qw", "net.ipv4.conf.all.rp_filter=0")
        self.exec(name, "sysctl", "-qw", "net.ipv4.conf.default.rp_filter=0")
        # Hash L4 ports on multipath routes so flows spread over both ToRs.
        self.exec(name, "sysctl", "-qw", "net.ipv4.fib_multipath_hash_policy=1")
        return full

    def adopt_namespace(self, name: str, pid: int) -> str:
        """The network namespace of process ``pid`` (a host container's first process) as
        member ``name``. Nothing in it is changed; :meth:`close` only removes the name."""
        full = self.ns(name)
        _run(["ip", "netns", "attach", full, str(pid)])
        self.namespaces.append(full)
        return full

    def exec(
        self, name: str, *args: str, check: bool = True, timeout: float = 30
    ) -> subprocess.CompletedProcess:
        """Run a command in member ``name``'s namespace."""
        return _run(
            ["ip", "netns", "exec", self.ns(name), *programs.resolve(args)], check=check, timeout=timeout
        )

    def add_switch(self, name: str) -> str:
        """An L2 segment: a namespace with one bridge ``br0`` that members join."""
        self.add_namespace(name, forwarding=False)
        self.exec(name, "ip", "link", "add", "br0", "type", "bridge")
        self.exec(name, "ip", "link", "set", "br0", "up")
        return self.ns(name)

    def attach(self, switch: str, member: str, ifname: str, address: str, port: str | None = None) -> None:
        """Connect ``member`` to the bridge of ``switch`` through interface ``ifname`` with ``address``."""
        port = port or _short(member)
        _check_ifname(port)
        self._join(member, ifname, address, port, self.ns(switch))
        self.exec(switch, "ip", "link", "set", port, "master", "br0")
        self.exec(switch, "ip", "link", "set", port, "up")

    def attach_bridge(self, bridge: str, member: str, ifname: str, address: str) -> str:
        """Connect ``member`` to ``bridge``, a bridge of the root namespace, through interface
        ``ifname`` with ``address``. The root end's name comes from the run's prefix and the
        member's name (unique on the machine); it is deleted with the member's namespace.
        Returns that name."""
        port = "c58b" + hashlib.sha256(self.ns(member).encode()).hexdigest()[:10]
        # the peer goes to this process's own namespace, where the bridge is
        self._join(member, ifname, address, port, str(os.getpid()))
        _run(["ip", "link", "set", port, "master", bridge])
        _run(["ip", "link", "set", port, "up"])
        return port

    def _join(self, member: str, ifname: str, address: str, port: str, port_netns: str) -> None:
        """A veth from ``member`` (``ifname``, up, with ``address``) to ``port`` in
        ``port_netns`` (a namespace name or a PID), which the caller plugs in."""
        iface = check_lab_address(address)
        _check_ifname(ifname)
        args = ["ip", "-n", self.ns(member), "link", "add", ifname, "type", "veth", "peer", "name", port]
        _run([*args, "netns", port_netns])
        self.exec(member, "ip", "address", "add", str(iface), "dev", ifname)
        self.exec(member, "ip", "link", "set", ifname, "up")

    def link(
        self, a: str, b: str, *, if_a: str, if_b: str, addr_a: str | None = None, addr_b: str | None = None
    ) -> None:
        """A point-to-point veth between members ``a`` and ``b``; an address may be None."""
        _check_ifname(if_a)
        _check_ifname(if_b)
        _run(
            [
                "ip",
                "-n",
                self.ns(a),
                "link",
                "add",
                if_a,
                "type",
                "veth",
                "peer",
                "name",
                if_b,
                "netns",
                self.ns(b),
            ]
        )
        for member, ifname, addr in ((a, if_a, addr_a), (b, if_b, addr_b)):
            if addr is not None:
                self.exec(member, "ip", "address", "add", str(check_lab_address(addr)), "dev", ifname)
            self.exec(member, "ip", "link", "set", ifname, "up")

    def add_linked_pair(
        self, a: str, b: str, *, if_a: str, if_b: str, addr_a: str | None = None, addr_b: str | None = None
    ) -> tuple[str, str]:
        """New namespaces ``a`` and ``b`` joined by one veth (:meth:`link`); their full names."""
        names = self.add_namespace(a), self.add_namespace(b)
        self.link(a, b, if_a=if_a, if_b=if_b, addr_a=addr_a, addr_b=addr_b)
        return names

    def set_links(self, name: str, up: bool) -> list[str]:
        """Set every interface of ``name`` except ``lo`` up or down; return their names."""
        names = [i["ifname"] for i in self.ip_json(name, "link", "show") if i["ifname"] != "lo"]
        for ifname in names:
            self.exec(name, "ip", "link", "set", ifname, "up" if up else "down")
        return names

    def ip_json(self, name: str, *args: str) -> list:
        out = self.exec(name, "ip", "-j", *args).stdout
        return json.loads(out) if out.strip() else []

    # ---- routers ----------------------------------------------------------------------------------
    def _router_dir(self, name: str, owner: str | None) -> Path:
        directory = self.workdir / "routers" / name
        directory.mkdir(parents=True, exist_ok=True)
        os.chmod(directory.parent, 0o755)
        os.chmod(directory, 0o755)
        if owner:
            shutil.chown(directory, owner, owner)
        return directory

    def start_frr(self, name: str, config: str, daemons: Iterable[str] = ("zebra", "bgpd")) -> Router:
        """Start FRR daemons in member ``name`` with the integrated ``config`` (frr.conf text)."""
        directory = self._router_dir(name, FRR_USER)
        conf = directory / "frr.conf"
        conf.write_text(config)
        shutil.chown(conf, FRR_USER, FRR_USER)
        router = Router(name=name, kind="frr", netns=self.ns(name), directory=directory)
        self.routers[name] = router
        zserv = directory / "zserv.api"
        empty = directory / "empty.conf"
        empty.write_text("")
        # A restart after a kill finds the dead daemons' sockets and PID files: removed first,
        # so that the waits below see the new daemons' own (else vtysh may reach none of them).
        for stale in [zserv, *(directory / f"{d}.{kind}" for d in daemons for kind in ("vty", "pid"))]:
            stale.unlink(missing_ok=True)
        for daemon in daemons:
            # Each daemon starts empty; the integrated config is then applied through vtysh,
            # the way `vtysh -b` applies /etc/frr/frr.conf on a real router.
            args = [
                "ip",
                "netns",
                "exec",
                self.ns(name),
                programs.path(daemon),
                "-f",
                str(empty),
                "-i",
                str(directory / f"{daemon}.pid"),
                "-z",
                str(zserv),
                "--vty_socket",
                str(directory),
                "-P",
                "0",
                "-u",
                FRR_USER,
                "-g",
                FRR_USER,
                "--log",
                f"file:{directory / daemon}.log",
            ]
            router.processes[daemon] = _spawn(args, directory / f"{daemon}.out")
            if daemon == "zebra":
                wait_until(lambda: zserv.exists() or not router.alive(), 15, 0.1, f"{name}: zebra socket")
        wait_until(lambda: self._vty_ready(router) or not router.alive(), 15, 0.2, f"{name}: vty sockets")
        if not router.alive():
            raise NetLabError(f"FRR on {name} exited at start:\n{router.log_tail()}")
        applied = _run(["vtysh", "--vty_socket", str(directory), "-f", str(conf)], check=False)
        if applied.returncode != 0:
            raise NetLabError(f"FRR on {name} rejected its config: {applied.stdout}{applied.stderr}")
        return router

    def _vty_ready(self, router: Router) -> bool:
        return all((router.directory / f"{d}.vty").exists() for d in router.processes)

    def start_bird(self, name: str, config: str) -> Router:
        """Start BIRD 2 in member ``name`` with ``config`` (bird.conf text)."""
        directory = self._router_dir(name, None)
        conf = directory / "bird.conf"
        conf.write_text(config)
        check = _run(["bird", "-p", "-c", str(conf)], check=False)
        if check.returncode != 0:
            raise NetLabError(f"BIRD config of {name} does not parse: {check.stderr.strip()}")
        router = Router(name=name, kind="bird", netns=self.ns(name), directory=directory)
        self.routers[name] = router
        sock = directory / "bird.ctl"
        args = [
            "ip",
            "netns",
            "exec",
            self.ns(name),
            programs.path("bird"),
            "-f",
            "-c",
            str(conf),
            "-s",
            str(sock),
            "-P",
            str(directory / "bird.pid"),
        ]
        router.processes["bird"] = _spawn(args, directory / "bird.log")
        wait_until(lambda: sock.exists() or not router.alive(), 15, 0.1, f"{name}: BIRD control socket")
        if not router.alive():
            raise NetLabError(f"BIRD on {name} exited at start:\n{router.log_tail()}")
        return router

    def stop_router(self, name: str, sig: int = signal.SIGTERM) -> dict[str, int]:
        """Stop router ``name`` by its PIDs with ``sig`` (SIGKILL: no goodbye to its peers)."""
        router = self.routers[name]
        for proc in router.processes.values():
            stop_process(proc, sig)
        return router.pids

    # ---- queries ---------------------------------------------------------------------------------
    def vtysh(self, name: str, command: str, as_json: bool = False):
        router = self.routers[name]
        out = _run(["vtysh", "--vty_socket", str(router.directory), "-c", command]).stdout
        return json.loads(out) if as_json else out

    def configure_frr(self, name: str, commands: list[str], config: str) -> None:
        """Apply ``commands`` (configuration mode, in order) to running FRR router ``name``,
        as an operator does with vtysh, and keep ``config`` (the whole text they lead to) as
        its frr.conf."""
        router = self.routers[name]
        args = ["vtysh", "--vty_socket", str(router.directory), "-c", "configure terminal"]
        for command in commands:
            args += ["-c", command]
        out = _run(args, check=False)
        # vtysh exits 0 even when a line is refused; FRR says so on stdout
        if out.returncode != 0 or "% " in out.stdout:
            raise NetLabError(f"{name}: vtysh refused {commands}: {out.stdout.strip()} {out.stderr.strip()}")
        (router.directory / "frr.conf").write_text(config)

    def birdc(self, name: str, command: str) -> str:
        router = self.routers[name]
        return _run(["birdc", "-s", str(router.directory / "bird.ctl"), command]).stdout

    def sessions(self, name: str) -> dict[str, str]:
        """BGP sessions of router ``name``: peer address -> state (``Established`` when up)."""
        router = self.routers[name]
        if router.kind == "frr":
            data = self.vtysh(name, "show bgp ipv4 unicast summary json", as_json=True)
            return {peer: info.get("state", "?") for peer, info in data.get("peers", {}).items()}
        return _bird_sessions(self.birdc(name, "show protocols all"))

    def bgp_prefixes(self, name: str) -> set[str]:
        """Prefixes in router ``name``'s BGP RIB (any path, best or not)."""
        router = self.routers[name]
        if router.kind == "frr":
            data = self.vtysh(name, "show bgp ipv4 unicast json", as_json=True)
            return set(data.get("routes", {}))
        return _bird_route_prefixes(self.birdc(name, "show route where source = RTS_BGP"))

    def received_prefixes(self, name: str, peer: str) -> set[str]:
        """Prefixes FRR router ``name`` received from ``peer`` before its import filter
        (needs ``soft-reconfiguration inbound`` on that neighbor)."""
        data = self.vtysh(name, f"show bgp ipv4 unicast neighbors {peer} received-routes json", as_json=True)
        return set(data.get("receivedRoutes", {}))

    def kernel_nexthops(self, name: str, prefix: str) -> list[str]:
        """Gateways of the kernel route for exactly ``prefix`` in member ``name`` (sorted)."""
        routes = self.ip_json(name, "route", "show", "exact", prefix)
        gateways = []
        for route in routes:
            if "gateway" in route:
                gateways.append(route["gateway"])
            for hop in route.get("nexthops", []):
                if "gateway" in hop:
                    gateways.append(hop["gateway"])
        return sorted(gateways)

    # ---- workloads ----------------------------------------------------------------------------------
    def add_pod(self, node: str, pod: str, address: str, host_if: str) -> str:
        """A pod namespace wired to ``node`` the way Calico does it: a veth ``host_if`` on the node
        with proxy ARP and a /32 route, and in the pod a default route via 169.254.1.1."""
        ip = check_lab_address(address).ip
        self.add_namespace(pod, forwarding=False)
        self.link(pod, node, if_a="eth0", if_b=host_if)
        self.exec(pod, "ip", "address", "add", f"{ip}/32", "dev", "eth0")
        self.exec(pod, "ip", "route", "add", "169.254.1.1", "dev", "eth0", "scope", "link")
        self.exec(pod, "ip", "route", "add", "default", "via", "169.254.1.1", "dev", "eth0")
        self.exec(node, "sysctl", "-qw", f"net.ipv4.conf.{host_if}.proxy_arp=1")
        # Proxy ARP answers only for addresses the node routes elsewhere; lab nodes have no
        # default route, so the pod learns the gateway's MAC statically (the node side's MAC).
        mac = self.ip_json(node, "link", "show", host_if)[0]["address"]
        self.exec(
            pod, "ip", "neigh", "replace", "169.254.1.1", "lladdr", mac, "dev", "eth0", "nud", "permanent"
        )
        self.exec(node, "ip", "route", "add", f"{ip}/32", "dev", host_if, "scope", "link")
        return str(ip)

    def start_tcp_echo(
        self, name: str, address: str, port: int, *, with_peer: bool = False, wait_for_byte: bool = False
    ) -> subprocess.Popen:
        """A small TCP server in member ``name`` that answers each connection with its own name,
        followed by the peer address it saw when ``with_peer`` (what a realserver behind a NAT
        sees); after the client's first byte when ``wait_for_byte`` (a connection held open)."""
        check_lab_address(address)
        answer = "f'{sys.argv[1]} {peer[0]}'" if with_peer else "sys.argv[1]"
        code = (
            "import socket,sys\n"
            "s=socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)\n"
            f"s.bind(({address!r}, {port})); s.listen(16)\n"
            "print('ready', flush=True)\n"
            "while True:\n"
            "    c,peer=s.accept()\n"
            f"    {'c.recv(1)' if wait_for_byte else 'pass'}\n"
            f"    c.sendall({answer}.encode()); c.close()\n"
        )
        proc = subprocess.Popen(
            programs.argv("ip", "netns", "exec", self.ns(name), programs.path("python3"), "-c", code, name),
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
            start_new_session=True,
        )
        self.servers.append(proc)
        line = proc.stdout.readline().strip() if proc.stdout else ""
        if line != "ready":
            raise NetLabError(f"TCP server in {name} did not start")
        return proc

    def tcp_request(self, name: str, address: str, port: int, timeout: float = 2.0) -> str | None:
        """Connect from member ``name`` to ``address:port``; the answer, or None when it fails."""
        check_lab_address(address)
        code = (
            "import socket,sys\n"
            f"c=socket.create_connection(({address!r}, {port}), timeout={timeout})\n"
            "sys.stdout.write(c.recv(200).decode())\n"
        )
        proc = _run(
            ["ip", "netns", "exec", self.ns(name), programs.path("python3"), "-c", code],
            check=False,
            timeout=timeout + 10,
        )
        return proc.stdout if proc.returncode == 0 else None


# ---- helpers ------------------------------------------------------------------------------------------
def _short(name: str) -> str:
    return re.sub(r"[^a-zA-Z0-9]", "", name)[-_IFNAME_MAX:]


def _check_ifname(ifname: str) -> None:
    if not 0 < len(ifname) <= _IFNAME_MAX or "/" in ifname or " " in ifname:
        raise NetLabError(f"interface name {ifname!r} is not a valid Linux interface name")


def _spawn(args: list[str], log: Path) -> subprocess.Popen:
    with open(log, "ab") as out:
        return subprocess.Popen(
            programs.resolve(args),
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )


def start_logged(argv: list, log: Path, env: dict | None = None) -> subprocess.Popen:
    """Start ``argv`` with its stdout and stderr in the file ``log``."""
    with log.open("w") as out:
        return subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, env=env)


def logged_metrics(log: Path) -> str | None:
    """The text of the ``/metrics`` a program announced in its log (``metrics on http://...``,
    the project's services say it once bound), or None before it has."""
    found = re.search(r"metrics on (http://\S+)", log.read_text())
    if not found:
        return None
    import urllib.request

    with urllib.request.urlopen(found.group(1), timeout=10) as response:
        return response.read().decode()


def stop_process(proc: subprocess.Popen, sig: int = signal.SIGTERM, timeout: float = 5) -> list[str]:
    """Signal one process by its PID, wait ``timeout`` s; SIGKILL when it does not go away.
    What is left, as problems (a process that survived SIGKILL); [] when it is gone."""
    if proc.poll() is not None:
        return []
    with contextlib.suppress(ProcessLookupError):
        os.kill(proc.pid, sig)
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.kill(proc.pid, signal.SIGKILL)
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            return [f"pid {proc.pid} survived SIGKILL"]
    return []


def _existing_namespaces() -> set[str]:
    out = _run(["ip", "-j", "netns", "list"], check=False).stdout
    return {entry["name"] for entry in json.loads(out)} if out.strip() else set()


def _bird_sessions(text: str) -> dict[str, str]:
    """``birdc show protocols all`` -> {neighbor address: BGP state} for the BGP protocols."""
    sessions = {}
    state = None
    for line in text.splitlines():
        stripped = line.strip()
        if line and not line[0].isspace():
            state = None  # a new protocol (or the header) starts
        elif stripped.startswith("BGP state:"):
            state = stripped.split(":", 1)[1].strip()
        elif stripped.startswith("Neighbor address:") and state is not None:
            sessions[stripped.split(":", 1)[1].strip()] = state
    return sessions


_BIRD_PREFIX = re.compile(r"^(\d+\.\d+\.\d+\.\d+/\d+)\s")


def _bird_route_prefixes(text: str) -> set[str]:
    """``birdc show route ...`` -> the prefixes listed (continuation lines belong to the last one)."""
    return {m.group(1) for m in map(_BIRD_PREFIX.match, text.splitlines()) if m}
