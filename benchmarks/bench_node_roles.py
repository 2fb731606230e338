#!/usr/bin/env python3
# -*- coding: utf-8 -*-
# Copyright: cloud58 platform team
# Apache License 2.0
"""Benchmark a rerun of the node roles (playbooks/nodes.yml) over 20 lab containers.

Starts 20 podman systemd containers from the node image (1 master, 17 minions, 2 LVS
directors of a two-rack datacenter planned by the real planner), converges them once
with playbooks/nodes.yml, then times three reruns that must all report changed=0:

* with the repository's ansible.cfg (forks 50, smart gathering with a fact cache, only
  the fact subsets the roles read, ...);
* with Ansible's defaults (an empty ansible.cfg: forks 5, implicit full fact gathering),
  the baseline a user would otherwise get;
* with the repository's ansible.cfg and ``ANSIBLE_STRATEGY=mitogen_linear`` (the opt-in
  mitogen strategy, plugins/strategy/), the containers reached through mitogen's
  ``mitogen_setns`` connection (``mitogen_kind: docker`` with podman as the docker
  program: mitogen enters the container's namespaces once and keeps one Python in it),
  which stands in for mitogen_ssh on real hosts. Under the mitogen strategy the
  ``cloud58.lab.podman_nsenter`` connection is not replaced and runs slower than without it.

Prints:

    BENCH node_roles_converge_20_hosts_s <s>   the first run (installs containerd, copies kubelets)
    BENCH node_roles_rerun_20_hosts_s <s>      the rerun with the repository's ansible.cfg
    BENCH node_roles_rerun_20_hosts_defaults_s <s>   the same rerun with Ansible's defaults
    BENCH ansible_cfg_speedup <x>              defaults time / tuned time
    BENCH node_roles_rerun_20_hosts_mitogen_s <s>    the rerun with ansible.cfg + mitogen
    BENCH ansible_cfg_mitogen_speedup <x>      defaults time / mitogen time

Each figure is one run, and says so: a median of three would triple the benchmark's
time (about 14 minutes at 20 hosts on the 2-core build machine), more than the CI budget
allows; the three reruns run one after the other in the same invocation, so they share
the machine's load. ``CLOUD58_BENCH_SIZE=ci`` (``make test``) starts 4 containers instead
of 20: in CI the benchmarks share the machine with the integration lane, and 10 containers
took 16 of its minutes. At that size the first run goes through mitogen too (it says so), so
its figure is not comparable with the full size's.

Every container it started is removed at the end, also on failure or interruption (and
leftovers of an interrupted earlier run, found by their label, at the start).

Twenty systemd containers need more inotify instances than Debian's default of 128: the
benchmark raises fs.inotify.max_user_instances for its run and puts the old value back
afterwards (lab/cloud58_lab/nodes.py, which also starts the containers for `make lab`).
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import textwrap
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path[:0] = [os.path.join(REPO, "lab"), os.path.join(REPO, "benchmarks")]

from benchstats import bench_size, figure  # noqa: E402

from cloud58_lab import nodes  # noqa: E402
from cloud58_lab.staticpods import MITOGEN_SETNS, PODMAN_NSENTER  # noqa: E402

LABEL = "cloud58.bench=node_roles"
PREFIX = "bench-node"
RUN_TIMEOUT_S = 1800
HOSTS = {"full": 20, "ci": 4}  # containers, by CLOUD58_BENCH_SIZE


class BenchError(Exception):
    """The benchmark cannot run or its result is not valid (not a slow figure: that is fine)."""


def _env():
    env = dict(os.environ)
    env.setdefault("CONTAINERS_CONF", os.path.join(REPO, "containers", "containers.conf"))
    env["ANSIBLE_COLLECTIONS_PATH"] = os.pathsep.join(
        [
            os.path.join(REPO, "collections"),
            os.path.join(REPO, "lab", "collections"),
            os.path.expanduser("~/.ansible/collections"),
        ]
    )
    env["ANSIBLE_FORCE_COLOR"] = "0"
    env["ANSIBLE_NOCOLOR"] = "1"
    env["PATH"] = os.path.join(REPO, ".venv", "bin") + os.pathsep + env.get("PATH", "")
    return env


def _run(cmd, env, timeout=120):
    result = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=timeout, check=False)
    if result.returncode != 0:
        raise BenchError(f"{' '.join(cmd)} failed ({result.returncode}): {result.stderr.strip()[-2000:]}")
    return result.stdout.strip()


def _remove_labelled(env):
    ids = _run(["podman", "ps", "-a", "-q", "--filter", f"label={LABEL}"], env).split()
    if ids:
        subprocess.run(["podman", "rm", "-f", "-t", "0", *ids], capture_output=True, env=env, check=False)
    return len(ids)


def _layout(count):
    """(name, groups, rack, address, labels) of each container: 1 master, 2 LVS, the rest minions."""
    hosts = []
    for i in range(1, count + 1):
        rack = "bench-r1" if i % 2 else "bench-r2"
        base = 0 if rack == "bench-r1" else 64
        address = f"198.18.120.{base + 10 + i}"
        if i == 1:
            groups, labels = ["masters", "etcd_events", "consul_servers"], {}
        elif i > count - 2:
            groups, labels = ["lvs"], {}
        else:
            groups, labels = ["minions"], {"function": "online"}
        hosts.append((f"{PREFIX}-{i:02d}", groups, rack, address, labels))
    return hosts


def _inventory(hosts, bin_dir, connection=None):
    """A topology inventory (docs/inventory.md) whose hosts are the containers."""
    connection = connection or PODMAN_NSENTER
    lines = ["all:", "  vars:", *(f"    {k}: {v}" for k, v in connection.items()), "  children:"]
    for group in ("masters", "etcd_events", "consul_servers", "minions", "lvs"):
        members = [h for h in hosts if group in h[1]]
        lines += [f"    {group}:", "      hosts:"]
        for name, _, rack, address, labels in members:
            extra = f", labels: {{function: {labels['function']}}}" if labels else ""
            lines.append(f"        {name}: {{rack: {rack}, address: {address}{extra}}}")
    group_vars = textwrap.dedent(
        f"""\
        cloud58_datacenters:
          bench:
            region: lab
            networks:
              nodes: 198.18.120.0/24
              fabric: 198.18.121.0/27
              vip_pool: 198.18.122.0/27
              local_address_pool: 198.18.122.32/27
            bgp:
              core_asn: 65400
              core_routers:
                - {{name: bench-core1, address: 198.18.121.30}}
            racks:
              bench-r1:
                node_subnet: 198.18.120.0/26
                node_asn: 65411
                tors:
                  - {{name: bench-r1-tor1, address: 198.18.120.1, asn: 65421}}
                  - {{name: bench-r1-tor2, address: 198.18.120.2, asn: 65421}}
              bench-r2:
                node_subnet: 198.18.120.64/26
                node_asn: 65412
                tors:
                  - {{name: bench-r2-tor1, address: 198.18.120.65, asn: 65422}}
                  - {{name: bench-r2-tor2, address: 198.18.120.66, asn: 65422}}
        cloud58_clusters:
          bench-k8s:
            datacenter: bench
            context: bench-k8s
            api: {{vip: 198.18.122.1, dns_name: api.bench-k8s.lab.cloud58.test}}
            pod_cidr: 198.18.128.0/20
            service_cidr: 198.18.124.0/24
            pod_block_size: 26
            max_pods: 32
            lab_overrides: {{allow_fewer_than_3_masters: true, events_etcd_on_masters: true}}
        # Containers: steer the veth, run the kubelet standalone, binary from the build cache.
        kernel_tuning_nics: [eth0]
        kubelet_kubeconfig: ""
        kubelet_local_binary: {bin_dir}/kubelet
        """
    )
    return "\n".join(lines) + "\n", group_vars


def _playbook(inventory_dir, env, cfg, label, expect_no_change, *, log_dir=None, strategy=None):
    run_env = dict(env, ANSIBLE_CONFIG=cfg)
    if strategy:
        run_env["ANSIBLE_STRATEGY"] = strategy
    started = time.monotonic()
    result = subprocess.run(
        ["ansible-playbook", "-i", inventory_dir, os.path.join(REPO, "playbooks", "nodes.yml")],
        capture_output=True,
        text=True,
        env=run_env,
        timeout=RUN_TIMEOUT_S,
        check=False,
        cwd=REPO,
    )
    elapsed = time.monotonic() - started
    if log_dir:
        name = re.sub(r"[^a-z0-9]+", "-", label.lower()).strip("-")
        with open(os.path.join(log_dir, f"{name}.log"), "w", encoding="utf-8") as f:
            f.write(result.stdout + result.stderr)
    try:
        return elapsed, nodes.checked_recap(result, label, expect_no_change)
    except nodes.NodesError as e:
        raise BenchError(str(e)) from e


def main(argv=None) -> int:
    size = bench_size()
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--hosts",
        type=int,
        default=HOSTS[size],
        help=f"containers to start (at least 4; default {HOSTS[size]})",
    )
    parser.add_argument("--log-dir", help="keep the output of each ansible-playbook run in this directory")
    args = parser.parse_args(argv)
    if args.hosts < 4:
        parser.error("--hosts must be at least 4 (a master, a minion, two LVS directors)")
    env = _env()
    for tool in ("podman", "ansible-playbook"):
        if not shutil.which(tool, path=env["PATH"]):
            raise BenchError(f"{tool} is not installed; run make setup")
    image = _run([os.path.join(REPO, "scripts", "setup", "image.sh"), "--print-ref"], env)
    if subprocess.run(["podman", "image", "exists", image], env=env, check=False).returncode != 0:
        raise BenchError(f"the node image {image} is missing; run scripts/setup/image.sh (make setup-image)")
    bin_dir = _run([os.path.join(REPO, "scripts", "setup", "upstream-bin-dir")], env)

    # SIGTERM (a CI timeout) must still reach the clean-up below.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    leftovers = _remove_labelled(env)
    if leftovers:
        print(f"# removed {leftovers} containers left by an interrupted earlier run")
    hosts = _layout(args.hosts)
    work = tempfile.mkdtemp(prefix="cloud58-bench-nodes.")
    old_inotify = nodes.raise_inotify_instances(out=lambda m: print(f"# {m}"))
    try:
        try:
            nodes.start_containers({name: name for name, *_ in hosts}, image, LABEL, env, boot_timeout=120)
        except nodes.NodesError as e:
            raise BenchError(str(e)) from e
        inventory_dir = os.path.join(work, "inventory")
        mitogen_inventory_dir = os.path.join(work, "inventory-mitogen")
        inventories = ((inventory_dir, PODMAN_NSENTER), (mitogen_inventory_dir, MITOGEN_SETNS))
        for directory, connection in inventories:
            os.makedirs(os.path.join(directory, "group_vars", "all"))
            hosts_yml, group_vars = _inventory(hosts, bin_dir, connection)
            with open(os.path.join(directory, "hosts.yml"), "w", encoding="utf-8") as f:
                f.write(hosts_yml)
            with open(os.path.join(directory, "group_vars", "all", "bench.yml"), "w", encoding="utf-8") as f:
                f.write(group_vars)
        defaults_cfg = os.path.join(work, "defaults.cfg")
        with open(defaults_cfg, "w", encoding="utf-8") as f:
            f.write("# Ansible's defaults: nothing set.\n")
        # The repository's tuning, with its fact cache kept out of the repository's .cache.
        env["ANSIBLE_CACHE_PLUGIN_CONNECTION"] = os.path.join(work, "facts")
        tuned_cfg = os.path.join(REPO, "ansible.cfg")

        if args.log_dir:
            os.makedirs(args.log_dir, exist_ok=True)
        # At CI size the first run goes through mitogen: it is not a no-op figure's baseline,
        # and over podman_nsenter it took 150 of the tier's seconds on 4 hosts (fresh clone
        # of d930607), under mitogen 94 (fresh clone of 83ce7a4).
        first_inventory, first_strategy = (
            (mitogen_inventory_dir, "mitogen_linear") if size == "ci" else (inventory_dir, None)
        )
        runs = [
            (first_inventory, tuned_cfg, first_strategy, "the first run", False),
            (inventory_dir, tuned_cfg, None, "the rerun (repository ansible.cfg)", True),
            (inventory_dir, defaults_cfg, None, "the rerun (Ansible defaults)", True),
            (mitogen_inventory_dir, tuned_cfg, "mitogen_linear", "the rerun (ansible.cfg, mitogen)", True),
        ]
        (converge_s, _), (rerun_s, recap), (baseline_s, _), (mitogen_s, _) = (
            _playbook(inventory, env, cfg, label, no_change, log_dir=args.log_dir, strategy=strategy)
            for inventory, cfg, strategy, label, no_change in runs
        )
        n = args.hosts
        print(f"# size {size}: {n} containers of {image}; one run of each figure (no median)")
        if size == "ci":
            print("# the first run (converge) under the mitogen strategy at this size")
        print(f"# rerun recap changed=0 on {len(recap) - 1} hosts and localhost")
        print(figure(f"node_roles_converge_{n}_hosts_s", [converge_s], digits=1))
        print(figure(f"node_roles_rerun_{n}_hosts_s", [rerun_s], digits=1))
        print(figure(f"node_roles_rerun_{n}_hosts_defaults_s", [baseline_s], digits=1))
        print(figure("ansible_cfg_speedup", [baseline_s / rerun_s]))
        print(figure(f"node_roles_rerun_{n}_hosts_mitogen_s", [mitogen_s], digits=1))
        print(figure("ansible_cfg_mitogen_speedup", [baseline_s / mitogen_s]))
    finally:
        removed = _remove_labelled(env)
        shutil.rmtree(work, ignore_errors=True)
        nodes.restore_inotify_instances(old_inotify, out=lambda m: print(f"# {m}"))
        print(f"# removed {removed} benchmark containers")
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except (BenchError, subprocess.TimeoutExpired) as e:
        print(f"bench_node_roles: {e}", file=sys.stderr)
        sys.exit(1)
