# -*- coding: utf-8 -*-
# Copyright: cloud58 platform team
# Apache License 2.0
"""The KubeletConfiguration of a node and its labels, from facts and the plan.

``kubelet_configuration(...)`` returns the KubeletConfiguration as a dict (dumped with
sorted keys by the role); ``node_labels(...)`` the labels the kubelet registers the node
with. Both raise :class:`NodePlanError` listing every problem of the host.
"""

from __future__ import annotations

import re

from ansible_collections.cloud58.platform.plugins.module_utils.node.errors import NodePlanError

API_VERSION = "kubelet.config.k8s.io/v1beta1"
LABEL_PREFIX = "cloud58.io"
ZONE_LABEL = "topology.kubernetes.io/zone"
REGION_LABEL = "topology.kubernetes.io/region"

# Labels in the kubernetes.io / k8s.io namespaces that a kubelet may set on its own Node
# (the NodeRestriction admission plugin refuses the others, e.g. node-role.kubernetes.io/*).
_SELF_LABEL_ALLOWED = {
    "kubernetes.io/hostname",
    "kubernetes.io/arch",
    "kubernetes.io/os",
    "beta.kubernetes.io/instance-type",
    "node.kubernetes.io/instance-type",
    "failure-domain.beta.kubernetes.io/region",
    "failure-domain.beta.kubernetes.io/zone",
    "topology.kubernetes.io/region",
    "topology.kubernetes.io/zone",
}
_SELF_LABEL_PREFIXES_ALLOWED = ("kubelet.kubernetes.io/", "node.kubernetes.io/")

TAINT_EFFECTS = ("NoSchedule", "PreferNoSchedule", "NoExecute")

_NAME = re.compile(r"^[A-Za-z0-9]([A-Za-z0-9_.-]{0,61}[A-Za-z0-9])?$")
_VALUE = re.compile(r"^([A-Za-z0-9]([A-Za-z0-9_.-]{0,61}[A-Za-z0-9])?)?$")
_DNS_SUBDOMAIN = re.compile(r"^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?(\.[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)*$")


def _is_label_key(key: str) -> bool:
    prefix, _sep, name = key.rpartition("/")
    return bool(_NAME.match(name)) and (
        not prefix or (len(prefix) <= 253 and bool(_DNS_SUBDOMAIN.match(prefix)))
    )


def label_problems(key, value):
    """Why ``key=value`` is not a label a kubelet may register with (empty list: fine)."""
    problems = []
    key = str(key)
    prefix, _sep, name = key.rpartition("/")
    if prefix and (len(prefix) > 253 or not _DNS_SUBDOMAIN.match(prefix)):
        problems.append(f"label key {key!r}: prefix {prefix!r} is not a DNS subdomain")
    if not _NAME.match(name):
        problems.append(
            f"label key {key!r}: name {name!r} must be 1-63 characters of [A-Za-z0-9_.-], "
            "starting and ending alphanumeric"
        )
    if not isinstance(value, str) or not _VALUE.match(value):
        problems.append(
            f"label {key!r}: value {value!r} must be a string of at most 63 characters of [A-Za-z0-9_.-], "
            "starting and ending alphanumeric"
        )
    restricted = (
        prefix == "kubernetes.io"
        or prefix.endswith(".kubernetes.io")
        or prefix == "k8s.io"
        or (prefix.endswith(".k8s.io"))
    )
    if restricted and key not in _SELF_LABEL_ALLOWED and not key.startswith(_SELF_LABEL_PREFIXES_ALLOWED):
        problems.append(
            f"label {key!r}: a kubelet may not set labels in the kubernetes.io/k8s.io namespaces "
            "(NodeRestriction); set it from the control plane instead"
        )
    return problems


def node_labels(host, datacenter, rack, labels):
    """The node labels: function, location, rack, zone (= rack), region (= datacenter), extras.

    ``labels`` are the plan's labels of the host: ``function`` (required), ``location``
    (defaults to the datacenter), ``rack`` (must be the host's rack) and any extra label.
    Keys without a prefix get ``cloud58.io/``; topology.kubernetes.io/zone is the rack and
    topology.kubernetes.io/region the datacenter, and extras may not redefine them.
    """
    problems = []
    for field, value in (("datacenter", datacenter), ("rack", rack)):
        if not isinstance(value, str) or not value:
            problems.append(f"{field} is {value!r}; the plan must give every Kubernetes node one")
    if not isinstance(labels, dict):
        problems.append(f"labels must be a mapping, got {labels!r} ({type(labels).__name__})")
    elif not labels.get("function"):
        problems.append("labels have no 'function'; the plan gives every Kubernetes node one")
    if problems:
        raise NodePlanError(host, problems)
    plain = {"location": datacenter, **labels}
    if str(plain.get("rack", rack)) != rack:
        problems.append(f"label 'rack' = {plain['rack']!r} is not the host's rack {rack!r}")
    plain["rack"] = rack
    result = {}
    for key, value in plain.items():
        full = str(key) if "/" in str(key) else f"{LABEL_PREFIX}/{key}"
        result[full] = value
    for key, value in ((ZONE_LABEL, rack), (REGION_LABEL, datacenter)):
        if key in result and result[key] != value:
            problems.append(f"label {key!r} = {result[key]!r} conflicts with the plan's {value!r}")
        result[key] = value
    for key, value in sorted(result.items()):
        problems += label_problems(key, value)
    if problems:
        raise NodePlanError(host, problems)
    return dict(sorted(result.items()))


def format_labels(labels) -> str:
    """The --node-labels text: ``k=v,k=v`` in key order."""
    return ",".join(f"{k}={labels[k]}" for k in sorted(labels))


def _tiers(amount, tiers):
    """Sum of ``fraction`` times the part of ``amount`` inside each (upper bound, fraction) tier."""
    total, lower = 0.0, 0
    for upper, fraction in tiers:
        if amount <= lower:
            break
        total += (min(amount, upper) - lower) * fraction
        lower = upper
    return total


def kube_reserved(vcpus, memtotal_mb):
    """CPU (millicores) and memory (MiB) kept back for the kubelet and the runtime.

    CPU: 6% of the first core, 1% of the second, 0.5% of cores 3-4, 0.25% above.
    Memory: 255 MiB under 1 GiB; else 25% of the first 4 GiB, 20% of the next 4,
    10% of the next 8, 6% of the next 112 and 2% above 128 GiB.
    """
    cpu = _tiers(vcpus * 1000, [(1000, 0.06), (2000, 0.01), (4000, 0.005), (float("inf"), 0.0025)])
    if memtotal_mb < 1024:
        memory = 255
    else:
        memory = _tiers(
            memtotal_mb,
            [(4096, 0.25), (8192, 0.20), (16384, 0.10), (131072, 0.06), (float("inf"), 0.02)],
        )
    return round(cpu), round(memory)


def system_reserved(vcpus, memtotal_mb):
    """CPU (millicores) and memory (MiB) for the OS daemons (sshd, journald, consul, ...):
    100m plus 10m per core above 4; 1% of memory, 256..1024 MiB."""
    cpu = 100 + 10 * max(0, vcpus - 4)
    memory = max(256, min(1024, memtotal_mb // 100))
    return cpu, memory


def taint_problems(taints) -> list:
    """What is wrong with a list of taints a kubelet registers its Node with: each a mapping
    of ``key`` (a label key), ``effect`` (one of TAINT_EFFECTS) and an optional ``value``."""
    if not isinstance(taints, (list, tuple)):
        return [f"taints {taints!r} is not a list of {{key, effect}} mappings"]
    problems = []
    for index, taint in enumerate(taints):
        where = f"taint {index + 1} {taint!r}"
        if not isinstance(taint, dict):
            problems.append(f"{where} is not a mapping of key, effect and value")
            continue
        unknown = sorted(set(taint) - {"key", "effect", "value"})
        if unknown:
            problems.append(f"{where}: unknown fields {unknown}; a taint has key, effect and value")
        key = taint.get("key")
        if not isinstance(key, str) or not _is_label_key(key):
            problems.append(f"{where}: key {key!r} is not a label key (prefix/name)")
        if taint.get("effect") not in TAINT_EFFECTS:
            problems.append(
                f"{where}: effect {taint.get('effect')!r} is not one of {', '.join(TAINT_EFFECTS)}"
            )
        value = taint.get("value", "")
        if not isinstance(value, str) or not _VALUE.match(value):
            problems.append(f"{where}: value {value!r} is not a label value")
    return problems


def eviction_memory_mb(memtotal_mb):
    """Hard eviction threshold for memory.available: 1% of memory, 100..1024 MiB."""
    return max(100, min(1024, memtotal_mb // 100))


# Process IDs (threads count) one pod may hold, by node function (kubelet podPidsLimit). The
# kernel's pid_max is 4194304 on 64-bit hosts; 110 pods at 16384 stay far below it, so one pod
# that forks or spawns threads without bound hits its own limit, not the node's. "default" is for
# functions not listed. -1 means unlimited (the kubelet's own default).
POD_PIDS_LIMITS = {"default": 4096, "online": 4096, "ingress": 2048, "infra": 8192, "offline": 16384}


def pod_pids_limit(host, function, limits):
    """podPidsLimit of a node: ``limits[function]``, else ``limits["default"]``.

    ``limits`` is the role's kubelet_pod_pids_limits ({function: limit}); every entry must be
    a positive integer or -1 (unlimited). Raises NodePlanError listing every bad entry.
    """
    if not isinstance(limits, dict):
        raise NodePlanError(
            host, [f"kubelet_pod_pids_limits: {limits!r} is not a mapping of node function to limit"]
        )
    problems = []
    for key, value in limits.items():
        if not isinstance(value, int) or isinstance(value, bool) or (value < 1 and value != -1):
            problems.append(
                f"kubelet_pod_pids_limits.{key}: {value!r} is not a positive integer or -1 (unlimited)"
            )
    if problems:
        raise NodePlanError(host, problems)
    if function in limits:
        return limits[function]
    if "default" in limits:
        return limits["default"]
    raise NodePlanError(
        host,
        [
            f"kubelet_pod_pids_limits has no entry for function {function!r} and no 'default' "
            f"(it has {', '.join(sorted(map(str, limits))) or 'none'})"
        ],
    )


def kubelet_configuration(  # noqa: PLR0917 - one argument per field the plan decides
    host,
    vcpus,
    memtotal_mb,
    max_pods,
    pod_block_addresses,
    cluster_dns=(),
    cluster_domain="cluster.local",
    cgroup_driver="systemd",
    static_pod_path="/etc/kubernetes/manifests",
    container_runtime_endpoint="unix:///run/containerd/containerd.sock",
    client_ca_file="/etc/kubernetes/pki/ca.crt",
    container_log_max_size="50Mi",
    container_log_max_files=5,
    fail_cgroup_v1=True,
    fail_swap_on=True,
    cgroup_v1=False,
    container=False,
    standalone=False,
    extra=None,
    function=None,
    pod_pids_limits=None,
    taints=(),
):
    """The KubeletConfiguration of one node, as a dict.

    ``max_pods`` must fit in the node's pod block (``pod_block_addresses`` addresses: the
    CNI hands every pod one address of the block); the reservations must leave the pods
    something to run on. ``extra`` fields are merged last (the role's escape hatch); they
    may not change what the plan decides (maxPods, cgroupDriver, staticPodPath).

    ``cgroup_v1``: the host mounts cgroup v1; kubelets since 1.35 refuse it unless
    failCgroupV1 is false, so ``fail_cgroup_v1=True`` there is an error here, before the
    kubelet would crash-loop. ``container``: the node is a container (molecule, the lab):
    the kernel is the host's, untuned, so protectKernelDefaults is off, and cgroup v1 is
    accepted. Per-QoS cgroups and node-allocatable enforcement stay on: with the systemd
    driver a kubelet without QoS cgroups hands the runtime plain cgroup paths and every pod
    fails (docs/kubelet-spike.md, E5). ``standalone``: no API server (static pods only), so no webhook
    authentication or authorization and no client CA; anonymous requests stay refused.
    ``pod_pids_limits``: {node function: podPidsLimit} (see :func:`pod_pids_limit`), looked up
    with the plan's ``function`` label of the node; None leaves podPidsLimit out.
    ``taints``: what the Node is registered with (``registerWithTaints``), each
    ``{key, effect[, value]}``; see :func:`taint_problems`.
    """
    problems = []
    for field, value, low in (
        ("vcpus", vcpus, 1),
        ("memtotal_mb", memtotal_mb, 256),
        ("max_pods", max_pods, 1),
        ("pod_block_addresses", pod_block_addresses, 1),
    ):
        if not isinstance(value, int) or isinstance(value, bool) or value < low:
            problems.append(f"{field} is {value!r}; expected an integer >= {low}")
    if cgroup_driver not in ("systemd", "cgroupfs"):
        problems.append(f"cgroup driver {cgroup_driver!r} is not one of systemd, cgroupfs")
    if problems:
        raise NodePlanError(host, problems)
    if max_pods > pod_block_addresses:
        problems.append(
            f"maxPods {max_pods} does not fit the node's pod block of {pod_block_addresses} addresses; "
            "lower max_pods or give the cluster a larger pod block"
        )
    kube_cpu, kube_mem = kube_reserved(vcpus, memtotal_mb)
    sys_cpu, sys_mem = system_reserved(vcpus, memtotal_mb)
    evict_mem = eviction_memory_mb(memtotal_mb)
    allocatable_mb = memtotal_mb - kube_mem - sys_mem - evict_mem
    if allocatable_mb < 256:
        problems.append(
            f"memory {memtotal_mb} MiB leaves {allocatable_mb} MiB allocatable after kube-reserved "
            f"{kube_mem} MiB, system-reserved {sys_mem} MiB and eviction {evict_mem} MiB; "
            "a node needs more memory"
        )
    if cgroup_v1 and fail_cgroup_v1 and not container:
        problems.append(
            "the host uses cgroup v1, which the kubelet refuses since 1.35 while failCgroupV1 is true; "
            "boot the host with cgroup v2 (systemd.unified_cgroup_hierarchy=1) or set "
            "kubelet_fail_cgroup_v1: false"
        )
    problems += taint_problems(taints)
    pids_limit = None
    if pod_pids_limits is not None:
        pids_limit = pod_pids_limit(host, function, pod_pids_limits)
    decided = ("maxPods", "cgroupDriver", "staticPodPath")
    decided += (("podPidsLimit",) if pids_limit else ()) + (("registerWithTaints",) if taints else ())
    for key in decided:
        if extra and key in extra:
            problems.append(f"extra field {key!r} would override the plan; change the plan instead")
    if problems:
        raise NodePlanError(host, problems)

    config = {
        "apiVersion": API_VERSION,
        "kind": "KubeletConfiguration",
        "authentication": {
            "anonymous": {"enabled": False},
            "webhook": {"enabled": True, "cacheTTL": "2m0s"},
            "x509": {"clientCAFile": client_ca_file},
        },
        "authorization": {"mode": "Webhook"},
        "cgroupDriver": cgroup_driver,
        "clusterDomain": cluster_domain,
        "containerLogMaxFiles": int(container_log_max_files),
        "containerLogMaxSize": container_log_max_size,
        "containerRuntimeEndpoint": container_runtime_endpoint,
        "enforceNodeAllocatable": ["pods"],
        "evictionHard": {
            "imagefs.available": "15%",
            "imagefs.inodesFree": "5%",
            "memory.available": f"{evict_mem}Mi",
            "nodefs.available": "10%",
            "nodefs.inodesFree": "5%",
        },
        "evictionMaxPodGracePeriod": 60,
        "evictionSoft": {
            "imagefs.available": "20%",
            "memory.available": f"{2 * evict_mem}Mi",
            "nodefs.available": "15%",
        },
        "evictionSoftGracePeriod": {
            "imagefs.available": "2m0s",
            "memory.available": "1m30s",
            "nodefs.available": "2m0s",
        },
        "failSwapOn": bool(fail_swap_on),
        "kubeReserved": {"cpu": f"{kube_cpu}m", "ephemeral-storage": "1Gi", "memory": f"{kube_mem}Mi"},
        "maxPods": max_pods,
        # kernel_tuning sets the sysctls this checks (vm.overcommit_memory, kernel.panic, ...).
        "protectKernelDefaults": True,
        "readOnlyPort": 0,
        "rotateCertificates": True,
        "serializeImagePulls": False,
        "staticPodPath": static_pod_path,
        "systemReserved": {"cpu": f"{sys_cpu}m", "ephemeral-storage": "1Gi", "memory": f"{sys_mem}Mi"},
    }
    if pids_limit is not None:
        config["podPidsLimit"] = pids_limit
    if taints:
        config["registerWithTaints"] = [dict(sorted(t.items())) for t in taints]
    if cluster_dns:
        config["clusterDNS"] = [str(a) for a in cluster_dns]
    config["failCgroupV1"] = bool(fail_cgroup_v1) and not container
    if container:
        config["protectKernelDefaults"] = False
    if standalone:
        config["authentication"] = {"anonymous": {"enabled": False}, "webhook": {"enabled": False}}
        config["authorization"] = {"mode": "AlwaysAllow"}
    for key, value in sorted((extra or {}).items()):
        config[key] = value
    return dict(sorted(config.items()))
