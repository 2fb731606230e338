"""Every external program the project runs on the controller, and where each one comes from.

The lab, the tests, the benchmarks and the setup and CI scripts run programs on the machine
that drives Ansible (the controller). Each one is listed here once, with its source:

* ``apt``: a Debian package that ``scripts/setup/apt-packages.txt`` lists, or that a listed
  package *depends* on (``Depends``/``Pre-Depends``; a ``Recommends`` is not enough, since
  setup installs with ``--no-install-recommends``), or that every Debian system has
  (``Essential: yes`` or ``Priority: required``);
* ``venv``: a console script of a Python distribution pinned in ``requirements.txt``;
* ``upstream``: a program a setup script builds from the Go module proxy, each pin in a module of
  its own (its ``package`` names the script: ``upstream`` for ``scripts/setup/upstream.sh``,
  ``consul`` for ``scripts/setup/consul.sh``);
* ``toolchain``: a toolchain the build machine brings (Go: Debian 12's is too old for the pins);
* ``python``: the interpreter running the code (``sys.executable``).

``indirect`` programs are not started by our code but by a program it starts (podman runs
conmon, runc and catatonit); :func:`require` checks them up front so that a missing one is
named here instead of deep inside podman's error.

Code finds a program with :func:`path` (or :func:`argv`/:func:`resolve`), which raises
:class:`ProgramMissing` naming the package to install. ``tests/unit/test_programs.py`` proves
that every program here comes from where it says, from the Debian package database rather
than from what happens to be installed, and that the code runs no program missing here.
"""

from __future__ import annotations

import functools
import os
import shutil
import subprocess
import sys
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

APT = "apt"
VENV = "venv"
UPSTREAM = "upstream"
TOOLCHAIN = "toolchain"
PYTHON = "python"
SOURCES = (APT, VENV, UPSTREAM, TOOLCHAIN, PYTHON)


@dataclass(frozen=True)
class Program:
    name: str
    source: str
    package: str  # the Debian package, the Python distribution, the upstream build, or ""
    why: str
    indirect: bool = False


class ProgramMissing(RuntimeError):
    """A program the project needs is not installed (or not registered here)."""


def _apt(name: str, package: str, why: str, *, indirect: bool = False) -> Program:
    return Program(name, APT, package, why, indirect)


def _venv(name: str, distribution: str, why: str) -> Program:
    return Program(name, VENV, distribution, why)


def _upstream(name: str, why: str, build: str = "upstream") -> Program:
    return Program(name, UPSTREAM, build, why)


# The upstream builds: scripts/setup/<build>.sh, and the variable that points at official binaries.
UPSTREAM_BUILDS = {
    "upstream": "CLOUD58_BIN_DIR",
    "consul": "CLOUD58_CONSUL_BIN_DIR",
    "victorialogs": "CLOUD58_VICTORIALOGS_BIN_DIR",
}


_TABLE = (
    # host containers (molecule, the lab's nodes and masters)
    _apt("podman", "podman", "host containers for molecule, the lab and the node benchmark"),
    _apt("conmon", "conmon", "podman's container monitor", indirect=True),
    _apt("runc", "runc", "the OCI runtime containers/containers.conf selects", indirect=True),
    # cloud58-crashkeeper's tests and benchmark (lab/cloud58_lab/crashlab.py): a private containerd
    _apt("containerd", "containerd", "the private containerd of the crash-site tests and benchmark"),
    _apt("ctr", "containerd", "cloud58-crashkeeper and its tests start, exec into and inspect containers"),
    _apt("containerd-shim-runc-v2", "containerd", "containerd's shim of each container", indirect=True),
    _apt("ldd", "libc-bin", "the crash lab's tiny image copies the libraries of the programs it holds"),
    _apt("catatonit", "catatonit", "the init of the pause image `podman kube play` builds", indirect=True),
    _apt("nsenter", "util-linux", "the podman_nsenter connection and the static-pod lab enter containers"),
    _apt("mount", "mount", "the static-pod lab reads a master's file system"),
    _apt("umount", "mount", "the static-pod lab releases a master's file system"),
    _apt("flock", "util-linux", "setup and CI scripts serialise builds and log output"),
    _apt("debootstrap", "debootstrap", "images/node/build.sh makes the node image from Debian packages"),
    _apt("tar", "tar", "images/node/build.sh streams the root file system into podman import"),
    _apt("sha256sum", "coreutils", "setup scripts key their caches by content"),
    _apt("dpkg-query", "dpkg", "scripts/setup/apt.sh finds the packages that are missing"),
    _apt("apt-get", "apt", "scripts/setup/apt.sh installs them"),
    _apt("git", "git", "the merge-request check and CI compare with the base commit"),
    # network namespaces and routers (the BGP lab, the network tier, make lab)
    _apt("ip", "iproute2", "network namespaces, veths, bridges and routes of the lab"),
    _apt("tc", "iproute2", "the bandwidth limits of tests/network/test_netshaper.py and its benchmark"),
    _apt(
        "clang",
        "clang",
        "compiles the TOA eBPF programs (roles/toa, tests/network/test_toa_ebpf.py)",
        indirect=True,
    ),
    _apt(
        "bpftool",
        "bpftool",
        "loads, pins and detaches the TOA eBPF programs (the toa role's loader)",
        indirect=True,
    ),
    _apt("sysctl", "procps", "forwarding, rp_filter and multipath hashing inside lab namespaces"),
    _apt("vtysh", "frr", "configures and queries the lab's FRR routers"),
    _apt("zebra", "frr", "FRR's routing manager in a lab router's namespace"),
    _apt("bgpd", "frr", "FRR's BGP daemon in a lab router's namespace"),
    _apt("bfdd", "frr", "FRR's BFD daemon in a lab router's namespace"),
    _apt("bird", "bird2", "the lab's BIRD routers and the Calico node speakers"),
    _apt("birdc", "bird2", "queries the lab's BIRD routers"),
    # central logs (tests/network/test_logs_*.py, benchmarks/bench_logs.py)
    _apt(
        "systemd-journal-upload",
        "systemd-journal-remote",
        "the log shipper pushing the journal to VictoriaLogs",
    ),
    _apt(
        "systemd-journal-remote",
        "systemd-journal-remote",
        "the log tests write journal files from export format",
    ),
    _apt("nft", "nftables", "the LVS directors' full-NAT data plane in the network tier"),
    _apt(
        "iptables",
        "iptables",
        "the lab keeps its fabric's traffic out of the podman network's masquerade (nat table)",
    ),
    _apt("haproxy", "haproxy", "checks rendered haproxy.cfg files (haproxy -c)"),
    _apt("socat", "socat", "the haproxy_gateway role's reload drop-in saves the servers' state with it"),
    _apt("keepalived", "keepalived", "checks rendered keepalived.conf files (--config-test)"),
    _apt("promtool", "prometheus", "checks rendered Prometheus configs and tests alerting rules"),
    _apt("dot", "graphviz", "make topology draws a datacenter"),
    # the pinned virtualenv
    _venv("ansible-playbook", "ansible-core", "the lab, molecule and the benchmarks run playbooks"),
    _venv("ansible-inventory", "ansible-core", "the plan benchmark's baseline"),
    _venv("ansible-test", "ansible-core", "make sanity"),
    _venv("ansible-doc", "ansible-core", "make sanity renders every module's documentation"),
    _venv("ansible-galaxy", "ansible-core", "make sanity builds the collection"),
    _venv("ansible-lint", "ansible-lint", "make lint"),
    _venv("molecule", "molecule", "make molecule"),
    _venv("ruff", "ruff", "make lint"),
    _venv("lint-imports", "import-linter", "make lint enforces the layer contracts"),
    _venv("detect-secrets", "detect-secrets", "the secrets scan of rendered output and logs"),
    _venv("pytest", "pytest", "every test tier"),
    # built from the Go module proxy (scripts/setup/upstream.sh)
    _upstream("etcd", "the clusters of the tests, the lab and the benchmarks"),
    _upstream("etcdctl", "etcd health and membership checks"),
    _upstream("kube-apiserver", "the clusters of the tests, the lab and the benchmarks"),
    _upstream("kube-controller-manager", "the control planes of the lab"),
    _upstream("kube-scheduler", "the control planes of the lab"),
    _upstream("kubelet", "installed on the lab's nodes by the kubelet role"),
    _upstream("kubectl", "the benchmarks' baseline and the lab's status"),
    _upstream("kwok", "simulated nodes of the lab and benchmark clusters"),
    # built from the Go module proxy (scripts/setup/consul.sh, upstream/consul)
    _upstream("consul", "the Consul clusters of tests/network/test_consul_cluster.py", "consul"),
    # built from the Go module proxy (scripts/setup/victorialogs.sh, upstream/victorialogs)
    _upstream(
        "victoria-logs",
        "the log store of tests/network/test_logs_*.py and the log_store role",
        "victorialogs",
    ),
    Program("go", TOOLCHAIN, "", "scripts/setup/upstream.sh builds the upstream programs"),
    Program("python3", PYTHON, "", "small servers and clients inside lab namespaces"),
)

PROGRAMS: dict[str, Program] = {p.name: p for p in _TABLE}

# FRR installs its daemons outside PATH.
_SEARCH_EXTRA = ("/usr/lib/frr", "/usr/sbin", "/sbin", "/usr/lib/systemd")


def program(name: str) -> Program:
    try:
        return PROGRAMS[name]
    except KeyError:
        raise ProgramMissing(
            f"{name!r} is not in the program registry (lab/cloud58_lab/programs.py): "
            "list it there with the package it comes from"
        ) from None


@functools.cache
def _upstream_dir(build: str = "upstream") -> str | None:
    """The directory of one upstream build's programs, as ``scripts/setup/<build>.sh
    --print-bin-dir`` prints it (None if unbuilt)."""
    script = Path(__file__).resolve().parents[2] / "scripts" / "setup" / f"{build}.sh"
    proc = subprocess.run([str(script), "--print-bin-dir"], capture_output=True, text=True, check=False)
    return proc.stdout.strip() if proc.returncode == 0 else None


def path(name: str) -> str:
    """The absolute path of registered program ``name``; :class:`ProgramMissing` names the fix."""
    entry = program(name)
    if entry.source == PYTHON:
        return sys.executable
    if entry.source == UPSTREAM:
        directory = _upstream_dir(entry.package)
        found = shutil.which(name, path=directory) if directory else None
    else:
        search = os.pathsep.join([os.environ.get("PATH", os.defpath), *_SEARCH_EXTRA])
        found = shutil.which(name, path=search)
    if found:
        return found
    raise ProgramMissing(f"{name} is not installed: {_install_hint(entry)} ({entry.why})")


def _install_hint(entry: Program) -> str:
    if entry.source == APT:
        return f"it comes from the Debian package {entry.package}; run 'make setup-apt'"
    if entry.source == VENV:
        return f"it comes from the Python package {entry.package}; run 'make setup-venv'"
    if entry.source == UPSTREAM:
        return (
            f"it is built from the Go module proxy; run 'make setup-{entry.package}'"
            f" or set {UPSTREAM_BUILDS[entry.package]}"
        )
    return "install the Go toolchain named in upstream/go.mod, or set CLOUD58_BIN_DIR"


def resolve(args: Iterable) -> list[str]:
    """``args`` as strings with the first one, a bare program name, replaced by its path."""
    argv = [str(a) for a in args]
    if argv and os.sep not in argv[0]:
        argv[0] = path(argv[0])
    return argv


def argv(name: str, *args) -> list[str]:
    """The command line ``name args...`` with ``name`` resolved through the registry."""
    return [path(name), *(str(a) for a in args)]


def require(*names: str) -> None:
    """Raise :class:`ProgramMissing` for every one of ``names`` that is not installed, at once."""
    problems = []
    for name in names:
        try:
            path(name)
        except ProgramMissing as e:
            problems.append(str(e))
    if problems:
        raise ProgramMissing("\n".join(problems))
