"""A lab datacenter, provisioned through the front door and run by real kubelets.

* every host of the datacenter (masters, minions, LVS directors) is a podman container from
  the node image (systemd) on a podman network that is the datacenter's node network, at
  the host's address from the plan (198.18.0.0/15 only); :meth:`StaticPodLab.add_host` adds
  one the inventory lacks (a scale-out);
* ``playbooks/site.yml`` converges those containers (connection
  ``cloud58.lab.podman_nsenter``, or mitogen's setns) exactly as it converges real hosts:
  containerd (Debian's) and the pinned kubelet on masters and minions, the control plane's
  PKI, static pod manifests, kubeconfigs and audit policy, HAProxy from Debian, and the rest;
* each master's kubelet runs the control plane from the manifests the ``control_plane`` role
  wrote in ``/etc/kubernetes/manifests`` (etcd, events etcd, apiserver, controller-manager,
  scheduler), executes their probes, and registers the master's Node (tainted
  ``node-role.kubernetes.io/control-plane:NoSchedule``) with its mirror pods;
* the minions' kubelets join with a client certificate from the cluster PKI (site.yml's
  ``join`` stage) and register Nodes with the plan's labels through a master's
  ``api_endpoint``.

Every host container has a private cgroup namespace and a tmpfs on /var/lib/containerd
(overlayfs cannot stack its snapshots on the container's overlay root). Two stand-ins give
the nodes what production nodes get elsewhere, both named in docs/control-plane.md:
:meth:`StaticPodLab.prepare_nodes` writes a bridge + host-local CNI configuration over the
node's block of its rack's pool (calico-node's CNI in production), and imports into
containerd the images no registry serves here (the operator's registry mirror in
production): the lab's pause image on every node, and on the masters the control plane's
images ``localhost/cloud58/<component>:<version>``, built from the same pinned binaries
(``FROM scratch`` plus the static binary) and tagged with the version the binary reports,
so a manifest at another version finds no image. Everything this module creates is named
``<prefix>-...`` and removed by exact name in :meth:`StaticPodLab.close`.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import ipaddress
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import yaml

from cloud58_lab import programs
from cloud58_lab.controlplane import proc_start_time
from cloud58_lab.mirror import Mirror
from cloud58_lab.nodes import SYSTEMD_HOST_FLAGS

LAB_NETWORK = ipaddress.ip_network("198.18.0.0/15")
REPO = Path(__file__).resolve().parents[2]
REGISTRY = "localhost/cloud58"
IMAGE_BINARIES = {
    "etcd": ("etcd", "etcdctl"),
    "kube-apiserver": ("kube-apiserver",),
    "kube-controller-manager": ("kube-controller-manager",),
    "kube-scheduler": ("kube-scheduler",),
}
_VERSION_ARG = {"etcd": "--version"}
PAUSE_SOURCE = REPO / "images/pause"
# The demo app whose image the lab builds from the pause image's /echo (images/pause/README.md).
ECHO_APP = REPO / "apps/echo.yaml"
# A lab host's own CPU pressure: its container's cgroup in the unified hierarchy (cgroup v1
# hybrid; PSI is kept per cgroup there whatever the controllers).
OVERLOAD_SOURCE = "/sys/fs/cgroup/unified/cpu.pressure"
CNI_CONFLIST = "/etc/cni/net.d/10-cloud58-lab.conflist"
# The masters' kubelets read static pods from here (the kubelet and control_plane roles' default).
MANIFESTS = "/etc/kubernetes/manifests"
# A manifest the lab takes out of MANIFESTS to stop its pod is kept here until it goes back.
HELD_MANIFESTS = "/etc/kubernetes/lab-held-manifests"
ENDPOINT_PORT = 8443  # api_endpoint's default
CONSUL_VERSION = "1.14.11"  # the pin of upstream/consul/go.mod, which make setup-consul builds
_PODMAN_TIMEOUT = 300
# How Ansible reaches a host container: one nsenter per task (the lab's own connection), or,
# under the mitogen strategy, mitogen's setns connection, which enters the container's
# namespaces once and keeps one Python in it for the run (its docker kind; podman answers
# the `docker inspect` it runs to find the container's first process).
PODMAN_NSENTER = {"ansible_connection": "cloud58.lab.podman_nsenter"}
MITOGEN_SETNS = {
    "ansible_connection": "mitogen_setns",
    "mitogen_kind": "docker",
    "mitogen_docker_path": "podman",
}
# On the lab network: "<pid>:<start time>" of the process that created it.
OWNER_LABEL = "cloud58.io/owner"
# `make lab` exits and leaves its lab up until `make lab-down`: the network names the state
# file that records it, and remove_leftovers keeps such a lab while that file exists.
KEEPER_LABEL = "cloud58.io/kept-by"


class StaticPodLabError(RuntimeError):
    """The lab could not be built, converged, played or queried."""


def _failures(output: str) -> list[str]:
    """The failed tasks of an ansible-playbook output: each task's header and its ``fatal:`` or
    ``failed:`` lines (cut to 2,000 characters), which the tail of a long run's output may have
    left behind."""
    found, task = [], ""
    for line in output.splitlines():
        if line.startswith("TASK ["):
            task = line
        elif line.startswith(("fatal: [", "failed: [")):
            if task and (not found or found[-1] != task):
                found.append(task)
            found.append(line[:2000])
    return found


def _run(argv, *, check=True, timeout=_PODMAN_TIMEOUT, env=None, input_text=None, cwd=None):
    try:
        result = subprocess.run(
            programs.resolve(argv),
            capture_output=True,
            text=True,
            check=False,
            timeout=timeout,
            env=env,
            input=input_text,
            cwd=cwd,
        )
    except subprocess.TimeoutExpired as e:
        partial = e.stdout.decode(errors="replace") if isinstance(e.stdout, bytes) else (e.stdout or "")
        tail = f"; its last output:\n{partial[-3000:]}" if partial else ""
        raise StaticPodLabError(f"{' '.join(map(str, argv))}: no answer after {timeout}s{tail}") from e
    if check and result.returncode != 0:
        raise StaticPodLabError(
            f"{' '.join(map(str, argv))} exited {result.returncode}:\n{result.stderr.strip()[-3000:]}"
        )
    return result


def lab_containers_conf(workdir: Path) -> Path:
    """The repository's containers.conf with equal soft and hard nofile limits: podman 4.3's
    kube play swaps the two, and a soft limit above the hard one fails every container."""
    source = (REPO / "containers/containers.conf").read_text()
    text = source.replace('"nofile=1024:4096"', '"nofile=16384:16384"')
    if text == source:
        raise StaticPodLabError(
            "containers/containers.conf changed: its nofile ulimit is not the expected one"
        )
    path = workdir / "containers.conf"
    path.write_text(text)
    return path


def binary_version(path: Path) -> str:
    """``v1.36.3`` / ``v3.6.8`` as the binary itself reports it."""
    out = _run([path, "--version"], timeout=30).stdout
    for line in out.splitlines():
        words = line.replace(":", " ").split()
        for word in words:
            if word[:1] in "v0123456789" and word.count(".") == 2:
                return word if word.startswith("v") else f"v{word}"
    raise StaticPodLabError(f"{path} --version printed no version: {out!r}")


def build_images(bin_dir: Path, workdir: Path, env: dict, registry: str = REGISTRY) -> dict:
    """``{component: image}`` built from the pinned binaries; an image whose label holds the
    binary's digest is reused."""
    images = {}
    for component, binaries in IMAGE_BINARIES.items():
        main = bin_dir / binaries[0]
        version = binary_version(main)
        image = f"{registry}/{component}:{version}"
        digest = hashlib.sha256(b"".join((bin_dir / b).read_bytes() for b in binaries)).hexdigest()
        label = _run(
            ["podman", "image", "inspect", "--format", '{{index .Labels "cloud58.binary-sha256"}}', image],
            check=False,
            env=env,
        )
        if label.returncode == 0 and label.stdout.strip() == digest:
            images[component] = image
            continue
        context = workdir / f"image-{component}"
        (context / "tmp").mkdir(parents=True, exist_ok=True)
        for b in binaries:
            shutil.copy2(bin_dir / b, context / b)
        lines = ["FROM scratch", *[f"COPY {b} /usr/local/bin/{b}" for b in binaries], "COPY tmp /tmp"]
        lines += ["ENV PATH=/usr/local/bin", f'LABEL cloud58.binary-sha256="{digest}"']
        (context / "Containerfile").write_text("\n".join(lines) + "\n")
        _run(["podman", "build", "--quiet", "--tag", image, str(context)], env=env)
        shutil.rmtree(context)
        images[component] = image
    return images


def save_archives(images: dict, workdir: Path, env: dict) -> dict:
    """``{component: oci archive}`` of ``images`` (``{component: image}``), for ``ctr images
    import`` on the masters; an archive of the same image id is reused."""
    archives = {}
    for component, image in sorted(images.items()):
        image_id = _run(["podman", "image", "inspect", "--format", "{{.Id}}", image], env=env).stdout.strip()
        archive = workdir / f"{component}-{image_id[:16]}.oci.tar"
        if not archive.exists():
            _run(
                ["podman", "save", "--quiet", "--format", "oci-archive", "--output", str(archive), image],
                env=env,
            )
        archives[component] = archive
    return archives


def build_pause_image(workdir: Path, env: dict, registry: str = REGISTRY) -> tuple[str, Path]:
    """``(image, oci archive)`` of the pause image built from images/pause; an image of the
    same source is reused. The tag is the source's digest."""
    files = sorted(p for p in PAUSE_SOURCE.rglob("*") if p.suffix in (".go", ".mod"))
    digest = hashlib.sha256(
        b"".join(str(p.relative_to(PAUSE_SOURCE)).encode() + b"\0" + p.read_bytes() for p in files)
    ).hexdigest()
    image = f"{registry}/pause:{digest[:16]}"
    archive = workdir / f"pause-{digest[:16]}.oci.tar"
    if _run(["podman", "image", "exists", image], check=False, env=env).returncode != 0:
        context = workdir / "image-pause"
        context.mkdir(parents=True, exist_ok=True)
        go = shutil.which("go") or "/usr/local/go/bin/go"
        build_env = dict(env, CGO_ENABLED="0", GOTOOLCHAIN="local", GOFLAGS="-mod=mod", GOWORK="off")
        # pause; say: a lab pod's known line in its container log; burn: a lab pod's CPU load
        # (images/pause/README.md).
        for name, package in (("pause", "."), ("say", "./say"), ("burn", "./burn"), ("echo", "./echo")):
            _run(
                [go, "build", "-trimpath", "-ldflags", "-s -w", "-o", str(context / name), package],
                env=build_env,
                cwd=PAUSE_SOURCE,
            )
        (context / "Containerfile").write_text(
            "FROM scratch\nCOPY pause /pause\nCOPY say /say\nCOPY burn /burn\nCOPY echo /echo\n"
            "USER 65535:65535\n"
            'ENTRYPOINT ["/pause"]\n'
            f'LABEL cloud58.source-sha256="{digest}"\n'
        )
        _run(["podman", "build", "--quiet", "--tag", image, str(context)], env=env)
        shutil.rmtree(context)
    if not archive.exists():
        _run(
            ["podman", "save", "--quiet", "--format", "oci-archive", "--output", str(archive), image], env=env
        )
    return image, archive


def build_echo_image(pause_image: str, workdir: Path, env: dict) -> tuple[str, Path]:
    """``(image, oci archive)`` of the demo app ``apps/echo.yaml`` names: the pause image with
    ``/echo`` as its entrypoint, tagged with the app's image reference (no registry serves
    it here). An image built from the same pause image is reused."""
    image = yaml.safe_load(ECHO_APP.read_text())["image"]
    label = '{{index .Labels "cloud58.pause-image"}}'
    found = _run(["podman", "image", "inspect", "--format", label, image], check=False, env=env)
    if found.returncode != 0 or found.stdout.strip() != pause_image:
        context = workdir / "image-echo"
        context.mkdir(parents=True, exist_ok=True)
        (context / "Containerfile").write_text(
            f'FROM {pause_image}\nENTRYPOINT ["/echo"]\nLABEL cloud58.pause-image="{pause_image}"\n'
        )
        _run(["podman", "build", "--quiet", "--tag", image, str(context)], env=env)
        shutil.rmtree(context)
    archive = workdir / f"echo-{pause_image.rsplit(':', 1)[1]}.oci.tar"
    if not archive.exists():
        _run(
            ["podman", "save", "--quiet", "--format", "oci-archive", "--output", str(archive), image], env=env
        )
    return image, archive


def podman_exec(container: str, argv, *, env=None, check=True, timeout=120, input_text=None):
    """``podman exec -i container argv...``; one line naming the command when it fails."""
    result = _run(
        ["podman", "exec", "-i", container, *argv],
        check=False,
        timeout=timeout,
        env=env,
        input_text=input_text,
    )
    if check and result.returncode != 0:
        raise StaticPodLabError(
            f"podman exec -i {container} {' '.join(map(str, argv))} exited {result.returncode}:\n"
            f"{result.stderr.strip()[-3000:]}"
        )
    return result


@dataclass
class Master:
    name: str
    address: str
    container: str
    stopped: bool = False

    def pid(self, env) -> int:
        out = _run(["podman", "inspect", "--format", "{{.State.Pid}}", self.container], env=env).stdout
        pid = int(out.strip())
        if pid <= 0:
            raise StaticPodLabError(f"{self.container} is not running")
        return pid


def _other_hosts(plan: dict, datacenter: str, masters: dict, prefix: str) -> dict:
    """The datacenter's hosts that are not masters (minions, LVS directors), by name."""
    return {
        name: Master(name, host["address"], f"{prefix}-{name}")
        for name, host in sorted(plan["hosts"].items())
        if host["datacenter"] == datacenter and name not in masters and host.get("address")
    }


class StaticPodLab:
    """One lab datacenter's masters and their static pods (see the module docstring)."""

    def __init__(
        self,
        datacenter: str,
        plan: dict,
        workdir: Path | str,
        bin_dir: Path | str,
        node_image: str,
        *,
        prefix: str = "c58cp",
        with_nodes: bool = False,
        kept_by: Path | str | None = None,
        mitogen: bool = False,
    ) -> None:
        self.dc = datacenter
        self.mitogen = mitogen
        self.kept_by = str(kept_by) if kept_by else ""
        self.plan = plan
        self.workdir = Path(workdir)
        self.bin_dir = Path(bin_dir)
        self.node_image = node_image
        self.prefix = prefix
        clusters = [c for c in plan["clusters"].values() if c["datacenter"] == datacenter]
        if len(clusters) != 1:
            raise StaticPodLabError(
                f"datacenter {datacenter!r}: the lab runs exactly one cluster, found {len(clusters)}"
            )
        self.cluster = clusters[0]
        self.nodes = ipaddress.ip_network(plan["datacenters"][datacenter]["networks"]["nodes"])
        if not self.nodes.subnet_of(LAB_NETWORK):
            raise StaticPodLabError(f"{datacenter}: node network {self.nodes} is outside {LAB_NETWORK}")
        self.network = f"{prefix}-{datacenter}"
        self.masters = {
            e["name"]: Master(e["name"], e["address"], f"{prefix}-{e['name']}")
            for e in self.cluster["api"]["endpoints"]
        }
        others = {m["name"] for m in self.cluster["etcd_events"]["members"]} - set(self.masters)
        if others:
            raise StaticPodLabError(
                f"{datacenter}: events etcd hosts {sorted(others)} are not masters; the lab has only masters"
            )
        # with_nodes: every other host of the datacenter too (minions, LVS directors), for
        # playbooks/site.yml; they run no static pods.
        self.nodes_hosts = _other_hosts(plan, datacenter, self.masters, prefix) if with_nodes else {}
        self.added: dict = {}  # group -> {host: inventory variables}: hosts of a scale-out
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.pki_dir = self.workdir / "pki"
        self.env = dict(os.environ, CONTAINERS_CONF=str(lab_containers_conf(self.workdir)))
        self.images: dict = {}
        self.image_archives: dict = {}
        self._held: dict = {}  # (host, pod name) -> manifest file stop_pod kept aside
        self.pause_image, self.pause_archive = "", None
        self.echo_image, self.echo_archive = "", None
        self.fabric = None  # the BGP fabric on these containers, once join_fabric ran
        self._network_created = False
        # The operator's mirror (Consul's binary, served once the network exists) and the
        # secrets an operator keeps in Ansible Vault, new for every lab; site.yml gets them in
        # secrets.json (mode 0600) in the work directory, never in Git or a log.
        self.mirror: Mirror | None = None
        self.secrets = {
            "consul_encrypt_key": base64.b64encode(os.urandom(32)).decode(),
            "consul_acl_management_token": str(uuid.uuid4()),
        }

    @property
    def hosts(self) -> dict:
        """Every host container of the lab: the masters, then the other hosts."""
        return {**self.masters, **self.nodes_hosts}

    # -- building -------------------------------------------------------------------------

    def start(self, timeout: float = 120) -> None:
        """Images, the datacenter network and booted host containers."""
        # Name a missing program before the first container starts.
        programs.require("podman", "conmon", "runc", "nsenter")
        self.images = build_images(self.bin_dir, self.workdir, self.env)
        self.image_archives = save_archives(self.images, self.workdir, self.env)
        self.pause_image, self.pause_archive = build_pause_image(self.workdir, self.env)
        self.echo_image, self.echo_archive = build_echo_image(self.pause_image, self.workdir, self.env)
        gateway = self.nodes.broadcast_address - 1
        taken = {m.address for m in self.hosts.values()}
        if str(gateway) in taken:
            raise StaticPodLabError(f"{self.dc}: the gateway {gateway} of {self.nodes} is a host's address")
        _run(
            [
                "podman",
                "network",
                "create",
                "--subnet",
                str(self.nodes),
                "--gateway",
                str(gateway),
                "--label",
                "cloud58.io/lab=staticpods",
                "--label",
                f"{OWNER_LABEL}={os.getpid()}:{proc_start_time(os.getpid())}",
                *(["--label", f"{KEEPER_LABEL}={self.kept_by}"] if self.kept_by else []),
                self.network,
            ],
            env=self.env,
        )
        self._network_created = True
        self._boot(list(self.hosts.values()), timeout)
        # The hosts reach this machine at the network's gateway once a container is on it.
        self.mirror = Mirror(self.workdir / "mirror", {"consul": programs.path("consul")}, str(gateway))

    def provision(self, *, api_timeout: float = 300, out=print, site_args: tuple = ()) -> dict:
        """The datacenter through the front door, from empty hosts to a serving API with
        joined minions: host containers, ``site.yml`` (first run without waiting for health),
        the node stand-ins (the images on the masters too), the API through a master's
        api_endpoint once the masters' kubelets run the control plane, and a second
        ``site.yml`` (health, identity object). Keeps both runs (``first_run``,
        ``second_run``) and ``endpoint`` (a kubeconfig through that balancer); returns the
        seconds each step took. ``site_args``: more arguments of both site.yml runs
        (``--skip-tags …``). Raises StaticPodLabError naming the step and the run's log."""
        timings = {}

        def step(name: str, started: float) -> None:
            timings[name] = round(time.monotonic() - started)
            out(f"{self.dc}: {name} in {timings[name]} s")

        started = time.monotonic()
        self.start()
        step("host containers", started)
        started = time.monotonic()
        self.first_run = self.ansible_playbook(
            "site.yml", {"control_plane_wait_healthy": False}, "--diff", *site_args
        )
        self._require(self.first_run, "site.yml (first run)")
        self.prepare_nodes()
        step("site.yml from empty hosts", started)
        started = time.monotonic()
        self.prepare_masters()
        self.endpoint = self.kubeconfig_via(sorted(self.masters)[1], ENDPOINT_PORT)
        deadline = time.monotonic() + api_timeout
        while self.kubectl(self.endpoint, "get", "--raw", "/readyz", check=False).stdout != "ok":
            if time.monotonic() > deadline:
                raise StaticPodLabError(
                    f"{self.dc}: the API did not answer through {self.endpoint} in {api_timeout:.0f}s; "
                    f"the masters:\n{self._kubelet_states()}"
                )
            time.sleep(1)
        step("static pods and the API", started)
        started = time.monotonic()
        self.second_run = self.ansible_playbook("site.yml", {}, *site_args)
        self._require(self.second_run, "site.yml (second run)")
        step("site.yml again (health, identity)", started)
        return timings

    def _require(self, result, what: str) -> None:
        if result.returncode != 0:
            logs = sorted(self.workdir.glob("vars-*.log"), key=lambda p: p.stat().st_mtime)
            raise StaticPodLabError(
                f"{self.dc}: {what} failed (rc {result.returncode}, log {logs[-1] if logs else '-'}):\n"
                + "\n".join(_failures(result.stdout))
                + result.stdout[-4000:]
                + result.stderr[-2000:]
            )

    def add_host(self, name: str, group: str, host_vars: dict, timeout: float = 120) -> Master:
        """A host that inventories/lab does not have yet (a scale-out): its container on the
        datacenter network, booted, and its entry (``group``, ``host_vars``) in the overlay."""
        m = Master(name, host_vars["address"], f"{self.prefix}-{name}")
        self.nodes_hosts[name] = m
        self.added.setdefault(group, {})[name] = dict(host_vars)
        self._boot([m], timeout)
        return m

    def add_inventory_host(self, name: str, group: str, host_vars: dict) -> None:
        """A host in the overlay's inventory only, without a container: a datacenter that is
        larger on paper than the lab, for runs limited to other hosts (a scale-out whose cost
        must not depend on how many hosts the datacenter has)."""
        self.added.setdefault(group, {})[name] = dict(host_vars)

    def _boot(self, hosts: list, timeout: float) -> None:
        for m in hosts:
            _run(
                [
                    "podman",
                    "run",
                    "--detach",
                    "--name",
                    m.container,
                    "--hostname",
                    m.name,
                    "--network",
                    self.network,
                    "--ip",
                    m.address,
                    *SYSTEMD_HOST_FLAGS,
                    # containerd's overlayfs snapshots cannot sit on the container's overlay root.
                    "--tmpfs",
                    "/var/lib/containerd:rw,exec,suid,dev",
                    "--label",
                    "cloud58.io/lab=staticpods",
                    self.node_image,
                    "/sbin/init",
                ],
                env=self.env,
            )
        deadline = time.monotonic() + timeout
        for m in hosts:
            while True:
                state = self.exec(m.name, ["systemctl", "is-system-running"], check=False).stdout.strip()
                if state in ("running", "degraded"):
                    break
                if time.monotonic() > deadline:
                    raise StaticPodLabError(f"{m.container}: systemd is {state!r} after {timeout:.0f}s")
                time.sleep(0.5)
            # A real host has package lists (HAProxy comes from Debian).
            self.exec(m.name, ["apt-get", "update", "-qq"], timeout=300)

    # -- Ansible --------------------------------------------------------------------------

    def inventory_overlay(self, mitogen: bool = False) -> Path:
        """Connection variables for the host containers, layered over inventories/lab: the
        lab's podman_nsenter, or mitogen's setns connection for the mitogen strategy."""
        connection = MITOGEN_SETNS if mitogen else PODMAN_NSENTER
        hosts = {
            m.name: {
                **connection,
                "ansible_host": m.container,
                "ansible_python_interpreter": "/usr/bin/python3",
            }
            for m in self.hosts.values()
        }
        overlay = {"all": {"hosts": hosts}}
        if self.added:
            overlay["all"]["children"] = {group: {"hosts": added} for group, added in self.added.items()}
        if self.nodes_hosts:
            overlay["all"]["vars"] = {
                # The container's veth is the NIC whose queues are steered.
                "kernel_tuning_nics": ["eth0"],
                # The kubelet binary from the build cache.
                "kubelet_local_binary": str(self.bin_dir / "kubelet"),
                # This host's bounding set lacks CAP_SYS_RESOURCE (kubelet-spike E1).
                "container_runtime_restrict_oom_score_adj": True,
                # The lab's CNI stand-in uses Debian's bridge and host-local plugins.
                "container_runtime_packages": ["containerd", "containernetworking-plugins"],
                "container_runtime_cni_bin_dir": "/usr/lib/cni",
                "container_runtime_sandbox_image": self.pause_image,
                # No API VIP is announced in the lab yet (#14): a master's api_endpoint.
                "control_plane_kubelet_api_server": f"https://{self._endpoint_master().address}:{ENDPOINT_PORT}",
            }
        path = self.workdir / ("connection-mitogen.yml" if mitogen else "connection.yml")
        path.write_text(yaml.safe_dump(overlay, sort_keys=True))
        return path

    def ansible_playbook(
        self,
        playbook: str,
        extra_vars: dict,
        *args: str,
        timeout: float = 2400,
        config: Path | None = None,
        mitogen: bool | None = None,
    ):
        """Run a playbook of the repository against this datacenter's hosts (and localhost),
        with the repository's ansible.cfg unless ``config`` names another. ``mitogen``: under
        the mitogen strategy (``ANSIBLE_STRATEGY=mitogen_linear``, the containers reached by
        ``mitogen_setns``); by default the lab's choice, ``self.mitogen``. The result's
        ``seconds`` is how long ansible-playbook ran."""
        mitogen = self.mitogen if mitogen is None else mitogen
        variables = {
            "control_plane_image_registry": REGISTRY,
            "control_plane_pki_dir": str(self.pki_dir),
            "prometheus_pki_dir": str(self.pki_dir),
            # podman caps open files at 4096 in the hosts; HAProxy needs about 2 per connection.
            "api_endpoint_maxconn": 1000,
            "haproxy_gateway_maxconn": 1000,
            # The minions' /proc/pressure is this whole machine's: cloud58-overload reads the
            # minion container's own cgroup (same format), over windows short enough for a test.
            "node_agents_overload_extra_args": [
                "--source",
                OVERLOAD_SOURCE,
                "--high",
                "60",
                "--low",
                "30",
            ],
            "node_agents_overload_over_seconds": 10,
            "node_agents_overload_clear_seconds": 10,
            "node_agents_overload_interval": 1,
            # The operator's mirror of VictoriaLogs is the binary make setup built; the lab's
            # store keeps at most 1 GiB (the oldest data goes first).
            "log_store_binary_src": programs.path("victoria-logs"),
            "log_store_max_disk_bytes": 1073741824,
        }
        if self.mirror is not None:
            variables.update(
                consul_version=CONSUL_VERSION,
                consul_url=self.mirror.url("consul"),
                consul_sha256=self.mirror.sha256["consul"],
                # A shared machine: Consul's timing for slow hosts (its development default).
                consul_raft_multiplier=5,
            )
        variables.update(extra_vars)
        vars_file = self.workdir / f"vars-{len(list(self.workdir.glob('vars-*.json')))}.json"
        vars_file.write_text(json.dumps(variables))
        # The secrets apart, in a file for secrets (0600), as an operator's vault file is.
        secrets_file = self.workdir / "secrets.json"
        secrets_file.touch(mode=0o600)
        secrets_file.write_text(json.dumps(self.secrets))
        env = dict(
            self.env,
            ANSIBLE_CONFIG=str(config or REPO / "ansible.cfg"),
            ANSIBLE_CACHE_PLUGIN_CONNECTION=str(self.workdir / "facts"),
            ANSIBLE_NOCOLOR="1",
            ANSIBLE_FORCE_COLOR="0",
            PY_COLORS="0",
        )
        if mitogen:
            env["ANSIBLE_STRATEGY"] = "mitogen_linear"
        env["PATH"] = f"{Path(sys.executable).parent}:{env.get('PATH', '')}"
        argv = [
            "ansible-playbook",
            "-i",
            str(REPO / "inventories/lab"),
            "-i",
            str(self.inventory_overlay(mitogen)),
            "--limit",
            ",".join(["localhost", *self.hosts]),
            "-e",
            f"@{vars_file}",
            "-e",
            f"@{secrets_file}",
            *args,
            str(REPO / "playbooks" / playbook),
        ]
        started = time.monotonic()
        result = _run(argv, check=False, timeout=timeout, env=env, cwd=REPO)
        result.seconds = time.monotonic() - started
        log = vars_file.with_suffix(".log")
        log.write_text(f"$ {' '.join(argv)}\n{result.stdout}\n{result.stderr}")
        return result

    def _endpoint_master(self) -> Master:
        return self.masters[sorted(self.masters)[0]]

    @property
    def minions(self) -> list:
        """The cluster's minions with containers, and the minions a scale-out added."""
        planned = [h for h in self.cluster["minions"] if h in self.nodes_hosts]
        return planned + sorted(self.added.get("minions", {}))

    def pod_block(self, host: str) -> str:
        """The lab's IPAM (as calico_bird.block_assignment): each node of a rack the next block
        of its rack's pool, nodes in name order."""
        racks = {h: self.plan["hosts"][h]["rack"] for h in self.cluster["nodes"]}
        racks.update({h: v["rack"] for h, v in self.added.get("minions", {}).items()})
        rack = racks[host]
        pool = self.cluster["pod_pools"][rack]
        nodes = sorted(h for h, r in racks.items() if r == rack)
        blocks = ipaddress.ip_network(pool["cidr"]).subnets(new_prefix=pool["block_size"])
        return str(dict(zip(nodes, blocks, strict=False))[host])

    def prepare_nodes(self, hosts: Iterable[str] | None = None) -> None:
        """What a production node gets from calico-node's CNI and the registry mirror, for the
        lab's minions (by default) and masters: a CNI configuration over the node's pod block
        (bridge + host-local) and the pause image in containerd, with the demo app's image on a
        minion. Needs containerd running (after site.yml's nodes stage). The routes to the
        other nodes' blocks come from each node's BIRD once the BGP fabric runs
        (:meth:`join_fabric`); a node added after that (a scale-out) joins it here."""
        hosts = list(hosts or self.minions)
        for host in hosts:
            block = self.pod_block(host)
            conflist = {
                "cniVersion": "1.0.0",
                "name": "cloud58-lab",
                "plugins": [
                    {
                        "type": "bridge",
                        "bridge": "cni0",
                        "isGateway": True,
                        "ipMasq": False,
                        "hairpinMode": True,
                        "ipam": {
                            "type": "host-local",
                            "ranges": [[{"subnet": block}]],
                            "routes": [{"dst": "0.0.0.0/0"}],
                        },
                    },
                    {"type": "portmap", "capabilities": {"portMappings": True}},
                    # The pods' kubernetes.io/{ingress,egress}-bandwidth annotations (apps'
                    # `bandwidth:`), as calico-node's install-cni adds it (docs/node-protection.md).
                    {"type": "bandwidth", "capabilities": {"bandwidth": True}},
                ],
            }
            self.exec(
                host,
                ["sh", "-c", f"mkdir -p {os.path.dirname(CNI_CONFLIST)} && cat > {CNI_CONFLIST}"],
                input_text=json.dumps(conflist, indent=2, sort_keys=True) + "\n",
            )
            self._import(host, self.pause_archive)
            if host not in self.masters:
                self._import(host, self.echo_archive)
            added = self.added.get("minions", {}).get(host)
            if self.fabric is not None and added is not None and host not in self.fabric.hosts:
                self.fabric.add_node(
                    host,
                    added["rack"],
                    added["address"],
                    self.node_labels(host),
                    self.hosts[host].pid(self.env),
                )

    def node_labels(self, host: str) -> dict:
        """The Kubernetes labels of ``host`` that the Calico objects' node selectors read: the
        plan's, or for a scale-out minion the ones the kubelet role registers it with, made
        from its inventory entry."""
        if host in self.plan["hosts"]:
            return dict(self.plan["hosts"][host]["node_labels"])
        from ansible_collections.cloud58.platform.plugins.module_utils.node.kubelet import node_labels

        entry = self.added["minions"][host]
        return node_labels(host, self.dc, entry["rack"], dict(entry.get("labels") or {}))

    def bridge(self, check: bool = True) -> str:
        """The Linux bridge of the datacenter's podman network (root namespace); with
        ``check=False``, "" when the network is gone."""
        out = _run(
            ["podman", "network", "inspect", self.network, "--format", "{{.NetworkInterface}}"],
            check=check,
            env=self.env,
        )
        return out.stdout.strip() if out.returncode == 0 else ""

    def join_fabric(self, net, inventory: str):
        """The datacenter's BGP fabric on the host containers (``bgplab.start_datacenter`` with
        this network's bridge and the containers' namespaces), converged; kept as ``fabric`` so
        that a scale-out minion joins it."""
        from cloud58_lab.bgplab import start_datacenter

        containers = {h: self.hosts[h].pid(self.env) for h in self.cluster["nodes"] if h in self.hosts}
        # podman's network masquerades what its containers send out of the node network, and
        # the kernel's br_netfilter applies that to bridged frames too: a node's packet to
        # another rack's pod would leave for its ToR from the bridge's address. In the fabric
        # nothing is translated, as between real racks.
        _run(["iptables", "-t", "nat", "-I", *self._fabric_nat_rule()])
        self.fabric = start_datacenter(
            net, inventory, self.dc, self.cluster["name"], bridge=self.bridge(), containers=containers
        )
        return self.fabric

    def _fabric_nat_rule(self) -> list:
        """The nat rule (chain first) that keeps the node network's traffic to the lab's
        addresses untranslated (:meth:`join_fabric`)."""
        return [
            "POSTROUTING",
            "-s",
            str(self.nodes),
            "-d",
            str(LAB_NETWORK),
            "-m",
            "comment",
            "--comment",
            f"{self.network}: routed by the lab's BGP fabric",
            "-j",
            "RETURN",
        ]

    def _remove_fabric_ports(self) -> None:
        """The nat rule of :meth:`join_fabric`, and the bridge ports the fabric added
        (``NetLab.attach_bridge``: ``c58b…``), before the containers and the network go: the
        bridge podman removes then holds nothing of the fabric."""
        for _ in range(8):  # every copy of the rule, by its exact text
            if _run(["iptables", "-t", "nat", "-D", *self._fabric_nat_rule()], check=False).returncode != 0:
                break
        bridge = self.bridge(check=False) if self._network_created else ""
        if not bridge:
            return
        out = _run(["ip", "-j", "link", "show", "master", bridge], check=False).stdout
        for link in json.loads(out) if out.strip() else []:
            if link["ifname"].startswith("c58b"):
                _run(["ip", "link", "delete", link["ifname"]], check=False)

    def prepare_masters(self) -> None:
        """The node stand-ins on the masters, and the control plane's images in their
        containerd; then each master's kubelet restarts, so that it starts the static pods at
        once rather than at the end of the image-pull back-off it entered while site.yml
        wrote the manifests (up to 5 minutes)."""
        self.prepare_nodes(self.masters)
        for host in self.masters:
            for archive in self.image_archives.values():
                self._import(host, archive)
            self.exec(host, ["systemctl", "restart", "kubelet.service"])

    def _import(self, host: str, archive: Path) -> None:
        """An OCI archive into the host's containerd (namespace k8s.io, the CRI's)."""
        inside = f"/var/tmp/{archive.name}"
        _run(["podman", "cp", str(archive), f"{self.hosts[host].container}:{inside}"], env=self.env)
        self.exec(host, ["ctr", "--namespace", "k8s.io", "images", "import", inside], timeout=300)
        self.exec(host, ["rm", "-f", inside])

    # -- the static pods ------------------------------------------------------------------

    def rootfs(self, host: str) -> Path:
        return Path(_run(["podman", "mount", self.masters[host].container], env=self.env).stdout.strip())

    def manifests(self, host: str) -> dict:
        directory = self.rootfs(host) / "etc/kubernetes/manifests"
        return {p.name: yaml.safe_load(p.read_text()) for p in sorted(directory.glob("*.yaml"))}

    def pod_states(self) -> dict:
        """``{mirror pod: phase}`` of the masters' static pods, as their kubelets report them
        to the API server."""
        out = self.kubectl(self.endpoint, "get", "pods", "--namespace", "kube-system", "-o", "json").stdout
        return {
            p["metadata"]["name"]: p["status"].get("phase", "")
            for p in json.loads(out)["items"]
            if "kubernetes.io/config.mirror" in (p["metadata"].get("annotations") or {})
        }

    def stop_pod(self, host: str, name: str) -> None:
        """Static pod ``name`` (its manifest's name) of ``host`` stops: its manifest leaves the
        kubelet's directory (kept aside), and the kubelet stops the pod."""
        files = [f for f, pod in self.manifests(host).items() if pod["metadata"]["name"] == name]
        if len(files) != 1:
            raise StaticPodLabError(f"{host}: no single manifest of pod {name!r} in {MANIFESTS}: {files}")
        self.exec(
            host, ["sh", "-c", f"mkdir -p {HELD_MANIFESTS} && mv {MANIFESTS}/{files[0]} {HELD_MANIFESTS}/"]
        )
        self._held[(host, name)] = files[0]

    def restart_pod(self, host: str, name: str) -> None:
        """The manifest :meth:`stop_pod` kept aside goes back: the kubelet starts the pod again."""
        file = self._held.pop((host, name))
        self.exec(host, ["mv", f"{HELD_MANIFESTS}/{file}", f"{MANIFESTS}/{file}"])

    def stop_master(self, host: str) -> None:
        """A master goes down: the host itself, with its kubelet, static pods and HAProxy."""
        m = self.masters[host]
        m.stopped = True
        _run(["podman", "stop", "--time", "10", m.container], env=self.env)

    def _kubelet_states(self) -> str:
        """Per master: containerd's tasks (id, status) and the kubelet's last log lines."""
        parts = []
        for host in self.masters:
            tasks = self.exec(host, ["ctr", "--namespace", "k8s.io", "tasks", "ls"], check=False)
            log = self.exec(
                host, ["journalctl", "-u", "kubelet", "-n", "8", "--no-pager", "-o", "cat"], check=False
            )
            parts.append(
                f"{host} tasks:\n{tasks.stdout.strip()}\n{host} kubelet:\n{log.stdout.strip()[-2000:]}"
            )
        return "\n".join(parts)

    # -- queries --------------------------------------------------------------------------

    def exec(self, host: str, argv, *, check=True, timeout=120, input_text=None):
        return podman_exec(
            self.hosts[host].container,
            argv,
            env=self.env,
            check=check,
            timeout=timeout,
            input_text=input_text,
        )

    def http_get_in(self, host: str, url: str, ca: str | None = None) -> tuple[int, str]:
        """GET ``url`` from inside the master (its loopback is the static pods' loopback)."""
        code = (
            "import ssl,sys,urllib.request,urllib.error\n"
            # Without a CA, like the kubelet's HTTPS probes: no certificate check.
            "ca=sys.argv[2]\n"
            "ctx=ssl.create_default_context(cafile=ca) if ca else ssl._create_unverified_context()\n"
            "try:\n"
            "    r=urllib.request.urlopen(sys.argv[1],context=ctx,timeout=5)\n"
            "    print(r.status); print(r.read().decode()[:200])\n"
            "except urllib.error.HTTPError as e:\n"
            "    print(e.code)\n"
            "except OSError as e:\n"
            "    print(0); print(e)\n"
        )
        out = self.exec(host, ["python3", "-c", code, url, ca or ""], check=False).stdout.splitlines()
        return (int(out[0]) if out else 0), "\n".join(out[1:])

    def etcdctl(self, kind: str, *args: str, endpoints: list | None = None, check=True):
        """The pinned etcdctl against the main (``etcd``) or events (``etcd_events``) etcd."""
        members = self.cluster[kind]["members"]
        urls = endpoints or [m["client_url"] for m in members]
        argv = [
            self.bin_dir / "etcdctl",
            f"--endpoints={','.join(urls)}",
            f"--cacert={self.pki_dir / self.cluster['name'] / 'etcd/ca.crt'}",
            f"--cert={self.pki_dir / self.cluster['name'] / 'apiserver-etcd-client.crt'}",
            f"--key={self.pki_dir / self.cluster['name'] / 'apiserver-etcd-client.key'}",
            "--command-timeout=10s",
            *args,
        ]
        return _run(argv, check=check, timeout=60)

    def kubeconfig_via(self, host: str, port: int) -> Path:
        """The controller's admin kubeconfig with the datacenter context pointed at ``host``'s
        API endpoint; the certificate is still checked against the API's DNS name."""
        source = yaml.safe_load((self.pki_dir / self.cluster["name"] / "admin.kubeconfig").read_text())
        cluster = source["clusters"][0]["cluster"]
        cluster["tls-server-name"] = self.cluster["api"]["dns_name"]
        cluster["server"] = f"https://{self.masters[host].address}:{port}"
        path = self.workdir / f"kubeconfig-{host}-{port}"
        path.touch(mode=0o600)
        path.write_text(yaml.safe_dump(source, sort_keys=True))
        return path

    def kubectl(self, kubeconfig: Path, *args: str, check=True, input_text=None, timeout=60):
        argv = [
            self.bin_dir / "kubectl",
            "--kubeconfig",
            kubeconfig,
            "--context",
            self.cluster["context"],
            *args,
        ]
        return _run(argv, check=check, timeout=timeout, input_text=input_text)

    # -- cleanup --------------------------------------------------------------------------

    def close(self) -> list:
        """Remove every host container and the network, by exact name; returns
        what could not be removed (empty when all went)."""
        problems = []
        # down() builds a lab by name only, without a mirror.
        if getattr(self, "mirror", None) is not None:
            self.mirror.close()
            self.mirror = None
        for m in self.masters.values():
            with contextlib.suppress(StaticPodLabError):
                _run(["podman", "umount", m.container], check=False, env=self.env)
        # The fabric's processes and namespaces first (a scale-out minion's BIRD is not in the
        # state file that `down` reads), then what it left on this network.
        if getattr(self, "fabric", None) is not None:
            problems += self.fabric.net.close()
            self.fabric = None
        self._remove_fabric_ports()
        containers = [m.container for m in self.hosts.values()]
        # podman 4.3 races a container that stops by itself within --time: its SIGKILL finds
        # it stopped ("container state improper") and the rm fails. Try again what is left.
        for _attempt in range(3):
            r = _run(
                ["podman", "rm", "--force", "--ignore", "--time", "5", *containers], check=False, env=self.env
            )
            if r.returncode == 0:
                break
            containers = [
                c
                for c in containers
                if _run(["podman", "container", "exists", c], check=False, env=self.env).returncode == 0
            ]
            if not containers:
                break
        else:
            problems.append(f"containers {', '.join(containers)}: {r.stderr.strip()}")
        if self._network_created:
            r = _run(["podman", "network", "rm", "--force", self.network], check=False, env=self.env)
            if r.returncode != 0:
                problems.append(f"network {self.network}: {r.stderr.strip()}")
        return problems


# ---- command line (make lab) ----------------------------------------------------------


def lab_plan() -> dict:
    """The plan of inventories/lab, through the collection's planner."""
    sys.path.insert(0, str(REPO / "collections"))
    from ansible_collections.cloud58.platform.plugins.module_utils.topology import build_plan, load_inventory

    return build_plan(load_inventory(str(REPO / "inventories/lab"))).as_dict()


def live_owner(datacenter: str, env: dict | None = None) -> int | None:
    """PID of the live process that created this datacenter's lab network, if any.

    The names are fixed (``c58cp-<dc>``), so a lab left by a killed run and the lab of a
    run going on right now look alike; the owner label on the network tells them apart.
    """
    label = f'{{{{index .Labels "{OWNER_LABEL}"}}}}'
    out = _run(
        ["podman", "network", "inspect", f"c58cp-{datacenter}", "--format", label],
        check=False,
        env=env,
    )
    pid, _, started = out.stdout.strip().partition(":")
    if out.returncode != 0 or not pid.isdigit():
        return None
    alive = str(proc_start_time(int(pid))) == started
    return int(pid) if alive else None


def keeper(datacenter: str, env: dict | None = None) -> str | None:
    """The state file of the `make lab` that keeps this datacenter's lab up, while that file
    exists (``make lab-down`` removes both); else None."""
    label = f'{{{{index .Labels "{KEEPER_LABEL}"}}}}'
    out = _run(
        ["podman", "network", "inspect", f"c58cp-{datacenter}", "--format", label], check=False, env=env
    )
    path = out.stdout.strip()
    if out.returncode != 0 or not path or path == "<no value>" or not Path(path).is_file():
        return None
    return path


def down(datacenter: str, workdir: Path) -> list:
    """Remove a datacenter's host containers and network, by the names ``up`` gives them."""
    lab = StaticPodLab.__new__(StaticPodLab)
    lab.dc, lab.plan, lab.workdir = datacenter, lab_plan(), Path(workdir)
    clusters = [c for c in lab.plan["clusters"].values() if c["datacenter"] == datacenter]
    lab.cluster = clusters[0]
    lab.nodes = ipaddress.ip_network(lab.plan["datacenters"][datacenter]["networks"]["nodes"])
    lab.network = f"c58cp-{datacenter}"
    lab.masters = {
        e["name"]: Master(e["name"], e["address"], f"c58cp-{e['name']}")
        for e in lab.cluster["api"]["endpoints"]
    }
    # Every other host of the datacenter too: `podman rm --ignore` skips those not started.
    lab.nodes_hosts = _other_hosts(lab.plan, datacenter, lab.masters, "c58cp")
    lab.workdir.mkdir(parents=True, exist_ok=True)
    lab.env = dict(os.environ, CONTAINERS_CONF=str(lab_containers_conf(lab.workdir)))
    exists = _run(["podman", "network", "exists", lab.network], check=False, env=lab.env).returncode == 0
    lab._network_created = exists
    return lab.close()


def remove_leftovers(datacenters: Iterable[str] = ("lab1", "lab2"), out=print) -> list:
    """Remove what a killed run (a CI timeout, a stopped session) left of these datacenters'
    labs under their fixed names, before a test would trip over it. A lab whose creator is
    still running is not a leftover: it is left alone (that run's lab, or this run's, then
    fails to start and says so), nor is a lab that `make lab` left up on purpose while its
    state file exists (`make lab-down` removes it). Returns the problems ``down`` met."""
    problems = []
    for dc in datacenters:
        owner = live_owner(dc)
        if owner is not None:
            out(f"static-pod lab {dc} belongs to the running process {owner}; left alone")
            continue
        kept = keeper(dc)
        if kept is not None:
            out(f"static-pod lab {dc} is up by `make lab` ({kept}); left alone: `make lab-down` removes it")
            continue
        network = _run(["podman", "network", "exists", f"c58cp-{dc}"], check=False).returncode == 0
        master = _run(["podman", "container", "exists", f"c58cp-{dc}-m1"], check=False).returncode == 0
        if network or master:
            with tempfile.TemporaryDirectory(prefix="c58cp-leftovers-") as workdir:
                problems += down(dc, Path(workdir))
    return problems


def main(argv=None) -> int:
    """``python -m cloud58_lab.staticpods down [lab1 lab2]``: remove what a lab of those
    datacenters left (``make lab`` starts them: lab.py)."""
    import argparse

    parser = argparse.ArgumentParser(
        prog="python -m cloud58_lab.staticpods", description=__doc__.split("\n")[0]
    )
    parser.add_argument("action", choices=("down",))
    parser.add_argument("datacenters", nargs="*", default=["lab1", "lab2"])
    parser.add_argument("--workdir", default=str(REPO / ".cache/lab/staticpods"))
    args = parser.parse_args(argv)
    workdir = Path(args.workdir)
    problems = [p for dc in args.datacenters for p in down(dc, workdir / dc)]
    for p in problems:
        print(f"staticpods: {p}", file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
