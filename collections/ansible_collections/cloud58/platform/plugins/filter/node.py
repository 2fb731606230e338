# -*- coding: utf-8 -*-
# Copyright: cloud58 platform team
# Apache License 2.0
"""Filters of the node roles: thin adapters over ``module_utils/node``.

Every planning problem (bad override, pod block too small, invalid label) becomes one
AnsibleFilterError that names the host and lists every problem, so the role stops in
its first task, before anything on the host has changed.
"""

from __future__ import annotations

import os

from ansible.errors import AnsibleFilterError

from ansible_collections.cloud58.platform.plugins.module_utils.node import crash, kernel, kubelet, queues
from ansible_collections.cloud58.platform.plugins.module_utils.node.errors import NodePlanError


def _mapping(value, what):
    if not isinstance(value, dict):
        raise AnsibleFilterError(f"{what} must be a mapping, got {value!r} ({type(value).__name__})")
    return value


def _port_range(value, what):
    try:
        ranges = kernel.parse_port_list(str(value))
    except ValueError as e:
        raise AnsibleFilterError(f"{what}: {e}") from e
    if len(ranges) != 1:
        raise AnsibleFilterError(f"{what} must be one range LOW-HIGH, got {value!r}")
    return ranges[0]


def node_sysctl_overrides(overrides, host_overrides, host):
    """Validate the group and host sysctl overrides; the merged {key: value} (host wins)."""
    try:
        return kernel.validate_overrides(
            str(host),
            [
                ("kernel_tuning_overrides", overrides or {}),
                ("kernel_tuning_host_overrides", host_overrides or {}),
            ],
        )
    except NodePlanError as e:
        raise AnsibleFilterError(str(e)) from e


def node_kernel_profile(
    ansible_facts,
    *,
    host,
    role,
    overrides=None,
    host_overrides=None,
    container_env=False,
    bridge_nf_available=True,
    nofile=kernel.DEFAULT_NOFILE,
):
    """The kernel profile of a host (see ``kernel.kernel_profile``).

    ``role``: {kubernetes, lvs_director, lvs_real_server, nodeport_range 'LOW-HIGH', nics [...]}.
    ``overrides`` (group vars) and ``host_overrides`` (host vars) are validated first.
    """
    _mapping(ansible_facts, "ansible_facts")
    role = _mapping(role, "role")
    try:
        facts = kernel.node_facts(
            ansible_facts, container_env=container_env, bridge_nf_available=bridge_nf_available
        )
        facts = kernel.NodeFacts(**{**facts.__dict__, "hostname": str(host)})
        node_role = kernel.NodeRole(
            kubernetes=bool(role.get("kubernetes", True)),
            lvs_director=bool(role.get("lvs_director", False)),
            lvs_real_server=bool(role.get("lvs_real_server", False)),
            nodeport_range=_port_range(role.get("nodeport_range", "30000-32767"), "role.nodeport_range"),
            nics=tuple(str(n) for n in role.get("nics", []) or []),
        )
        return kernel.kernel_profile(
            facts,
            node_role,
            [
                ("kernel_tuning_overrides", overrides or {}),
                ("kernel_tuning_host_overrides", host_overrides or {}),
            ],
            nofile=nofile,
        )
    except NodePlanError as e:
        raise AnsibleFilterError(str(e)) from e


def _queue_entries(value):
    """{nic: [queue names]} from such a mapping or from ansible.builtin.find results looped over NICs."""
    if isinstance(value, dict):
        return {str(nic): [os.path.basename(str(n)) for n in names] for nic, names in value.items()}
    if isinstance(value, list) and all(isinstance(r, dict) and "item" in r and "files" in r for r in value):
        return {str(r["item"]): [os.path.basename(str(f["path"])) for f in r["files"]] for r in value}
    raise AnsibleFilterError(
        "node_queue_settings expects {nic: [queue names]} or the results of ansible.builtin.find "
        f"looped over the NICs, got {value!r} ({type(value).__name__})"
    )


def node_queue_settings(queue_entries, vcpus, host, interrupts=None):
    """[{path, value}] for the NICs' queues.

    ``queue_entries``: {nic: [entries of /sys/class/net/<nic>/queues]} or the results of
    ``ansible.builtin.find`` looped over the NICs; ``interrupts``: the text of
    /proc/interrupts, or None to leave IRQ affinity alone (containers).
    """
    entries = _queue_entries(queue_entries)
    try:
        counts = {nic: queues.count_queues(names, nic) for nic, names in entries.items()}
        irqs = None if interrupts is None else queues.parse_interrupts(interrupts, sorted(counts))
        settings = queues.queue_settings(vcpus, counts, irqs=irqs, host=str(host))
    except NodePlanError as e:
        raise AnsibleFilterError(str(e)) from e
    except ValueError as e:
        raise AnsibleFilterError(f"host {host!r}: {e}") from e
    return [{"path": path, "value": value} for path, value in settings]


def node_labels(labels, host, datacenter, rack):
    """The node labels {key: value} of a Kubernetes node from the plan's labels of the host."""
    try:
        return kubelet.node_labels(str(host), datacenter, rack, labels)
    except NodePlanError as e:
        raise AnsibleFilterError(str(e)) from e


def node_label_args(labels):
    """{key: value} → 'k=v,k=v' for kubelet --node-labels."""
    return kubelet.format_labels(_mapping(labels, "labels"))


def node_kubelet_config(ansible_facts, host, max_pods, pod_block_size, **options):
    """The KubeletConfiguration dict (see ``kubelet.kubelet_configuration``).

    ``pod_block_size`` is the prefix length of the node's pod block (Calico blockSize).
    """
    _mapping(ansible_facts, "ansible_facts")
    if (
        not isinstance(pod_block_size, int)
        or isinstance(pod_block_size, bool)
        or not 16 <= pod_block_size <= 32
    ):
        raise AnsibleFilterError(
            f"host {host!r}: pod_block_size {pod_block_size!r} is not a prefix length 16..32"
        )
    try:
        return kubelet.kubelet_configuration(
            host=str(host),
            vcpus=ansible_facts.get("processor_vcpus"),
            memtotal_mb=ansible_facts.get("memtotal_mb"),
            max_pods=max_pods,
            pod_block_addresses=2 ** (32 - pod_block_size),
            **options,
        )
    except NodePlanError as e:
        raise AnsibleFilterError(str(e)) from e
    except TypeError as e:
        raise AnsibleFilterError(f"host {host!r}: node_kubelet_config: {e}") from e


# The role node_agents' variables of the crash-site budget, as its messages name them.
CRASH_BUDGET_VARIABLES = (
    "node_agents_crashkeeper_max_sites",
    "node_agents_crashkeeper_max_bytes",
    "node_agents_crashkeeper_min_free_bytes",
)


def node_crash_budget_problem(disk_total, host, root, max_sites, max_bytes, min_free_bytes):  # noqa: PLR0917 (a filter: positional)
    """Why cloud58-crashkeeper's budget cannot be kept on the host; "" when it can.

    ``disk_total``: bytes of the file system that will hold ``root`` (read on the host)."""
    _sites, bytes_name, free_name = CRASH_BUDGET_VARIABLES
    try:
        total = int(str(disk_total).strip())
    except ValueError:
        raise AnsibleFilterError(
            f"host {host}: node_crash_budget_problem: disk size {disk_total!r} is not a number of bytes"
        ) from None
    try:
        budget = crash.Budget(
            max_sites=max_sites,
            max_bytes=crash.parse_size(max_bytes, bytes_name),
            min_free_bytes=crash.parse_size(min_free_bytes, free_name),
        )
        crash.check_budget(budget, str(root), total, CRASH_BUDGET_VARIABLES)
    except crash.CrashError as e:
        return f"host {host}: {e}"
    return ""


class FilterModule:
    """Filters of the cloud58 node roles."""

    def filters(self):
        return {
            "node_kernel_profile": node_kernel_profile,
            "node_sysctl_overrides": node_sysctl_overrides,
            "node_queue_settings": node_queue_settings,
            "node_labels": node_labels,
            "node_label_args": node_label_args,
            "node_kubelet_config": node_kubelet_config,
            "node_crash_budget_problem": node_crash_budget_problem,
        }
