"""Independent Kubernetes control planes on loopback, from the pinned upstream programs.

``start_clusters(["c1", "c2"], workdir, bin_dir)`` starts, per cluster, one etcd (or, with
``etcd_members=3``, three members on loopback) and one kube-apiserver (TLS, client
certificates, Node,RBAC authorization) and, on request, a
kube-controller-manager, a kube-scheduler and kwok with fake nodes whose pods become
Running with addresses from the cluster's pod CIDR. Clusters start side by side; every
wait is bounded and a failure names the component and shows the end of its log.

Every address is loopback (listeners) or inside 198.18.0.0/15 (service, pod and node
addresses, which only exist as data inside the API). Processes are ended by PID, never
by name; ``ClusterSet.close()`` leaves none of them running and removes the workdir.

Layout of ``workdir``::

    kubeconfig              one context per cluster, named like the cluster
    state.json              PIDs and ports, for ClusterSet.load() from another process
    <cluster>/pki/          CA, serving and client certificates, service-account keys
    <cluster>/etcd/         etcd's data (more members: etcd-2/, etcd-3/, ...)
    <cluster>/*.kubeconfig  one per component
    <cluster>/<component>.log
"""

from __future__ import annotations

import contextlib
import ctypes
import ipaddress
import json
import os
import random
import re
import shutil
import signal
import socket
import ssl
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import yaml

from ansible_collections.cloud58.platform.plugins.module_utils.controlplane.configs import embedded_kubeconfig
from cloud58_lab.pki import CertificateAuthority, signing_key_pair

PROGRAMS = (
    "etcd",
    "etcdctl",
    "kube-apiserver",
    "kube-controller-manager",
    "kube-scheduler",
    "kubelet",
    "kubectl",
    "kwok",
)
LAB_NETWORK = ipaddress.ip_network("198.18.0.0/15")
KWOK_NODE_ANNOTATION = "kwok.x-k8s.io/node"
NODE_IP_ANNOTATION = "cloud58.io/node-ip"
DEFAULT_TIMEOUT = 180.0
# Listeners get random ports below Linux's ephemeral range (32768+), where outgoing
# connections would otherwise take them between our check and the program's bind.
_PORT_RANGE = (20000, 32000)
_PORT_RETRIES = 3
_STOP_GRACE = 15.0
_POLL = 0.2
# Cluster names become context, file and node names.
_NAME = re.compile(r"[a-z0-9]([-a-z0-9]{0,38}[a-z0-9])?")


class ControlPlaneError(RuntimeError):
    """A control plane could not be started, stopped or reached."""


@dataclass(frozen=True)
class ClusterNetwork:
    """The addresses of one cluster, all inside 198.18.0.0/15.

    ``pod_cidr`` is cut into one /24 per kwok node (its ``spec.podCIDR``); its last /24 is
    kwok's fallback for pods on nodes without a podCIDR.
    """

    service_cidr: ipaddress.IPv4Network
    pod_cidr: ipaddress.IPv4Network
    node_cidr: ipaddress.IPv4Network

    @classmethod
    def for_index(cls, index: int) -> ClusterNetwork:
        """The default plan for the index-th cluster (0 to 15).

        pods 198.18.<16*index>.0/20, services 198.19.<index>.0/24, node addresses
        198.19.<128+index>.0/24.
        """
        if not 0 <= index < 16:
            raise ControlPlaneError(f"cluster index {index}: the default address plan has room for 16")
        return cls(
            service_cidr=ipaddress.IPv4Network(f"198.19.{index}.0/24"),
            pod_cidr=ipaddress.IPv4Network(f"198.18.{16 * index}.0/20"),
            node_cidr=ipaddress.IPv4Network(f"198.19.{128 + index}.0/24"),
        )

    def validate(self, cluster: str) -> None:
        for field in ("service_cidr", "pod_cidr", "node_cidr"):
            net = getattr(self, field)
            if not net.subnet_of(LAB_NETWORK):
                raise ControlPlaneError(f"cluster {cluster!r}: {field} {net} is outside {LAB_NETWORK}")
        if self.pod_cidr.prefixlen > 23:
            raise ControlPlaneError(f"cluster {cluster!r}: pod_cidr {self.pod_cidr} must be /23 or larger")
        nets = [self.service_cidr, self.pod_cidr, self.node_cidr]
        for i, a in enumerate(nets):
            for b in nets[i + 1 :]:
                if a.overlaps(b):
                    raise ControlPlaneError(f"cluster {cluster!r}: {a} overlaps {b}")

    def node_pod_cidr(self, node: int) -> ipaddress.IPv4Network:
        """The /24 of the node-th kwok node."""
        blocks = self.max_nodes
        if not 0 <= node < blocks:
            raise ControlPlaneError(f"node {node}: pod CIDR {self.pod_cidr} has room for {blocks} nodes")
        return list(self.pod_cidr.subnets(new_prefix=24))[node]

    @property
    def max_nodes(self) -> int:
        return 2 ** (24 - self.pod_cidr.prefixlen) - 1

    @property
    def fallback_pod_cidr(self) -> ipaddress.IPv4Network:
        return list(self.pod_cidr.subnets(new_prefix=24))[-1]

    def node_ip(self, node: int) -> ipaddress.IPv4Address:
        return self.node_cidr.network_address + node + 1

    def as_dict(self) -> dict[str, str]:
        return {k: str(getattr(self, k)) for k in ("service_cidr", "pod_cidr", "node_cidr")}


# ---- processes ------------------------------------------------------------------------


def _proc_stat(pid: int) -> list[str] | None:
    """The fields of /proc/<pid>/stat after the command name (state first); None when the
    process is gone or a zombie (finished; only its parent's wait() remains)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None
    return None if fields[0] == "Z" else fields


def proc_start_time(pid: int) -> int | None:
    """Start time of a PID in clock ticks since boot (guards against PID reuse); None when
    the process is gone or a zombie."""
    fields = _proc_stat(pid)
    return None if fields is None else int(fields[19])


def proc_cpu_seconds(pid: int) -> float:
    """User and system CPU seconds a running process has used so far (0.0 when it is gone)."""
    fields = _proc_stat(pid)
    return 0.0 if fields is None else (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


# Looked up here, in the parent: the child between fork and exec only makes the call.
_prctl = ctypes.CDLL(None, use_errno=True).prctl
_PR_SET_PDEATHSIG = 1


def _die_with_parent() -> None:  # pragma: no cover - runs in the child between fork and exec
    # SIGTERM when the thread that started us ends: a killed test run leaves no
    # control plane behind.
    _prctl(_PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)


class _Process:
    """One program of a cluster, its log, and its PID."""

    def __init__(self, component: str, argv: list[str], log: Path, env: dict[str, str]) -> None:
        self.component = component
        self.argv = argv
        self.log = log
        self.env = env
        self.pid: int | None = None
        self.start_time: int | None = None
        self._popen: subprocess.Popen[bytes] | None = None

    def spawn(self, die_with_parent: bool) -> None:
        with self.log.open("ab") as log:
            log.write(f"==== {time.strftime('%Y-%m-%dT%H:%M:%S')} {' '.join(self.argv)}\n".encode())
            log.flush()
            self._popen = subprocess.Popen(
                self.argv,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                env=self.env,
                start_new_session=True,
                # Only a foreign-function call, no Python state: safe enough even with threads.
                preexec_fn=_die_with_parent if die_with_parent else None,  # noqa: PLW1509
            )
        self.pid = self._popen.pid
        self.start_time = proc_start_time(self.pid)

    def alive(self) -> bool:
        if self.pid is None:
            return False
        if self._popen is not None:
            return self._popen.poll() is None
        return self.start_time is not None and proc_start_time(self.pid) == self.start_time

    def signal(self, sig: int) -> None:
        if self.alive():
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.pid, sig)

    def wait(self, timeout: float) -> bool:
        """Wait for the process to end; True if it did."""
        if self._popen is not None:
            try:
                self._popen.wait(timeout)
            except subprocess.TimeoutExpired:
                return False
            return True
        deadline = time.monotonic() + timeout
        while self.alive():
            if time.monotonic() > deadline:
                return False
            time.sleep(0.05)
        return True

    def stop(self) -> None:
        """SIGTERM, then SIGKILL after a grace period; returns once the PID is gone."""
        self.signal(signal.SIGTERM)
        if not self.wait(_STOP_GRACE):
            self.signal(signal.SIGKILL)
            self.wait(_STOP_GRACE)

    def tail(self, lines: int = 25) -> str:
        try:
            with self.log.open("rb") as f:
                f.seek(0, os.SEEK_END)
                f.seek(max(0, f.tell() - 16384))
                text = f.read().decode(errors="replace")
        except OSError as e:
            return f"(no log: {e})"
        return "\n".join(text.splitlines()[-lines:])

    def exit_status(self) -> str:
        if self._popen is not None and self._popen.returncode is not None:
            return f"exited with status {self._popen.returncode}"
        return "is not running"

    def state(self) -> dict:
        return {"pid": self.pid, "start_time": self.start_time, "argv": self.argv, "log": str(self.log)}


def _free_port(taken: set[int]) -> int:
    rng = random.SystemRandom()
    for _ in range(200):
        port = rng.randrange(*_PORT_RANGE)
        if port in taken:
            continue
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
        taken.add(port)
        return port
    raise ControlPlaneError(f"no free port on 127.0.0.1 in {_PORT_RANGE}")


def _address_in_use(proc: _Process | _Live) -> bool:
    return "address already in use" in proc.tail(60).lower()


# ---- one cluster ----------------------------------------------------------------------


def _kubeconfig(entries: Iterable[tuple[str, str, bytes, bytes, bytes]]) -> dict:
    """A kubeconfig with one context per (name, server, ca, cert, key); data embedded.

    Each context is the collection's embedded_kubeconfig (what cluster_pki writes for a
    cluster's admin), user named like the context; the first is the current context."""
    configs = [
        embedded_kubeconfig(name, server, ca_pem=ca, cert_pem=cert, key_pem=key, user=name)
        for name, server, ca, cert, key in entries
    ]
    merged = dict(configs[0])
    for section in ("clusters", "users", "contexts"):
        merged[section] = [item for config in configs for item in config[section]]
    return merged


def _write_private(path: Path, data: bytes | str) -> None:
    path.touch(mode=0o600)
    path.write_bytes(data.encode() if isinstance(data, str) else data)


class Cluster:
    """One control plane. ``server`` is its API URL; ``stop()``/``start()`` act on the
    kube-apiserver only, so etcd (and the data) survive a stop."""

    def __init__(
        self,
        name: str,
        *,
        index: int,
        directory: Path,
        network: ClusterNetwork,
        bin_dir: Path,
        set_kubeconfig: Path,
        die_with_parent: bool,
        etcd_members: int = 1,
    ) -> None:
        self.name = name
        self.index = index
        self.dir = directory
        self.network = network
        self.bin_dir = bin_dir
        self.set_kubeconfig = set_kubeconfig
        self.die_with_parent = die_with_parent
        self.etcd_members = etcd_members
        self.pki = directory / "pki"
        self.ports: dict[str, int] = {}
        self.processes: dict[str, _Process] = {}
        self.kwok_nodes: list[str] = []
        # Called when a PID changes (the owning ClusterSet rewrites state.json).
        self.on_change: Callable[[], None] = lambda: None

    # -- public -----------------------------------------------------------------------

    @property
    def server(self) -> str:
        return f"https://127.0.0.1:{self.ports['apiserver']}"

    @property
    def etcd_endpoint(self) -> str:
        return f"http://127.0.0.1:{self.ports['etcd-client']}"

    @property
    def etcd_components(self) -> list[str]:
        """The etcd members' components (process and port names): etcd, etcd-2, etcd-3, ..."""
        return ["etcd"] + [f"etcd-{i}" for i in range(2, self.etcd_members + 1)]

    def etcd_client_url(self, component: str) -> str:
        return f"http://127.0.0.1:{self.ports[component + '-client']}"

    def etcd_leader(self) -> str | None:
        """The component of the etcd member that every running member names as the leader;
        None while they disagree or have none (an election)."""
        ids, leaders = {}, set()
        for component in self.etcd_components:
            if not self.processes[component].alive():
                continue
            status = self._etcd_status(component)
            if status is None or not status.get("leader"):
                return None
            ids[status["header"]["member_id"]] = component
            leaders.add(status["leader"])
        if len(leaders) != 1:
            return None
        return ids.get(leaders.pop())

    def _etcd_status(self, component: str) -> dict | None:
        req = urllib.request.Request(
            self.etcd_client_url(component) + "/v3/maintenance/status", data=b"{}", method="POST"
        )
        try:
            with urllib.request.urlopen(req, timeout=5) as resp:
                return json.loads(resp.read())
        except (OSError, ValueError):
            return None

    @property
    def kubeconfig(self) -> Path:
        """This cluster's admin kubeconfig (one context, named like the cluster)."""
        return self.dir / "admin.kubeconfig"

    @property
    def ca_file(self) -> Path:
        return self.pki / "ca.crt"

    def pids(self) -> dict[str, int]:
        """PIDs of this cluster's running processes, by component."""
        return {c: p.pid for c, p in self.processes.items() if p.alive() and p.pid is not None}

    def stop(self) -> None:
        """Stop the kube-apiserver (etcd keeps the data); the API becomes unreachable."""
        self.processes["kube-apiserver"].stop()

    def start(self, timeout: float = DEFAULT_TIMEOUT) -> None:
        """Start the kube-apiserver again on the same port and wait until it is ready."""
        proc = self.processes["kube-apiserver"]
        if proc.alive():
            return
        proc.spawn(self.die_with_parent)
        self.on_change()
        _wait({f"{self.name} kube-apiserver": (proc, self.apiserver_ready)}, timeout)

    def kubectl(
        self, *args: str, check: bool = True, stdin: str | None = None
    ) -> subprocess.CompletedProcess:
        """Run the pinned kubectl against this cluster through the set's kubeconfig."""
        argv = [
            str(self.bin_dir / "kubectl"),
            "--kubeconfig",
            str(self.set_kubeconfig),
            "--context",
            self.name,
        ]
        result = subprocess.run(
            [*argv, *args], input=stdin, capture_output=True, text=True, check=False, timeout=120
        )
        if check and result.returncode != 0:
            raise ControlPlaneError(
                f"{self.name}: kubectl {' '.join(args)} exited {result.returncode}: {result.stderr.strip()}"
            )
        return result

    def api(self, method: str, path: str, body: dict | None = None, timeout: float = 10.0) -> dict:
        """One request to the kube-apiserver as cluster admin; the decoded JSON answer."""
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(self.server + path, data=data, method=method)
        req.add_header("Accept", "application/json")
        if data is not None:
            req.add_header("Content-Type", "application/json")
        try:
            with urllib.request.urlopen(req, context=self._ssl(), timeout=timeout) as resp:
                return json.loads(resp.read() or b"{}")
        except urllib.error.HTTPError as e:
            detail = e.read().decode(errors="replace")[:500]
            raise ControlPlaneError(f"{self.name}: {method} {path}: HTTP {e.code}: {detail}") from e
        except OSError as e:
            raise ControlPlaneError(f"{self.name}: {method} {path}: {e}") from e

    # -- readiness probes -------------------------------------------------------------

    def _ssl(self, client: bool = True) -> ssl.SSLContext:
        ctx = ssl.create_default_context(cafile=str(self.ca_file))
        if client:
            ctx.load_cert_chain(self.pki / "admin.crt", self.pki / "admin.key")
        return ctx

    def _get(self, url: str, ctx: ssl.SSLContext | None = None) -> bytes | None:
        try:
            with urllib.request.urlopen(url, context=ctx, timeout=5) as resp:
                return resp.read() if resp.status == 200 else None
        except (OSError, urllib.error.HTTPError):
            return None

    def etcd_ready(self) -> bool:
        """Every member answers healthy (with more than one, that needs a leader)."""
        for component in self.etcd_components:
            body = self._get(self.etcd_client_url(component) + "/health")
            if body is None or json.loads(body).get("health") != "true":
                return False
        return True

    def apiserver_ready(self) -> bool:
        return self._get(self.server + "/readyz", self._ssl()) == b"ok"

    def healthz_probe(self, port_name: str) -> Callable[[], bool]:
        def probe() -> bool:
            url = f"https://127.0.0.1:{self.ports[port_name]}/healthz"
            return self._get(url, self._ssl(client=False)) == b"ok"

        return probe

    def kwok_nodes_ready(self) -> bool:
        try:
            nodes = self.api("GET", "/api/v1/nodes")["items"]
        except ControlPlaneError:
            return False
        ready = {
            n["metadata"]["name"]
            for n in nodes
            for c in n.get("status", {}).get("conditions", [])
            if c["type"] == "Ready" and c["status"] == "True"
        }
        return set(self.kwok_nodes) <= ready

    # -- setup ------------------------------------------------------------------------

    def _env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if k not in ("KUBECONFIG", "ETCDCTL_ENDPOINTS")}
        env["HOME"] = str(self.dir)  # kwok and kubectl keep their state under $HOME
        return env

    def make_pki(self) -> None:
        ca = CertificateAuthority(f"cloud58-lab-{self.name}-ca")
        ca.pair.write(self.pki, "ca")
        ip_sans = ("127.0.0.1", str(self.network.service_cidr.network_address + 1))
        ca.issue(
            "kube-apiserver",
            dns_names=("localhost", "kubernetes", "kubernetes.default", "kubernetes.default.svc"),
            ip_addresses=ip_sans,
            server=True,
        ).write(self.pki, "apiserver")
        loopback = {"dns_names": ("localhost",), "ip_addresses": ("127.0.0.1",), "server": True}
        ca.issue("kube-controller-manager", **loopback).write(self.pki, "controller-manager-serving")
        ca.issue("kube-scheduler", **loopback).write(self.pki, "scheduler-serving")
        clients = {
            "admin": ("cloud58-admin", ("system:masters",)),
            "controller-manager": ("system:kube-controller-manager", ()),
            "scheduler": ("system:kube-scheduler", ()),
            "kwok": ("cloud58-kwok", ("system:masters",)),
        }
        for stem, (cn, orgs) in clients.items():
            ca.issue(cn, organizations=orgs, client=True).write(self.pki, stem)
        # The aggregation layer's own CA, as kubeadm sets it up: the apiserver proves
        # itself to extension apiservers with front-proxy-client, and controllers find
        # the CA in kube-system/extension-apiserver-authentication.
        front = CertificateAuthority(f"cloud58-lab-{self.name}-front-proxy-ca")
        front.pair.write(self.pki, "front-proxy-ca")
        front.issue("front-proxy-client", client=True).write(self.pki, "front-proxy-client")
        private, public = signing_key_pair()
        _write_private(self.pki / "sa.key", private)
        (self.pki / "sa.pub").write_bytes(public)

    def client_entry(self, stem: str) -> tuple[str, str, bytes, bytes, bytes]:
        return (
            self.name,
            self.server,
            self.ca_file.read_bytes(),
            (self.pki / f"{stem}.crt").read_bytes(),
            (self.pki / f"{stem}.key").read_bytes(),
        )

    def write_kubeconfigs(self) -> None:
        for stem in ("admin", "controller-manager", "scheduler", "kwok"):
            path = self.dir / f"{stem}.kubeconfig"
            _write_private(path, yaml.safe_dump(_kubeconfig([self.client_entry(stem)]), sort_keys=True))

    def _add(self, component: str, argv: list[str]) -> _Process:
        proc = _Process(component, argv, self.dir / f"{component}.log", self._env())
        self.processes[component] = proc
        return proc

    def etcd(self, taken: set[int]) -> _Process:
        """The etcd members, on new ports and with fresh data (a retry starts them anew).
        Returns the first member for the caller to spawn; the others are spawned here, so
        that they reach a quorum together."""
        components = self.etcd_components
        for component in components[1:]:  # a retry: the other members of the last try
            if component in self.processes:
                self.processes[component].stop()
        for component in components:
            self.ports[f"{component}-client"] = _free_port(taken)
            self.ports[f"{component}-peer"] = _free_port(taken)
            shutil.rmtree(self.dir / component, ignore_errors=True)
        # One member keeps the cluster's name; more are <cluster>-2, <cluster>-3, ...
        names = {
            c: self.name if c == "etcd" else f"{self.name}-{c.removeprefix('etcd-')}" for c in components
        }
        peers = {c: f"http://127.0.0.1:{self.ports[c + '-peer']}" for c in components}
        initial = ",".join(f"{names[c]}={peers[c]}" for c in components)
        members = [
            self._add(
                component,
                [
                    str(self.bin_dir / "etcd"),
                    f"--name={names[component]}",
                    f"--data-dir={self.dir / component}",
                    f"--listen-client-urls={self.etcd_client_url(component)}",
                    f"--advertise-client-urls={self.etcd_client_url(component)}",
                    f"--listen-peer-urls={peers[component]}",
                    f"--initial-advertise-peer-urls={peers[component]}",
                    f"--initial-cluster={initial}",
                    "--initial-cluster-state=new",
                    f"--initial-cluster-token=cloud58-lab-{self.name}",
                    # A throwaway store on loopback: durability across power loss is not
                    # needed, and fsync dominates etcd's latency on shared disks.
                    "--unsafe-no-fsync",
                    "--log-level=warn",
                ],
            )
            for component in components
        ]
        for member in members[1:]:
            member.spawn(self.die_with_parent)
        return members[0]

    def apiserver(self, taken: set[int]) -> _Process:
        self.ports["apiserver"] = _free_port(taken)
        pki = self.pki
        return self._add(
            "kube-apiserver",
            [
                str(self.bin_dir / "kube-apiserver"),
                "--bind-address=127.0.0.1",
                "--advertise-address=127.0.0.1",
                f"--secure-port={self.ports['apiserver']}",
                f"--etcd-servers={','.join(self.etcd_client_url(c) for c in self.etcd_components)}",
                f"--tls-cert-file={pki / 'apiserver.crt'}",
                f"--tls-private-key-file={pki / 'apiserver.key'}",
                f"--client-ca-file={pki / 'ca.crt'}",
                "--service-account-issuer=https://kubernetes.default.svc.cluster.local",
                f"--service-account-key-file={pki / 'sa.pub'}",
                f"--service-account-signing-key-file={pki / 'sa.key'}",
                f"--service-cluster-ip-range={self.network.service_cidr}",
                "--authorization-mode=Node,RBAC",
                f"--requestheader-client-ca-file={pki / 'front-proxy-ca.crt'}",
                "--requestheader-allowed-names=front-proxy-client",
                "--requestheader-username-headers=X-Remote-User",
                "--requestheader-group-headers=X-Remote-Group",
                "--requestheader-extra-headers-prefix=X-Remote-Extra-",
                f"--proxy-client-cert-file={pki / 'front-proxy-client.crt'}",
                f"--proxy-client-key-file={pki / 'front-proxy-client.key'}",
                "--allow-privileged=true",
                f"--cert-dir={self.dir / 'apiserver'}",
                # Faster start and less churn: no request queueing between flows, and no
                # Endpoints for the `kubernetes` Service (loopback is not a valid endpoint).
                "--enable-priority-and-fairness=false",
                "--endpoint-reconciler-type=none",
                "--profiling=false",
            ],
        )

    def _delegated(self, stem: str, port_name: str, serving: str, taken: set[int]) -> list[str]:
        self.ports[port_name] = _free_port(taken)
        kubeconfig = self.dir / f"{stem}.kubeconfig"
        return [
            f"--kubeconfig={kubeconfig}",
            f"--authentication-kubeconfig={kubeconfig}",
            f"--authorization-kubeconfig={kubeconfig}",
            "--bind-address=127.0.0.1",
            f"--secure-port={self.ports[port_name]}",
            f"--tls-cert-file={self.pki / (serving + '.crt')}",
            f"--tls-private-key-file={self.pki / (serving + '.key')}",
            "--leader-elect=false",
        ]

    def controller_manager(self, taken: set[int]) -> _Process:
        pki = self.pki
        return self._add(
            "kube-controller-manager",
            [
                str(self.bin_dir / "kube-controller-manager"),
                *self._delegated(
                    "controller-manager", "controller-manager", "controller-manager-serving", taken
                ),
                "--use-service-account-credentials=true",
                f"--service-account-private-key-file={pki / 'sa.key'}",
                f"--root-ca-file={pki / 'ca.crt'}",
                f"--cluster-signing-cert-file={pki / 'ca.crt'}",
                f"--cluster-signing-key-file={pki / 'ca.key'}",
                f"--service-cluster-ip-range={self.network.service_cidr}",
                f"--cluster-cidr={self.network.pod_cidr}",
                # kwok nodes are created with their podCIDR; nothing to allocate.
                "--allocate-node-cidrs=false",
                "--profiling=false",
            ],
        )

    def scheduler(self, taken: set[int]) -> _Process:
        return self._add(
            "kube-scheduler",
            [
                str(self.bin_dir / "kube-scheduler"),
                *self._delegated("scheduler", "scheduler", "scheduler-serving", taken),
                "--profiling=false",
            ],
        )

    def create_kwok_nodes(self, names: Sequence[str]) -> None:
        if len(names) > self.network.max_nodes:
            raise ControlPlaneError(
                f"cluster {self.name!r}: {len(names)} kwok nodes do not fit pod CIDR {self.network.pod_cidr}"
            )
        for i, name in enumerate(names):
            cidr = str(self.network.node_pod_cidr(i))
            self.api(
                "POST",
                "/api/v1/nodes",
                {
                    "apiVersion": "v1",
                    "kind": "Node",
                    "metadata": {
                        "name": name,
                        "labels": {
                            "kubernetes.io/hostname": name,
                            "kubernetes.io/os": "linux",
                            "kubernetes.io/arch": "amd64",
                            "type": "kwok",
                        },
                        "annotations": {
                            KWOK_NODE_ANNOTATION: "fake",
                            NODE_IP_ANNOTATION: str(self.network.node_ip(i)),
                        },
                    },
                    "spec": {"podCIDR": cidr, "podCIDRs": [cidr]},
                },
            )
            self.kwok_nodes.append(name)

    def kwok(self, kube_version: str) -> _Process:
        config = self.dir / "kwok.yaml"
        config.write_text(yaml.safe_dump_all(_kwok_stages(kube_version), sort_keys=True, explicit_start=True))
        return self._add(
            "kwok",
            [
                str(self.bin_dir / "kwok"),
                f"--kubeconfig={self.dir / 'kwok.kubeconfig'}",
                f"--config={config}",
                "--manage-all-nodes=false",
                f"--manage-nodes-with-annotation-selector={KWOK_NODE_ANNOTATION}=fake",
                f"--cidr={self.network.fallback_pod_cidr}",
                f"--node-ip={self.network.node_ip(0)}",
                # Leases are the nodes' heartbeat: the node controller keeps them Ready.
                "--node-lease-duration-seconds=40",
            ],
        )

    def state(self) -> dict:
        return {
            "index": self.index,
            "network": self.network.as_dict(),
            "ports": self.ports,
            "kwok_nodes": self.kwok_nodes,
            "etcd_members": self.etcd_members,
            "processes": {c: p.state() for c, p in self.processes.items()},
        }


def _kwok_stages(kube_version: str) -> list[dict]:
    """kwok's behaviour: nodes become Ready, pods on them Running, deleted pods vanish."""
    node_status = f"""\
{{{{ $now := Now }}}}
conditions:
{{{{ range $c := list "MemoryPressure" "DiskPressure" "PIDPressure" }}}}
- type: {{{{ $c }}}}
  status: "False"
  reason: KubeletHasSufficient{{{{ trimSuffix "Pressure" $c }}}}
  message: kwok node
  lastHeartbeatTime: {{{{ $now | Quote }}}}
  lastTransitionTime: {{{{ $now | Quote }}}}
{{{{ end }}}}
- type: Ready
  status: "True"
  reason: KubeletReady
  message: kwok node
  lastHeartbeatTime: {{{{ $now | Quote }}}}
  lastTransitionTime: {{{{ $now | Quote }}}}
addresses:
- type: InternalIP
  address: {{{{ index .metadata.annotations "{NODE_IP_ANNOTATION}" | Quote }}}}
- type: Hostname
  address: {{{{ .metadata.name | Quote }}}}
allocatable: {{cpu: "32", memory: 128Gi, pods: "110"}}
capacity: {{cpu: "32", memory: 128Gi, pods: "110"}}
nodeInfo:
  architecture: amd64
  operatingSystem: linux
  kubeletVersion: {kube_version}
  kubeProxyVersion: {kube_version}
  containerRuntimeVersion: kwok
  kernelVersion: kwok
  osImage: kwok
  bootID: ""
  machineID: ""
  systemUUID: ""
phase: Running
"""
    pod_status = """\
{{ $now := Now }}
conditions:
{{ range $c := list "PodReadyToStartContainers" "Initialized" "Ready" "ContainersReady" "PodScheduled" }}
- type: {{ $c }}
  status: "True"
  lastTransitionTime: {{ $now | Quote }}
{{ end }}
containerStatuses:
{{ range .spec.containers }}
- name: {{ .name | Quote }}
  image: {{ .image | Quote }}
  imageID: ""
  ready: true
  started: true
  restartCount: 0
  state:
    running:
      startedAt: {{ $now | Quote }}
{{ end }}
initContainerStatuses:
{{ range .spec.initContainers }}
- name: {{ .name | Quote }}
  image: {{ .image | Quote }}
  imageID: ""
  ready: true
  restartCount: 0
  state:
    terminated:
      exitCode: 0
      reason: Completed
      startedAt: {{ $now | Quote }}
      finishedAt: {{ $now | Quote }}
{{ end }}
{{ $hostIP := NodeIPWith .spec.nodeName }}
hostIP: {{ $hostIP | Quote }}
hostIPs:
- ip: {{ $hostIP | Quote }}
{{ $m := .metadata }}
{{ $podIP := PodIPWith .spec.nodeName (or .spec.hostNetwork false) $m.uid $m.name $m.namespace }}
podIP: {{ $podIP | Quote }}
podIPs:
- ip: {{ $podIP | Quote }}
phase: Running
startTime: {{ $now | Quote }}
"""

    def stage(name: str, kind: str, expressions: list[dict], nxt: dict) -> dict:
        return {
            "apiVersion": "kwok.x-k8s.io/v1alpha1",
            "kind": "Stage",
            "metadata": {"name": name},
            "spec": {
                "resourceRef": {"apiGroup": "v1", "kind": kind},
                "selector": {"matchExpressions": expressions},
                "next": nxt,
            },
        }

    ready = '.status.conditions.[] | select( .type == "Ready" ) | .status'
    return [
        stage(
            "cloud58-node-ready",
            "Node",
            [{"key": ready, "operator": "NotIn", "values": ["True"]}],
            {"statusTemplate": node_status},
        ),
        stage(
            "cloud58-pod-running",
            "Pod",
            [
                {"key": ".metadata.deletionTimestamp", "operator": "DoesNotExist"},
                {"key": ".status.phase", "operator": "In", "values": ["Pending"]},
            ],
            {"statusTemplate": pod_status},
        ),
        stage(
            "cloud58-pod-delete",
            "Pod",
            [{"key": ".metadata.deletionTimestamp", "operator": "Exists"}],
            {"delete": True},
        ),
    ]


# ---- waiting --------------------------------------------------------------------------

Probe = Callable[[], bool]


def _wait(
    pending: dict[str, tuple[_Process, Probe]],
    timeout: float,
    restart: Callable[[str, _Process], bool] | None = None,
) -> None:
    """Poll every probe until all pass. A process that exits fails at once (unless
    ``restart`` brings it back); the deadline fails with every laggard's log tail."""
    deadline = time.monotonic() + timeout
    pending = dict(pending)
    while pending:
        for label, (proc, probe) in list(pending.items()):
            if probe():
                del pending[label]
            elif not proc.alive():
                if restart is not None and restart(label, proc):
                    continue
                raise ControlPlaneError(
                    f"{label} {proc.exit_status()} before it was ready; end of {proc.log}:\n{proc.tail()}"
                )
        if pending and time.monotonic() > deadline:
            details = "\n\n".join(
                f"{label}: end of {p.log}:\n{p.tail()}" for label, (p, _) in pending.items()
            )
            raise ControlPlaneError(f"not ready after {timeout:.0f}s: {', '.join(pending)}\n\n{details}")
        if pending:
            time.sleep(_POLL)


# ---- the set --------------------------------------------------------------------------


class ClusterSet(Mapping[str, Cluster]):
    """Clusters started together; a mapping from cluster name to ``Cluster``."""

    def __init__(self, workdir: Path, bin_dir: Path, clusters: dict[str, Cluster]) -> None:
        self.workdir = workdir
        self.bin_dir = bin_dir
        self._clusters = clusters
        for c in clusters.values():
            c.on_change = self.write_state

    def __getitem__(self, name: str) -> Cluster:
        return self._clusters[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._clusters)

    def __len__(self) -> int:
        return len(self._clusters)

    def __enter__(self) -> ClusterSet:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def kubeconfig(self) -> Path:
        """One kubeconfig with a context per cluster, named like the cluster."""
        return self.workdir / "kubeconfig"

    @property
    def state_file(self) -> Path:
        return self.workdir / "state.json"

    def pids(self) -> dict[str, dict[str, int]]:
        """Running PIDs, by cluster and component."""
        return {name: c.pids() for name, c in self._clusters.items()}

    def write_state(self) -> None:
        entries = [c.client_entry("admin") for c in self._clusters.values()]
        _write_private(self.kubeconfig, yaml.safe_dump(_kubeconfig(entries), sort_keys=True))
        for c in self._clusters.values():
            _write_private(
                c.kubeconfig, yaml.safe_dump(_kubeconfig([c.client_entry("admin")]), sort_keys=True)
            )
        state = {"bin_dir": str(self.bin_dir), "clusters": {n: c.state() for n, c in self._clusters.items()}}
        self.state_file.write_text(json.dumps(state, indent=2, sort_keys=True) + "\n")

    def close(self, remove_files: bool = True) -> None:
        """End every process of the set by PID (SIGTERM, then SIGKILL) and remove the workdir."""
        procs = [p for c in self._clusters.values() for p in c.processes.values()]
        for p in procs:
            p.signal(signal.SIGTERM)
        for p in procs:
            p.stop()
        still = [f"{p.component} pid {p.pid}" for p in procs if p.alive()]
        if still:
            raise ControlPlaneError(f"still running after SIGKILL: {', '.join(still)}")
        if remove_files:
            shutil.rmtree(self.workdir, ignore_errors=True)

    @classmethod
    def load(cls, workdir: Path | str) -> ClusterSet:
        """Re-attach to a set started by another process (from its state.json), e.g. to close it.

        A PID counts as ours only while its start time matches the recorded one, so a
        reused PID is never signalled.
        """
        workdir = Path(workdir)
        try:
            state = json.loads((workdir / "state.json").read_text())
        except (OSError, ValueError) as e:
            raise ControlPlaneError(f"{workdir}: no readable state.json: {e}") from e
        bin_dir = Path(state["bin_dir"])
        clusters = {}
        for name, cs in state["clusters"].items():
            net = ClusterNetwork(**{k: ipaddress.IPv4Network(v) for k, v in cs["network"].items()})
            c = Cluster(
                name,
                index=cs["index"],
                directory=workdir / name,
                network=net,
                bin_dir=bin_dir,
                set_kubeconfig=workdir / "kubeconfig",
                die_with_parent=False,
                etcd_members=cs.get("etcd_members", 1),
            )
            c.ports = {k: int(v) for k, v in cs["ports"].items()}
            c.kwok_nodes = list(cs["kwok_nodes"])
            for component, ps in cs["processes"].items():
                p = c._add(component, list(ps["argv"]))
                p.pid, p.start_time = ps["pid"], ps["start_time"]
            clusters[name] = c
        return cls(workdir, bin_dir, clusters)


def check_bin_dir(bin_dir: Path | str) -> Path:
    """The bin dir, after checking it holds every pinned program."""
    bin_dir = Path(bin_dir)
    missing = [p for p in PROGRAMS if not os.access(bin_dir / p, os.X_OK)]
    if missing:
        raise ControlPlaneError(
            f"{bin_dir} lacks {', '.join(missing)}; run 'make setup-upstream' "
            "or set CLOUD58_BIN_DIR=/path/to/official/binaries"
        )
    return bin_dir


def start_clusters(
    names: Iterable[str],
    workdir: Path | str,
    bin_dir: Path | str,
    *,
    controllers: bool = False,
    kwok_nodes: int | Mapping[str, Sequence[str]] = 0,
    networks: Mapping[str, ClusterNetwork] | None = None,
    timeout: float = DEFAULT_TIMEOUT,
    die_with_parent: bool = True,
    etcd_members: int = 1,
) -> ClusterSet:
    """Start one control plane per name, side by side, and wait until all are ready.

    ``workdir`` must be absent or empty. ``controllers`` adds kube-controller-manager and
    kube-scheduler; ``kwok_nodes`` adds kwok and fake nodes: a count per cluster (named
    ``<cluster>-kwok-<i>``) or, by cluster, the names to give them (the plan's hosts, so
    what cluster.yml says of a node finds it). Deployments get Running pods when both are on.
    ``networks`` overrides the default address plan (``ClusterNetwork.for_index``) per
    cluster. ``etcd_members`` etcd members per cluster (1, or 3 to lose one and keep a
    quorum), all on loopback, each the kube-apiserver's etcd server. ``timeout`` bounds
    each phase. With ``die_with_parent`` the programs get
    SIGTERM when the calling thread ends (tests); the lab passes False so they outlive
    ``cloud58_lab up``.
    On failure every started process is ended and the error shows the log tails;
    the workdir stays for inspection.
    """
    names = list(names)
    if not names or len(set(names)) != len(names):
        raise ControlPlaneError(f"cluster names must be distinct and at least one: {names}")
    for name in names:
        if not _NAME.fullmatch(name):
            raise ControlPlaneError(f"cluster name {name!r}: use lowercase letters, digits and '-' (max 40)")
    if etcd_members not in (1, 3, 5):
        raise ControlPlaneError(
            f"etcd_members {etcd_members!r}: use 1, 3 or 5 (an odd number keeps a quorum)"
        )
    nets = {}
    for index, name in enumerate(names):
        nets[name] = (networks or {}).get(name) or ClusterNetwork.for_index(index)
        nets[name].validate(name)
    bin_dir = check_bin_dir(bin_dir)
    workdir = Path(workdir).absolute()
    if workdir.exists() and any(workdir.iterdir()):
        raise ControlPlaneError(f"{workdir} is not empty; the control planes need a directory of their own")
    workdir.mkdir(parents=True, exist_ok=True)
    clusters: dict[str, Cluster] = {}
    for index, name in enumerate(names):
        (workdir / name).mkdir()
        clusters[name] = Cluster(
            name,
            index=index,
            directory=workdir / name,
            network=nets[name],
            bin_dir=bin_dir,
            set_kubeconfig=workdir / "kubeconfig",
            die_with_parent=die_with_parent,
            etcd_members=etcd_members,
        )
    cset = ClusterSet(workdir, bin_dir, clusters)
    try:
        _start(cset, controllers=controllers, kwok_nodes=kwok_nodes, timeout=timeout)
    except BaseException:
        cset.close(remove_files=False)
        raise
    return cset


def kwok_node_names(cluster: str, kwok_nodes: int | Mapping[str, Sequence[str]]) -> list[str]:
    """The fake nodes of ``cluster``: the names given for it, or ``<cluster>-kwok-<i>``."""
    if isinstance(kwok_nodes, Mapping):
        return list(kwok_nodes.get(cluster, ()))
    return [f"{cluster}-kwok-{i}" for i in range(kwok_nodes)]


def _start(
    cset: ClusterSet, *, controllers: bool, kwok_nodes: int | Mapping[str, Sequence[str]], timeout: float
) -> None:
    taken: set[int] = set()
    clusters = list(cset.values())

    def phase(
        component: str,
        make: Callable[[Cluster, set[int]], _Process],
        probe: Callable[[Cluster], Probe],
    ) -> None:
        """Start ``component`` in every cluster, then wait until each passes its probe."""
        by_label = {f"{c.name} {component}": c for c in clusters}
        tries = dict.fromkeys(by_label, 0)

        def restart(label: str, proc: _Live) -> bool:
            # Something took a port between our check and the bind: new ports, again.
            tries[label] += 1
            if tries[label] >= _PORT_RETRIES or not _address_in_use(proc):
                return False
            cluster = by_label[label]
            make(cluster, taken).spawn(cluster.die_with_parent)
            return True

        for c in clusters:
            make(c, taken).spawn(c.die_with_parent)
        _wait({label: (_Live(c, component), probe(c)) for label, c in by_label.items()}, timeout, restart)

    for c in clusters:
        c.make_pki()
    phase("etcd", Cluster.etcd, lambda c: c.etcd_ready)
    phase("kube-apiserver", Cluster.apiserver, lambda c: c.apiserver_ready)
    for c in clusters:
        c.write_kubeconfigs()
    cset.write_state()
    if controllers:
        phase(
            "kube-controller-manager",
            Cluster.controller_manager,
            lambda c: c.healthz_probe("controller-manager"),
        )
        phase("kube-scheduler", Cluster.scheduler, lambda c: c.healthz_probe("scheduler"))
    if kwok_nodes:
        version = clusters[0].api("GET", "/version")["gitVersion"]
        for c in clusters:
            c.create_kwok_nodes(kwok_node_names(c.name, kwok_nodes))
        phase("kwok", lambda c, _taken: c.kwok(version), lambda c: c.kwok_nodes_ready)
    cset.write_state()


class _Live:
    """The current process of a component (a port retry replaces the _Process)."""

    def __init__(self, cluster: Cluster, component: str) -> None:
        self._cluster, self._component = cluster, component

    def _proc(self) -> _Process:
        return self._cluster.processes[self._component]

    def alive(self) -> bool:
        return self._proc().alive()

    def exit_status(self) -> str:
        return self._proc().exit_status()

    def tail(self, lines: int = 25) -> str:
        return self._proc().tail(lines)

    @property
    def log(self) -> Path:
        return self._proc().log
