#!/usr/bin/env python3
# -*- coding: utf-8 -*-
# Copyright: cloud58 platform team
# Apache License 2.0
"""Benchmark the preflight (playbooks/validate.yml) on three datacenters with 1,000 hosts.

Writes a synthetic inventory (standard Ansible layout: hosts.yml + group_vars/all) to a
temporary directory, then prints, each the median of several runs with every run and the
spread (min-max):

    BENCH validate_playbook_1000_hosts_s <s>          `ansible-playbook -i <dir> playbooks/validate.yml`,
                                                      what a user runs (start-up included; 3 runs)
    BENCH plan_inprocess_1000_hosts_s <s>             build_plan on the loaded inventory, inside this
                                                      process (the planner alone; 5 runs)
    BENCH load_and_plan_inprocess_1000_hosts_s <s>    reading the YAML files + build_plan, in process

No ratio: nothing a user would otherwise run does the same work (`ansible-inventory
--list` only merges variables, it checks and derives nothing), so the figures are
absolute. The size is the same at CLOUD58_BENCH_SIZE=full and ci (the run takes seconds).
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
sys.path[:0] = [os.path.join(REPO, "collections"), os.path.join(REPO, "benchmarks")]

from benchstats import bench_size, figure  # noqa: E402

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


def timings(runs, func):
    """Seconds of each of ``runs`` calls of ``func``, and the last result."""
    seconds, result = [], None
    for _ in range(runs):
        start = time.perf_counter()
        result = func()
        seconds.append(time.perf_counter() - start)
    return seconds, result


def main(argv=None) -> int:
    size = bench_size()
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--hosts", type=int, default=1000)
    parser.add_argument("--runs", type=int, default=5, help="runs of the in-process figures")
    parser.add_argument("--playbook-runs", type=int, default=3, help="runs of validate.yml")
    args = parser.parse_args(argv)
    workdir = tempfile.mkdtemp(prefix="cloud58-bench-")
    try:
        write_inventory(workdir, total_hosts=args.hosts)
        env = dict(
            os.environ,
            ANSIBLE_CONFIG=os.path.join(REPO, "ansible.cfg"),
            PATH=os.path.join(REPO, ".venv", "bin") + os.pathsep + os.environ.get("PATH", ""),
        )

        def validate():
            run = subprocess.run(
                ["ansible-playbook", "-i", workdir, os.path.join(REPO, "playbooks", "validate.yml")],
                capture_output=True,
                text=True,
                env=env,
                cwd=REPO,
                check=False,
            )
            if run.returncode != 0:
                raise SystemExit(
                    f"bench_plan: validate.yml failed:\n{run.stdout[-3000:]}{run.stderr[-2000:]}"
                )

        playbook_s, _ = timings(args.playbook_runs, validate)
        inventory = load_inventory(workdir)
        plan_s, plan = timings(args.runs, lambda: build_plan(inventory))
        load_plan_s, _ = timings(args.runs, lambda: build_plan(load_inventory(workdir)))
        hosts = len(plan["hosts"])
        print(
            f"# size {size} (every size is the same): {hosts} hosts, {len(plan['datacenters'])} datacenters"
        )
        print(figure(f"validate_playbook_{args.hosts}_hosts_s", playbook_s))
        print(figure(f"plan_inprocess_{args.hosts}_hosts_s", plan_s, digits=4))
        print(figure(f"load_and_plan_inprocess_{args.hosts}_hosts_s", load_plan_s, digits=4))
        return 0
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
