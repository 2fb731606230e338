# -*- coding: utf-8 -*-
# Copyright: cloud58 platform team
# Apache License 2.0
"""The kernel profile of a node: sysctl keys, kernel modules, ulimits.

``kernel_profile(facts, plan, overrides)`` computes the whole profile from a host's facts
(memory, CPUs, NIC speed, kernel version, whether it is a container) and its place in the
plan (Kubernetes node or not, LVS director, LVS real server, NodePort range). Overrides
from group and host variables are validated against :data:`KNOWN_KEYS` first; every bad
key or value of a host is reported in one :class:`NodePlanError`.

Each key has a *scope*, checked on Linux 6.18 in a fresh network/PID namespace:

``netns``  per network namespace and writable outside the initial one (net.core.somaxconn,
           net.ipv4.*, net.bridge.*, nf_conntrack timeouts). Applied in containers.
``pidns``  kernel.pid_max: per PID namespace since Linux 6.14, global before.
``host``   global (vm.*, fs.*, kernel.*, net.core.netdev_max_backlog, neighbour tables) or
           per network namespace but read-only outside the initial one
           (net.netfilter.nf_conntrack_max, nf_conntrack_buckets, net.core.rmem_max).
           Written to sysctl.d in containers, never applied there: a privileged container
           would change the host's kernel.
"""

from __future__ import annotations

import difflib
import re
from dataclasses import dataclass

from ansible_collections.cloud58.platform.plugins.module_utils.node.errors import NodePlanError
from ansible_collections.cloud58.platform.plugins.module_utils.node.queues import RPS_SOCK_FLOW_ENTRIES

SCOPE_NETNS = "netns"
SCOPE_PIDNS = "pidns"
SCOPE_HOST = "host"
PIDNS_PID_MAX_SINCE = (6, 14)

INT_MAX = 2**31 - 1


@dataclass(frozen=True)
class SysctlKey:
    """What a key accepts and where it lives. ``kind``: int, int_pair or port_list."""

    kind: str
    minimum: int
    maximum: int
    scope: str
    purpose: str


def _int(minimum, maximum, scope, purpose):
    return SysctlKey("int", minimum, maximum, scope, purpose)


def _flag(scope, purpose):
    return SysctlKey("int", 0, 1, scope, purpose)


# Every key the profile sets or an override may set. Ranges are what makes sense on a
# node, inside what the kernel accepts.
KNOWN_KEYS = {
    # connection tracking
    "net.netfilter.nf_conntrack_max": _int(65536, 2**27, SCOPE_HOST, "conntrack table entries"),
    "net.netfilter.nf_conntrack_buckets": _int(16384, 2**25, SCOPE_HOST, "conntrack hash buckets"),
    "net.netfilter.nf_conntrack_tcp_timeout_established": _int(
        600, 432000, SCOPE_NETNS, "seconds an idle established TCP flow is tracked"
    ),
    "net.netfilter.nf_conntrack_tcp_timeout_close_wait": _int(
        10, 3600, SCOPE_NETNS, "seconds a CLOSE_WAIT flow is tracked"
    ),
    # backlogs and ports
    "net.core.somaxconn": _int(128, 1048576, SCOPE_NETNS, "accept queue of listening sockets"),
    "net.ipv4.tcp_max_syn_backlog": _int(128, 1048576, SCOPE_NETNS, "half-open connections per listener"),
    "net.core.netdev_max_backlog": _int(1000, 1048576, SCOPE_HOST, "packets queued per CPU before the stack"),
    "net.core.rps_sock_flow_entries": _int(0, 2**20, SCOPE_HOST, "RFS flow table size"),
    "net.core.rmem_max": _int(212992, 2**30, SCOPE_HOST, "largest socket receive buffer"),
    "net.core.wmem_max": _int(212992, 2**30, SCOPE_HOST, "largest socket send buffer"),
    "net.ipv4.ip_local_port_range": SysctlKey("int_pair", 1024, 65535, SCOPE_NETNS, "ephemeral ports"),
    "net.ipv4.ip_local_reserved_ports": SysctlKey(
        "port_list", 1, 65535, SCOPE_NETNS, "ports never handed out as ephemeral"
    ),
    "net.ipv4.tcp_tw_reuse": _int(0, 2, SCOPE_NETNS, "reuse TIME-WAIT sockets for outgoing connections"),
    "net.ipv4.tcp_fin_timeout": _int(5, 120, SCOPE_NETNS, "seconds in FIN-WAIT-2"),
    "net.ipv4.tcp_keepalive_time": _int(30, 7200, SCOPE_NETNS, "idle seconds before keepalive probes"),
    "net.ipv4.tcp_keepalive_intvl": _int(1, 300, SCOPE_NETNS, "seconds between keepalive probes"),
    "net.ipv4.tcp_keepalive_probes": _int(1, 20, SCOPE_NETNS, "unanswered probes before reset"),
    "net.ipv4.tcp_slow_start_after_idle": _flag(SCOPE_NETNS, "restart slow start after idle"),
    "net.ipv4.tcp_syncookies": _int(0, 2, SCOPE_NETNS, "SYN cookies on backlog overflow"),
    # routing
    "net.ipv4.ip_forward": _flag(SCOPE_NETNS, "route packets between interfaces"),
    "net.ipv6.conf.all.forwarding": _flag(SCOPE_NETNS, "route IPv6 packets"),
    "net.ipv4.ip_nonlocal_bind": _flag(SCOPE_NETNS, "bind to addresses not (yet) on the host"),
    "net.ipv4.fib_multipath_hash_policy": _int(0, 3, SCOPE_NETNS, "ECMP hash: 0 L3, 1 L4, 2 inner L3"),
    "net.ipv4.fib_multipath_use_neigh": _flag(SCOPE_NETNS, "ECMP skips next hops without a neighbour"),
    "net.bridge.bridge-nf-call-iptables": _flag(SCOPE_NETNS, "bridged IPv4 traffic passes iptables"),
    "net.bridge.bridge-nf-call-ip6tables": _flag(SCOPE_NETNS, "bridged IPv6 traffic passes ip6tables"),
    "net.ipv4.neigh.default.gc_thresh1": _int(128, 2**20, SCOPE_HOST, "neighbour entries kept without GC"),
    "net.ipv4.neigh.default.gc_thresh2": _int(512, 2**20, SCOPE_HOST, "neighbour soft limit"),
    "net.ipv4.neigh.default.gc_thresh3": _int(1024, 2**20, SCOPE_HOST, "neighbour hard limit"),
    # files, processes, memory
    "fs.inotify.max_user_watches": _int(8192, 2**24, SCOPE_HOST, "inotify watches per user"),
    "fs.inotify.max_user_instances": _int(128, 65536, SCOPE_HOST, "inotify instances per user"),
    "fs.file-max": _int(65536, 2**40, SCOPE_HOST, "open files, system-wide"),
    "fs.nr_open": _int(1048576, 1073741816, SCOPE_HOST, "open files per process, the nofile ceiling"),
    "kernel.pid_max": _int(32768, 4194304, SCOPE_PIDNS, "highest PID"),
    "kernel.panic": _int(0, 3600, SCOPE_HOST, "seconds before reboot after a panic"),
    "kernel.panic_on_oops": _flag(SCOPE_HOST, "panic on an oops"),
    "kernel.keys.root_maxkeys": _int(200, 10**8, SCOPE_HOST, "keys root may own"),
    "kernel.keys.root_maxbytes": _int(20000, 10**10, SCOPE_HOST, "key bytes root may own"),
    "vm.swappiness": _int(0, 200, SCOPE_HOST, "eagerness to swap"),
    "vm.overcommit_memory": _int(0, 2, SCOPE_HOST, "overcommit policy"),
    "vm.panic_on_oom": _int(0, 2, SCOPE_HOST, "panic instead of OOM-killing"),
    "vm.max_map_count": _int(65530, INT_MAX, SCOPE_HOST, "memory maps per process"),
}

# Per-interface keys: net.ipv4.conf.<all|default|ifname>.<leaf>. Interface names are at
# most 15 characters; a dot in a name (VLAN eth0.100) is written as '/' in sysctl keys.
_CONF_KEY = re.compile(r"^net\.ipv4\.conf\.(?P<iface>[A-Za-z0-9_@/:+-]{1,15})\.(?P<leaf>[a-z_]+)$")
CONF_LEAVES = {
    "rp_filter": _int(0, 2, SCOPE_NETNS, "reverse path filter: 0 off, 1 strict, 2 loose"),
    "arp_ignore": _int(0, 8, SCOPE_NETNS, "which ARP requests to answer"),
    "arp_announce": _int(0, 2, SCOPE_NETNS, "source address of ARP requests"),
}

# Ports of Kubernetes node components at or above the usual ephemeral floor: kubelet
# healthz 10248, kube-proxy metrics 10249, kubelet 10250, kube-proxy health 10256,
# controller-manager 10257, scheduler 10259. An outgoing connection must never take them.
KUBERNETES_NODE_PORTS = (10248, 10259)

BASE_MODULES = ("overlay", "br_netfilter", "nf_conntrack")
LVS_DIRECTOR_MODULES = ("ip_vs", "ip_vs_rr", "ip_vs_wrr", "ip_vs_wlc", "ip_vs_sh")
LVS_REAL_SERVER_MODULES = ("toa",)

DEFAULT_NOFILE = 1048576


@dataclass(frozen=True)
class NodeFacts:
    """The facts the node roles plan from (see :func:`node_facts`)."""

    hostname: str
    vcpus: int
    memtotal_mb: int
    kernel: tuple
    in_container: bool
    nic_speeds_mbps: tuple = ()
    bridge_nf_available: bool = True


def node_facts(ansible_facts, container_env=False, bridge_nf_available=True) -> NodeFacts:
    """Build :class:`NodeFacts` from Ansible facts (``ansible_facts`` without prefix).

    ``container_env`` is whether /run/.containerenv or /.dockerenv exists; the
    virtualization facts alone miss some container engines.
    """
    problems = []
    host = str(ansible_facts.get("hostname") or ansible_facts.get("nodename") or "?")
    vcpus = ansible_facts.get("processor_vcpus") or ansible_facts.get("processor_count")
    mem = ansible_facts.get("memtotal_mb")
    for name, value in (("processor_vcpus", vcpus), ("memtotal_mb", mem)):
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            problems.append(f"fact {name} is {value!r}; gather the hardware facts (gather_subset: hardware)")
    kernel = parse_kernel_version(ansible_facts.get("kernel", ""))
    if kernel is None:
        problems.append("fact kernel is {!r}; gather the kernel facts".format(ansible_facts.get("kernel")))
    if problems:
        raise NodePlanError(host, problems)
    container_types = {"container", "docker", "podman", "lxc", "containerd", "systemd-nspawn", "openvz"}
    in_container = bool(container_env) or (
        ansible_facts.get("virtualization_role") == "guest"
        and ansible_facts.get("virtualization_type") in container_types
    )
    speeds = []
    for iface in ansible_facts.get("interfaces", []) or []:
        data = ansible_facts.get(str(iface).replace("-", "_").replace(".", "_").replace(":", "_"), {}) or {}
        speed = data.get("speed")
        if data.get("type") == "ether" and isinstance(speed, int) and speed > 0:
            speeds.append(speed)
    return NodeFacts(
        hostname=host,
        vcpus=vcpus,
        memtotal_mb=mem,
        kernel=kernel,
        in_container=in_container,
        nic_speeds_mbps=tuple(sorted(speeds)),
        bridge_nf_available=bool(bridge_nf_available),
    )


def parse_kernel_version(text):
    """``'6.18.44-fc-v769'`` → ``(6, 18)``; None when it does not start with major.minor."""
    match = re.match(r"^\s*(\d+)\.(\d+)", str(text or ""))
    return (int(match.group(1)), int(match.group(2))) if match else None


@dataclass(frozen=True)
class NodeRole:
    """What the plan says about a host, as far as the kernel is concerned."""

    kubernetes: bool = True
    lvs_director: bool = False
    lvs_real_server: bool = False
    nodeport_range: tuple = (30000, 32767)
    nics: tuple = ()


def lookup_key(name):
    """The :class:`SysctlKey` of ``name``, or None when the key is unknown."""
    if name in KNOWN_KEYS:
        return KNOWN_KEYS[name]
    match = _CONF_KEY.match(name)
    if match:
        return CONF_LEAVES.get(match.group("leaf"))
    return None


def key_scope(name, kernel):
    """``netns``, ``pidns`` or ``host`` for a known key on a kernel ``(major, minor)``.

    kernel.pid_max became per PID namespace in Linux 6.14; before it, it is global.
    """
    spec = lookup_key(name)
    if spec is None:
        raise KeyError(name)
    if spec.scope == SCOPE_PIDNS:
        return SCOPE_PIDNS if tuple(kernel) >= PIDNS_PID_MAX_SINCE else SCOPE_HOST
    return spec.scope


def applies_in_container(name, kernel) -> bool:
    """True when setting the key inside a container changes only that container."""
    return key_scope(name, kernel) in (SCOPE_NETNS, SCOPE_PIDNS)


# ---- values ---------------------------------------------------------------------------


def _as_int(value):
    if isinstance(value, bool):
        raise ValueError("a boolean is not a number here; write 0 or 1")
    if isinstance(value, int):
        return value
    if isinstance(value, str) and re.fullmatch(r"\s*-?\d+\s*", value):
        return int(value)
    raise ValueError(f"expected an integer, got {value!r} ({type(value).__name__})")


def normalize_value(name, value) -> str:
    """The canonical text of a value for ``name`` (as sysctl.d files and ``sysctl -n`` hold it).

    Raises ValueError with the allowed range when the value does not fit.
    """
    spec = lookup_key(name)
    if spec is None:
        raise KeyError(name)
    bounds = f"{spec.minimum}..{spec.maximum}"
    if spec.kind == "int":
        number = _as_int(value)
        if not spec.minimum <= number <= spec.maximum:
            raise ValueError(f"{number} is outside the allowed range {bounds}")
        return str(number)
    if spec.kind == "int_pair":
        parts = value.split() if isinstance(value, str) else list(value) if isinstance(value, list) else None
        if not parts or len(parts) != 2:
            raise ValueError(f"expected two integers 'LOW HIGH', got {value!r}")
        low, high = (_as_int(p) for p in parts)
        if not (spec.minimum <= low < high <= spec.maximum):
            raise ValueError(f"'{low} {high}' is not an ascending pair inside the allowed range {bounds}")
        return f"{low} {high}"
    if spec.kind == "port_list":
        return format_port_list(parse_port_list(value, spec.minimum, spec.maximum))
    raise AssertionError(f"unknown kind {spec.kind!r}")  # a bug in KNOWN_KEYS


def parse_port_list(value, minimum=1, maximum=65535):
    """``'30000-32767,10250'`` (or a list of ints/strings) → sorted merged [(low, high)]."""
    if isinstance(value, str):
        items = [p.strip() for p in value.split(",") if p.strip()]
    elif isinstance(value, (list, tuple)):
        items = [str(p).strip() for p in value]
    else:
        raise ValueError(f"expected ports like '10248-10259,30000-32767', got {value!r}")
    ranges = []
    for item in items:
        match = re.fullmatch(r"(\d+)(?:-(\d+))?", item)
        if not match:
            raise ValueError(f"{item!r} is not a port or a LOW-HIGH port range")
        low = int(match.group(1))
        high = int(match.group(2) or low)
        if not minimum <= low <= high <= maximum:
            raise ValueError(f"{item!r} is not an ascending range inside {minimum}..{maximum}")
        ranges.append((low, high))
    merged = []
    for low, high in sorted(ranges):
        if merged and low <= merged[-1][1] + 1:
            merged[-1] = (merged[-1][0], max(merged[-1][1], high))
        else:
            merged.append((low, high))
    return merged


def format_port_list(ranges) -> str:
    """[(10248, 10259), (30000, 30000)] → ``'10248-10259,30000'`` (the kernel's own format)."""
    return ",".join(str(lo) if lo == hi else f"{lo}-{hi}" for lo, hi in ranges)


# ---- overrides --------------------------------------------------------------------------


def validate_overrides(host, sources):
    """Check overrides; return one dict key → canonical value, later sources winning.

    ``sources`` is a list of ``(label, mapping)``, e.g.
    ``[("kernel_tuning_overrides", {...}), ("kernel_tuning_host_overrides", {...})]``.
    Every unknown key (with a did-you-mean) and every bad value (with the allowed range)
    of every source is collected into one :class:`NodePlanError`.
    """
    problems = []
    merged = {}
    known = sorted(KNOWN_KEYS) + [f"net.ipv4.conf.<iface>.{leaf}" for leaf in sorted(CONF_LEAVES)]
    for label, mapping in sources:
        if mapping is None:
            continue
        if not isinstance(mapping, dict):
            problems.append(f"{label} must be a mapping of sysctl key to value, got {type(mapping).__name__}")
            continue
        for key in sorted(mapping, key=str):
            value = mapping[key]
            name = str(key)
            if lookup_key(name) is None:
                close = difflib.get_close_matches(name, known, n=1, cutoff=0.6)
                hint = f"; did you mean {close[0]!r}?" if close else ""
                problems.append(f"{label}: unknown sysctl key {name!r}{hint}")
                continue
            try:
                merged[name] = normalize_value(name, value)
            except ValueError as e:
                problems.append(f"{label}: {name} = {value!r}: {e}")
    if problems:
        raise NodePlanError(host, problems)
    return merged


# ---- the profile --------------------------------------------------------------------------


def _clamp(value, low, high):
    return max(low, min(high, value))


def _pow2_floor(value):
    return 1 << (max(1, int(value)).bit_length() - 1)


def conntrack_sizes(memtotal_mb):
    """(nf_conntrack_max, buckets) from memory.

    32 entries per MiB (an entry takes about 320 bytes with its hash slot, so about 1% of
    memory), rounded down to a power of two, between 131072 and 8388608; four entries
    per bucket.
    """
    entries = _clamp(_pow2_floor(memtotal_mb * 32), 131072, 8388608)
    return entries, entries // 4


def backlogs(vcpus):
    """(somaxconn, tcp_max_syn_backlog): 2048 queued connections per CPU, 4096..65535."""
    somaxconn = _clamp(2048 * vcpus, 4096, 65535)
    return somaxconn, _clamp(somaxconn * 2, 8192, 131072)


def netdev_backlog(nic_speeds_mbps):
    """Per-CPU input queue from the fastest NIC: 1G 4096, 10G 16384, 25G 32768, faster 65536."""
    fastest = max(nic_speeds_mbps) if nic_speeds_mbps else 10000
    for limit, backlog in ((1000, 4096), (10000, 16384), (25000, 32768)):
        if fastest <= limit:
            return backlog
    return 65536


def local_ports(role):
    """(ip_local_port_range, ip_local_reserved_ports) for a host.

    Ephemeral ports start at 10240; on Kubernetes nodes the component ports and the
    NodePort range inside it are reserved, so an outgoing connection never takes a port a
    listener needs.
    """
    low, high = 10240, 65535
    reserved = []
    if role.kubernetes:
        np_low, np_high = role.nodeport_range
        reserved = [KUBERNETES_NODE_PORTS, (int(np_low), int(np_high))]
        reserved = [(max(lo, low), min(hi, high)) for lo, hi in reserved if hi >= low and lo <= high]
    return f"{low} {high}", format_port_list(parse_port_list([f"{lo}-{hi}" for lo, hi in reserved]))


def inotify_watches(memtotal_mb):
    """inotify watches: 32 per MiB (a watch costs up to 1 KiB: at most 3% of memory), 524288..4194304."""
    return _clamp(memtotal_mb * 32, 524288, 4194304)


def file_max(memtotal_mb):
    """fs.file-max: 128 open files per MiB, at least 2097152."""
    return max(2097152, memtotal_mb * 128)


def kernel_modules(role):
    """Modules to load at boot, in load order."""
    modules = list(BASE_MODULES)
    if role.lvs_director:
        modules += LVS_DIRECTOR_MODULES
    if role.lvs_real_server:
        modules += LVS_REAL_SERVER_MODULES
    return modules


def computed_sysctls(facts, role):
    """The computed part of the profile (before overrides), key → canonical value."""
    conntrack_max, buckets = conntrack_sizes(facts.memtotal_mb)
    somaxconn, syn_backlog = backlogs(facts.vcpus)
    port_range, reserved = local_ports(role)
    values = {
        "net.netfilter.nf_conntrack_max": conntrack_max,
        "net.netfilter.nf_conntrack_buckets": buckets,
        "net.netfilter.nf_conntrack_tcp_timeout_established": 86400,
        "net.netfilter.nf_conntrack_tcp_timeout_close_wait": 3600,
        "net.core.somaxconn": somaxconn,
        "net.ipv4.tcp_max_syn_backlog": syn_backlog,
        "net.core.netdev_max_backlog": netdev_backlog(facts.nic_speeds_mbps),
        # RFS flow table; queues get their share where RPS is on (see queues.py).
        "net.core.rps_sock_flow_entries": RPS_SOCK_FLOW_ENTRIES,
        "net.ipv4.ip_local_port_range": port_range,
        "net.ipv4.ip_forward": 1,
        # BGP with ECMP: a reply may arrive on another uplink than the route back, which
        # strict reverse-path filtering drops. Off on all/default and on every managed
        # NIC; loose (2) would make Calico refuse to start (its IgnoreLooseRPF check),
        # and Calico sets strict filtering on the workload interfaces itself.
        "net.ipv4.conf.all.rp_filter": 0,
        "net.ipv4.conf.default.rp_filter": 0,
        "net.ipv4.fib_multipath_hash_policy": 1,
        "net.ipv4.fib_multipath_use_neigh": 1,
        "fs.inotify.max_user_watches": inotify_watches(facts.memtotal_mb),
        "fs.inotify.max_user_instances": 8192,
        "fs.file-max": file_max(facts.memtotal_mb),
        "fs.nr_open": DEFAULT_NOFILE,
        "kernel.pid_max": 4194304,
        # The values kubelet's protectKernelDefaults expects.
        "vm.overcommit_memory": 1,
        "vm.panic_on_oom": 0,
        "kernel.panic": 10,
        "kernel.panic_on_oops": 1,
        "kernel.keys.root_maxkeys": 1000000,
        "kernel.keys.root_maxbytes": 25000000,
        "vm.swappiness": 0,
        "vm.max_map_count": 262144,
    }
    if reserved:
        values["net.ipv4.ip_local_reserved_ports"] = reserved
    for nic in role.nics:
        values["net.ipv4.conf.{}.rp_filter".format(str(nic).replace(".", "/"))] = 0
    if role.kubernetes:
        values["net.bridge.bridge-nf-call-iptables"] = 1
        values["net.bridge.bridge-nf-call-ip6tables"] = 1
    return {k: normalize_value(k, v) for k, v in values.items()}


def kernel_profile(facts, role, overrides=(), nofile=DEFAULT_NOFILE):
    """The whole kernel profile of a host.

    ``overrides`` is the list of ``(label, mapping)`` sources for :func:`validate_overrides`.
    Returns a dict:

    * ``sysctl``: key → value, everything written to sysctl.d (sorted by key);
    * ``apply``: keys set live now; in a container only namespaced keys;
    * ``written_only``: keys written but not applied (containers), with ``reasons``;
    * ``files``: ``{"namespaced": {...}, "host": {...}}``, the split into the two sysctl.d
      files (the namespaced one is the only one a container applies at boot);
    * ``modules``, ``modprobe_options``, ``nofile`` (limits.d and DefaultLimitNOFILE),
      ``in_container``, ``notes``.
    """
    validated = validate_overrides(facts.hostname, list(overrides))
    sysctl = computed_sysctls(facts, role)
    sysctl.update(validated)
    if (
        "net.netfilter.nf_conntrack_max" in validated
        and "net.netfilter.nf_conntrack_buckets" not in validated
    ):
        # The hash follows an overridden table size unless it is overridden too.
        buckets = max(
            KNOWN_KEYS["net.netfilter.nf_conntrack_buckets"].minimum,
            int(sysctl["net.netfilter.nf_conntrack_max"]) // 4,
        )
        sysctl["net.netfilter.nf_conntrack_buckets"] = str(buckets)

    problems = []
    try:
        nofile = _as_int(nofile)
    except ValueError as e:
        raise NodePlanError(facts.hostname, [f"nofile limit: {e}"]) from e
    nr_open = int(sysctl["fs.nr_open"])
    if not 1024 <= nofile <= nr_open:
        problems.append(f"nofile limit {nofile} is outside the allowed range 1024..{nr_open} (fs.nr_open)")
    if int(sysctl["net.netfilter.nf_conntrack_buckets"]) > int(sysctl["net.netfilter.nf_conntrack_max"]):
        problems.append(
            "net.netfilter.nf_conntrack_buckets = {} exceeds net.netfilter.nf_conntrack_max = {}".format(
                sysctl["net.netfilter.nf_conntrack_buckets"], sysctl["net.netfilter.nf_conntrack_max"]
            )
        )
    port_low, port_high = (int(p) for p in sysctl["net.ipv4.ip_local_port_range"].split())
    if role.kubernetes:
        np_low, np_high = role.nodeport_range
        reserved = parse_port_list(sysctl.get("net.ipv4.ip_local_reserved_ports", ""))
        overlap_low, overlap_high = max(port_low, np_low), min(port_high, np_high)
        if overlap_low <= overlap_high and not any(
            lo <= overlap_low and overlap_high <= hi for lo, hi in reserved
        ):
            problems.append(
                f"net.ipv4.ip_local_port_range {port_low}-{port_high} overlaps the NodePort range "
                f"{np_low}-{np_high}, which net.ipv4.ip_local_reserved_ports does not cover"
            )
    if problems:
        raise NodePlanError(facts.hostname, problems)

    apply_keys, written_only, reasons = [], [], {}
    for key in sorted(sysctl):
        if key.startswith("net.bridge.") and facts.in_container and not facts.bridge_nf_available:
            # On a real host the role loads br_netfilter before it applies sysctls.
            written_only.append(key)
            reasons[key] = "br_netfilter is not loaded, so /proc/sys/net/bridge does not exist"
        elif facts.in_container and not applies_in_container(key, facts.kernel):
            written_only.append(key)
            reasons[key] = "not namespaced (or read-only) in a container; setting it would change the host"
        else:
            apply_keys.append(key)

    namespaced = {k: sysctl[k] for k in sorted(sysctl) if applies_in_container(k, facts.kernel)}
    host = {k: sysctl[k] for k in sorted(sysctl) if k not in namespaced}
    notes = []
    if facts.in_container:
        notes.append(
            f"container: {len(apply_keys)} namespaced keys applied; {len(written_only)} keys written to "
            "sysctl.d but not applied (they are global to the host kernel)"
        )
        notes.append("container: kernel modules are listed in modules-load.d but not loaded")
        notes.append("container: swap is not turned off live (swapoff acts on the host)")
    return {
        "sysctl": {k: sysctl[k] for k in sorted(sysctl)},
        "apply": apply_keys,
        "written_only": written_only,
        "reasons": reasons,
        "files": {"namespaced": namespaced, "host": host},
        "modules": kernel_modules(role),
        "modprobe_options": {"nf_conntrack": {"hashsize": sysctl["net.netfilter.nf_conntrack_buckets"]}},
        "nofile": nofile,
        "in_container": facts.in_container,
        "notes": notes,
    }
