#!/usr/bin/env python3
# -*- coding: utf-8 -*-
# Copyright: cloud58 platform team
# Apache License 2.0
"""Benchmark the topology planner on three datacenters with 1,000 hosts in total.

Writes a synthetic inventory (standard Ansible layout: hosts.yml + group_vars/all) to a
temporary directory, then prints:

    BENCH plan_1000_hosts_s <s>                  build_plan on the loaded inventory (best of N)
    BENCH load_and_plan_1000_hosts_s <s>         reading the YAML files + build_plan (best of N)
    BENCH ansible_inventory_1000_hosts_s <s>     `ansible-inventory -i <dir> --list` (best of M)
    BENCH plan_vs_ansible_inventory_ratio <x>    how many times faster load+plan is than the baseline

The baseline is what a user would otherwise run to see the same inventory resolved (and
it only merges variables: no check, no derivation). The target is plan < 2 s.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(REPO, "collections"))

from ansible_collections.cloud58.platform.plugins.module_utils.topology import (  # noqa: E402
    build_plan,
    load_inventory,
)

RACKS_PER_DC = 10


def _dc_yaml(index, name):
    """One datacenter of the synthetic fabric: 10 racks of /24, 2 cores, AS numbers unique."""
    lines = [
        f"  {name}:",
        "    region: bench",
        "    networks:",
        f"      nodes: 10.{index * 4}.0.0/16",
        f"      fabric: 10.{index * 4 + 1}.255.0/24",
        f"      vip_pool: 10.{index * 4 + 2}.0.0/24",
        f"      local_address_pool: 10.{index * 4 + 2}.1.0/24",
        "    bgp:",
        f"      core_asn: {65000 + index}",
        "      core_routers:",
        f"        - {{name: {name}-core1, address: 10.{index * 4 + 1}.255.253}}",
        f"        - {{name: {name}-core2, address: 10.{index * 4 + 1}.255.254}}",
        "    racks:",
    ]
    for rack in range(1, RACKS_PER_DC + 1):
        rack_name = f"{name}-r{rack:02d}"
        tor_asn = 4200100000 + index * 1000 + rack
        lines += [
            f"      {rack_name}:",
            f"        node_subnet: 10.{index * 4}.{rack}.0/24",
            f"        node_asn: {4200000000 + index * 1000 + rack}",
            "        tors:",
            f"          - {{name: {rack_name}-tor1, address: 10.{index * 4}.{rack}.1, asn: {tor_asn}}}",
            f"          - {{name: {rack_name}-tor2, address: 10.{index * 4}.{rack}.2, asn: {tor_asn}}}",
        ]
    lines += [
        "    lvs:",
        "      vips:",
        f"        - {{name: {name}-ingress, address: 10.{index * 4 + 2}.0.10}}",
    ]
    return lines


def write_inventory(directory, total_hosts=1000, datacenters=3):
    """A valid inventory of ``datacenters`` datacenters and ``total_hosts`` hosts in ``directory``."""
    names = [f"bench{i + 1}" for i in range(datacenters)]
    sizes = [
        total_hosts // datacenters + (1 if i < total_hosts % datacenters else 0) for i in range(datacenters)
    ]
    groups = {"masters": [], "etcd_events": [], "lvs": [], "consul_servers": [], "minions": []}
    for index, (name, size) in enumerate(zip(names, sizes, strict=True)):
        fixed = [
            ("masters", "master", 3),
            ("etcd_events", "etcd-ev", 3),
            ("lvs", "lvs", 2),
            ("consul_servers", "consul", 3),
        ]
        hosts = []
        for group, stem, count in fixed:
            for n in range(1, count + 1):
                hosts.append((group, f"{name}-{stem}-{n:02d}"))
        for n in range(1, size - len(hosts) + 1):
            hosts.append(("minions", f"{name}-node-{n:04d}"))
        for position, (group, host) in enumerate(hosts):
            rack = position % RACKS_PER_DC + 1
            address = f"10.{index * 4}.{rack}.{10 + position // RACKS_PER_DC}"
            groups[group].append(f"        {host}: {{rack: {name}-r{rack:02d}, address: {address}}}")
    lines = ["---", "all:", "  children:"]
    for group, entries in groups.items():
        lines += [f"    {group}:", "      hosts:", *entries]
    os.makedirs(os.path.join(directory, "group_vars", "all"), exist_ok=True)
    with open(os.path.join(directory, "hosts.yml"), "w", encoding="utf-8") as handle:
        handle.write("\n".join(lines) + "\n")
    dcs = ["---", "cloud58_datacenters:"]
    clusters = ["---", "cloud58_clusters:"]
    for index, name in enumerate(names):
        dcs += _dc_yaml(index, name)
        clusters += [
            f"  {name}-k8s:",
            f"    datacenter: {name}",
            f"    context: {name}-k8s",
            f"    api: {{vip: 10.{index * 4 + 2}.0.1, dns_name: api.{name}.bench.test}}",
            f"    pod_cidr: 10.{128 + index * 8}.0.0/13",
            f"    service_cidr: 10.{96 + index}.0.0/16",
        ]
    with open(
        os.path.join(directory, "group_vars", "all", "datacenters.yml"), "w", encoding="utf-8"
    ) as handle:
        handle.write("\n".join(dcs) + "\n")
    with open(os.path.join(directory, "group_vars", "all", "clusters.yml"), "w", encoding="utf-8") as handle:
        handle.write("\n".join(clusters) + "\n")
    return directory


def best_of(runs, func):
    best = None
    result = None
    for _ in range(runs):
        start = time.perf_counter()
        result = func()
        elapsed = time.perf_counter() - start
        best = elapsed if best is None else min(best, elapsed)
    return best, result


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--hosts", type=int, default=1000)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--baseline-runs", type=int, default=2)
    parser.add_argument("--no-baseline", action="store_true", help="skip ansible-inventory")
    args = parser.parse_args(argv)
    workdir = tempfile.mkdtemp(prefix="cloud58-bench-")
    try:
        write_inventory(workdir, total_hosts=args.hosts)
        inventory = load_inventory(workdir)
        plan_s, plan = best_of(args.runs, lambda: build_plan(inventory))
        load_plan_s, _ = best_of(args.runs, lambda: build_plan(load_inventory(workdir)))
        hosts = len(plan["hosts"])
        print(f"# {hosts} hosts in {len(plan['datacenters'])} datacenters, best of {args.runs}")
        print(f"BENCH plan_{args.hosts}_hosts_s {plan_s:.4f}")
        print(f"BENCH load_and_plan_{args.hosts}_hosts_s {load_plan_s:.4f}")
        if args.no_baseline:
            return 0
        tool = os.path.join(os.path.dirname(sys.executable), "ansible-inventory")
        if not os.path.exists(tool):
            tool = shutil.which("ansible-inventory")
        if tool is None:
            print("# ansible-inventory not found: no baseline")
            return 0
        env = dict(os.environ, ANSIBLE_CONFIG=os.path.join(REPO, "ansible.cfg"))

        def baseline():
            subprocess.run(
                [tool, "-i", workdir, "--list"],
                check=True,
                env=env,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )

        baseline_s, _ = best_of(args.baseline_runs, baseline)
        print(f"BENCH ansible_inventory_{args.hosts}_hosts_s {baseline_s:.4f}")
        print(f"BENCH plan_vs_ansible_inventory_ratio {baseline_s / load_plan_s:.1f}")
        return 0
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
