# -*- coding: utf-8 -*-
# Copyright: cloud58 platform team
# Apache License 2.0
"""IRQ affinity and RPS/XPS masks per NIC queue, computed from the CPU count.

The rules, for ``n`` CPUs:

* IRQ affinity: the k-th queue interrupt of the host (NICs in the order given, queues in
  /proc/interrupts order) goes to CPU ``k mod n``, one CPU per interrupt, so the NICs
  together cover every CPU once before any CPU gets a second interrupt.
* RPS: when a NIC has at least as many receive queues as CPUs, hardware RSS already
  spreads the load and RPS stays off (mask 0). Otherwise receive queue ``q`` of ``r`` is
  steered to the CPUs ``c`` with ``c mod r == q``: every CPU serves exactly one queue.
  With RPS on, each queue gets ``rps_sock_flow_entries / r`` RFS flow slots.
* XPS: transmit queue ``t`` of ``m`` is used by the CPUs ``c`` with ``c mod m == t``, so
  every CPU sends on exactly one queue.

Masks are written the way the kernel prints them for ``n`` possible CPUs: 32-bit groups
separated by commas, the lower groups eight hex digits, the top group as wide as its CPUs
need; reading the file back gives the same text, which keeps reruns idempotent.
"""

from __future__ import annotations

import re

from ansible_collections.cloud58.platform.plugins.module_utils.node.errors import NodePlanError

RPS_SOCK_FLOW_ENTRIES = 32768


def cpumask(cpus, ncpu) -> str:
    """Hex mask of the CPU numbers ``cpus`` on a host with ``ncpu`` CPUs, in the kernel's format.

    >>> cpumask({0, 1}, 2)
    '3'
    >>> cpumask({0}, 40)
    '00,00000001'
    """
    if not isinstance(ncpu, int) or isinstance(ncpu, bool) or ncpu < 1:
        raise ValueError(f"the CPU count must be a positive integer, got {ncpu!r}")
    bits = 0
    for cpu in cpus:
        if not 0 <= cpu < ncpu:
            raise ValueError(f"CPU {cpu!r} does not exist on a host with {ncpu} CPUs")
        bits |= 1 << cpu
    groups = []
    remaining = ncpu
    while remaining > 0:
        width = min(32, remaining)
        groups.append((bits & 0xFFFFFFFF, width))
        bits >>= 32
        remaining -= width
    top_value, top_width = groups[-1]
    text = [f"{top_value:0{(top_width + 3) // 4}x}"]
    text += [f"{value:08x}" for value, _width in reversed(groups[:-1])]
    return ",".join(text)


def parse_cpumask(text) -> set:
    """The CPU numbers of a mask in the kernel's format ("ff,00000001" → {0, 32..39})."""
    cleaned = str(text).strip().replace(",", "")
    if not re.fullmatch(r"[0-9a-fA-F]+", cleaned):
        raise ValueError(f"{text!r} is not a CPU mask")
    bits = int(cleaned, 16)
    return {i for i in range(bits.bit_length()) if bits >> i & 1}


def count_queues(names, nic):
    """(rx, tx) from the entries of /sys/class/net/<nic>/queues (rx-0, tx-0, ...)."""
    counts = {}
    for kind in ("rx", "tx"):
        numbers = sorted(
            int(m.group(1)) for n in names for m in [re.fullmatch(kind + r"-(\d+)", str(n))] if m
        )
        if numbers != list(range(len(numbers))):
            raise ValueError(f"{nic}: {kind} queues are not numbered 0..n-1: {numbers}")
        counts[kind] = len(numbers)
    return counts["rx"], counts["tx"]


def parse_interrupts(text, nics):
    """IRQ numbers of each NIC's queues from /proc/interrupts, in file order.

    An interrupt belongs to ``nic`` when its name (the last column) is ``nic-<suffix>``
    or ``nic@<bus>`` — the names drivers such as ixgbe, i40e, ice, bnxt and mlx5 give
    their queue vectors. Vectors without a queue (``nic`` alone, link/admin vectors) are
    left to the kernel.
    """
    found = {nic: [] for nic in nics}
    for line in str(text).splitlines():
        match = re.match(r"^\s*(\d+):", line)
        if not match:
            continue
        name = line.split()[-1]
        for nic in nics:
            if re.match(re.escape(nic) + r"[-@].+", name) and not re.search(
                r"(?i)(link|admin|async|lsc)", name
            ):
                found[nic].append(int(match.group(1)))
                break
    return found


def queue_settings(ncpu, nics, irqs=None, flow_entries=RPS_SOCK_FLOW_ENTRIES, host="?"):
    """Every value to write for the NICs' queues, as a sorted list of (path, value).

    ``nics``: {name: (rx_queues, tx_queues)}; ``irqs``: {name: [irq, ...]} or None when
    IRQ affinity is not managed (containers: /proc/irq belongs to the host).
    """
    problems = []
    if not isinstance(ncpu, int) or isinstance(ncpu, bool) or ncpu < 1:
        raise NodePlanError(host, [f"the CPU count must be a positive integer, got {ncpu!r}"])
    settings = []
    for nic in sorted(nics):
        rx, tx = nics[nic]
        if rx < 1 or tx < 1:
            problems.append(
                f"NIC {nic!r} has {rx} receive and {tx} transmit queues; expected at least one each"
            )
            continue
        base = f"/sys/class/net/{nic}/queues"
        rps_on = ncpu > 1 and rx < ncpu
        for q in range(rx):
            cpus = {c for c in range(ncpu) if c % rx == q} if rps_on else set()
            settings.append((f"{base}/rx-{q}/rps_cpus", cpumask(cpus, ncpu)))
            settings.append((f"{base}/rx-{q}/rps_flow_cnt", str(flow_entries // rx if rps_on else 0)))
        for t in range(tx):
            cpus = {c for c in range(ncpu) if c % tx == t} if ncpu > 1 else set()
            settings.append((f"{base}/tx-{t}/xps_cpus", cpumask(cpus, ncpu)))
    if problems:
        raise NodePlanError(host, problems)
    k = 0
    for nic in sorted(nics) if irqs is not None else ():
        for irq in (irqs or {}).get(nic, []):
            settings.append((f"/proc/irq/{irq}/smp_affinity", cpumask({k % ncpu}, ncpu)))
            k += 1
    return sorted(settings, key=lambda item: _natural(item[0]))


def _natural(path):
    return [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", path)]
