# -*- coding: utf-8 -*-
# Copyright: cloud58 platform team
# Apache License 2.0
"""playbooks/site.yml on a lab datacenter, from empty hosts; its no-op rerun with the
repository's ansible.cfg and with Ansible's defaults; and the scale-out of one minion in a
datacenter of 5 and of 20 minions (issue #12 item 6).

The datacenter is lab2 of inventories/lab, its hosts as systemd containers at the plan's
addresses (lab/cloud58_lab/staticpods.py, the hosts of `make lab` and the integration tier):

* ``full`` (``make bench``): every host of lab2 (3 masters, 2 minions, 2 LVS directors),
  site.yml from empty hosts, the masters' static pods, the second run that checks health
  and writes the identity object; then the no-op reruns, three of each, alternating.
  Without the stages consul, consul_sync and gateway: lab2 is a secondary Consul
  datacenter, whose tokens are created through the primary's servers (lab1's, not started
  here), and the gateway's sync needs its token;
* ``ci`` (``make test``): site.yml limited to the two minions (the nodes stage and the join;
  the control plane and the directors are left to the integration tier's lab, which runs a
  whole datacenter), one no-op rerun of each kind. Without the stages consul and logs: a
  minion's Consul agent reports itself started only once it has joined a server, and its
  journal shipper sends to the log store on a master, neither of which runs at this size.

Both sizes then add minions the lab has no container for to the inventory (the plan has 5,
then 20 minions; their certificates are issued first, untimed, as a datacenter provisioned
earlier has them) and scale out one new minion, a fresh container, with ``--limit`` (the
Kubespray habit is ``scale.yml``, about 50 minutes for one node added to 50): the cost must
not depend on the datacenter's size, since the plan comes from the inventory and no other
host is contacted. Three scale-outs per size at ``full``, one at ``ci``.

Ansible's defaults: an ansible.cfg that sets only where the collection and its roles are
(forks 5, implicit full fact gathering, no fact cache, no pipelining), the hosts reached by
the lab's ``podman_nsenter`` connection as with the repository's ansible.cfg alone. The
third rerun is the repository's ansible.cfg under the mitogen strategy
(``ANSIBLE_STRATEGY=mitogen_linear``, the hosts reached by ``mitogen_setns``, standing in for
``mitogen_ssh`` on real hosts): what the lab runs, and so the first run and the scale-outs
too.

Prints:

    BENCH site_initial_lab_s <s>                 site.yml from empty hosts (one run)
    BENCH site_noop_rerun_s <s>                  the no-op rerun, repository ansible.cfg
    BENCH site_noop_rerun_defaults_s <s>         the same rerun with Ansible's defaults
    BENCH site_rerun_speedup <x>                 defaults / repository, per pair of runs
    BENCH site_noop_rerun_mitogen_s <s>          the same rerun, ansible.cfg + mitogen strategy
    BENCH site_rerun_mitogen_speedup <x>         defaults / mitogen, per pair of runs
    BENCH scale_out_one_node_5_minions_s <s>
    BENCH scale_out_one_node_20_minions_s <s>
    BENCH scale_out_20_vs_5_minions_ratio <x>    goal: within 20 % of 1
    BENCH lab_idle_cpu_cores <cores>             the host containers' CPU with nothing to do,
                                                 after the reruns (three windows of 10 s)
    BENCH lab_peak_memory_mib <MiB>              sum of the host containers' peak memory

Every no-op rerun must report changed=0 on every host, or the benchmark fails. The lab is
removed at the end, also on failure or SIGTERM.
"""

from __future__ import annotations

import os
import shutil
import signal
import statistics
import sys
import tempfile
import time
from pathlib import Path

import yaml

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from benchstats import bench_size, figure

from cloud58_lab import lab as lablib
from cloud58_lab import nodes, staticpods

DC = "lab2"
# Runs of each no-op rerun and of each scale-out, by CLOUD58_BENCH_SIZE.
REPEATS = {"full": 3, "ci": 1}
# inventories/lab: lab2's racks. Rack r1 is 198.19.0.0/26, r2 198.19.0.64/26; the lab's
# hosts use .11-.31 and .75-.95. Minions on paper take .40-.58 (r1) and .100-.120 (r2),
# the scale-out containers .22-.27 (r1). lab2's pod_cidr (a /21) holds the blocks of 20
# nodes only when the racks share them evenly, so minions on paper go to the rack with
# fewer minions.
PAPER = {
    "lab2-r1": [f"198.19.0.{40 + i}" for i in range(19)],
    "lab2-r2": [f"198.19.0.{100 + i}" for i in range(21)],
}
SCALE_OUT_RACK = "lab2-r1"
SCALE_OUT = [f"198.19.0.{22 + i}" for i in range(6)]


class BenchError(Exception):
    pass


def _cgroup_sum(lab: staticpods.StaticPodLab, controller: str, name: str) -> int:
    """Sum over the host containers of file ``name`` of their cgroup v1 ``controller``
    hierarchy (the hierarchy's directory named as /sys/fs/cgroup has it, e.g. cpu,cpuacct)."""
    total = 0
    for m in lab.hosts.values():
        pid = m.pid(lab.env)
        for line in Path(f"/proc/{pid}/cgroup").read_text().splitlines():
            _id, controllers, path = line.split(":", 2)
            if controller in controllers.split(","):
                total += int(Path("/sys/fs/cgroup", controllers, path.lstrip("/"), name).read_text())
    return total


def _peak_memory_mib(lab: staticpods.StaticPodLab) -> float:
    """Sum of the host containers' peak memory (cgroup v1 memory.max_usage_in_bytes)."""
    return _cgroup_sum(lab, "memory", "memory.max_usage_in_bytes") / 2**20


def _idle_cpu_cores(lab: staticpods.StaticPodLab, windows: int = 3, seconds: float = 10.0) -> list[float]:
    """CPU the host containers use with nothing asked of them: their CPU time (cgroup v1
    cpuacct.usage, every process of a container: systemd, containerd, the kubelet, the static
    pods, the agents) over ``windows`` windows of ``seconds``, in cores, one value each."""
    cores = []
    for _ in range(windows):
        before, start = _cgroup_sum(lab, "cpuacct", "cpuacct.usage"), time.monotonic()
        time.sleep(seconds)
        used = _cgroup_sum(lab, "cpuacct", "cpuacct.usage") - before
        cores.append(used / 1e9 / (time.monotonic() - start))
    return cores


def _clusters_for_20_minions() -> dict:
    """inventories/lab's clusters with lab2's pod pools sized without headroom: lab2's
    pod_cidr (a /21) holds the /26 blocks of 25 nodes only then. Both scale-out sizes run
    with it, so that they plan the same way."""
    path = lablib.REPO / "inventories/lab/group_vars/all/clusters.yml"
    clusters = yaml.safe_load(path.read_text())["cloud58_clusters"]
    clusters["lab2-k8s"]["pool_headroom_percent"] = 0
    return {"cloud58_clusters": clusters}


def _scale_out(lab, name: str, address: str, label: str, skip: list) -> float:
    host_vars = {"rack": SCALE_OUT_RACK, "address": address, "labels": {"function": "online"}}
    lab.add_host(name, "minions", host_vars)
    result = lab.ansible_playbook("site.yml", _clusters_for_20_minions(), "--limit", name, *skip)
    recap = nodes.checked_recap(result, label, expect_no_change=False)
    if sorted(recap) != [name]:
        raise BenchError(f"{label} touched other hosts: {sorted(recap)}")
    return result.seconds


def main() -> int:
    size = bench_size()
    repeats = REPEATS[size]
    print(f"# size {size}: {'every host of lab2' if size == 'full' else 'the minions of lab2'}")
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    problems = staticpods.remove_leftovers([DC], out=lambda m: print(f"# {m}"))
    if problems:
        raise BenchError(f"leftovers of an earlier lab2 run could not be removed: {problems}")
    top = Path(tempfile.mkdtemp(prefix="c58-bench-site-"))
    top.chmod(0o755)
    lab = staticpods.StaticPodLab(
        DC,
        staticpods.lab_plan(),
        top / "lab",
        lablib.bin_dir(),
        lablib.node_image(),
        with_nodes=True,
        mitogen=True,
    )
    defaults_cfg = top / "defaults.cfg"
    defaults_cfg.write_text(
        "# Ansible's defaults; only where the code is.\n[defaults]\n"
        f"collections_path = {lablib.REPO}/collections:{lablib.REPO}/lab/collections\n"
        f"roles_path = {lablib.REPO}/collections/ansible_collections/cloud58/platform/roles\n"
    )
    old_inotify = nodes.raise_inotify_instances(out=lambda m: print(f"# {m}"))
    try:
        if size == "full":
            # lab2 is a secondary Consul datacenter: its ACL tokens are created through the
            # primary's servers (lab1), which this benchmark does not start. Without the
            # stages that need them (docstring).
            skip = ["--skip-tags", "consul,consul_sync,gateway"]
            lab.provision(site_args=tuple(skip))
            initial = lab.first_run.seconds
            limit = skip
        else:
            lab.start()
            skip = ["--skip-tags", "consul,logs"]  # no master runs at this size (docstring)
            limit = ["--limit", ",".join(["localhost", *lab.minions]), *skip]
            first = lab.ansible_playbook("site.yml", {}, *limit)
            nodes.checked_recap(first, "site.yml from empty hosts", expect_no_change=False)
            initial = first.seconds
        print(figure("site_initial_lab_s", [initial], digits=1))
        tuned, defaults, mitogen = [], [], []
        for i in range(repeats):
            run = lab.ansible_playbook("site.yml", {}, *limit, mitogen=False)
            nodes.checked_recap(run, f"no-op rerun {i + 1} (repository ansible.cfg)", expect_no_change=True)
            tuned.append(run.seconds)
            run = lab.ansible_playbook("site.yml", {}, *limit, config=defaults_cfg, mitogen=False)
            nodes.checked_recap(run, f"no-op rerun {i + 1} (Ansible's defaults)", expect_no_change=True)
            defaults.append(run.seconds)
            run = lab.ansible_playbook("site.yml", {}, *limit, mitogen=True)
            nodes.checked_recap(run, f"no-op rerun {i + 1} (ansible.cfg, mitogen)", expect_no_change=True)
            mitogen.append(run.seconds)
        print(figure("site_noop_rerun_s", tuned, digits=1))
        print(figure("site_noop_rerun_defaults_s", defaults, digits=1))
        print(figure("site_rerun_speedup", [d / t for d, t in zip(defaults, tuned, strict=True)]))
        print(figure("site_noop_rerun_mitogen_s", mitogen, digits=1))
        print(figure("site_rerun_mitogen_speedup", [d / m for d, m in zip(defaults, mitogen, strict=True)]))
        # After the reruns: the lab has settled since site.yml started it.
        print(f"# idle CPU of the {len(lab.hosts)} host containers, three windows of 10 s")
        print(figure("lab_idle_cpu_cores", _idle_cpu_cores(lab)))

        scale = {}
        free = {rack: iter(addresses) for rack, addresses in PAPER.items()}
        paper = []  # (name, rack) of the minions on paper, in the inventory only
        per_rack = {rack: 0 for rack in PAPER}
        for host in lab.minions:
            per_rack[lab.plan["hosts"][host]["rack"]] += 1
        spare = iter(SCALE_OUT)
        provisioned = lab.minions[0]
        for total in (5, 20):
            runs = []
            for i in range(repeats):
                # Before the scale-out the datacenter has total - 1 minions: the lab's, the
                # earlier scale-outs' (they stay) and as many on paper as that takes.
                added = False
                while len(lab.minions) < total - 1:
                    added = True
                    rack = min(per_rack, key=lambda r: (per_rack[r], r))
                    name = f"{DC}-p{len(paper) + 1:02d}"
                    host_vars = {"rack": rack, "address": next(free[rack]), "labels": {"function": "online"}}
                    lab.add_inventory_host(name, "minions", host_vars)
                    paper.append((name, rack))
                    per_rack[rack] += 1
                if added:
                    # A datacenter that was provisioned earlier has its nodes' certificates
                    # already: issue the new paper minions' (the cluster PKI step of the
                    # join, run for one provisioned minion; not timed).
                    issue = lab.ansible_playbook(
                        "site.yml", _clusters_for_20_minions(), "--limit", provisioned, "--tags", "join"
                    )
                    nodes.checked_recap(
                        issue, f"certificates of the minions on paper ({total})", expect_no_change=False
                    )
                while len(lab.minions) > total - 1:
                    name, rack = paper.pop()
                    del lab.added["minions"][name]
                    per_rack[rack] -= 1
                name = f"{DC}-s{total:02d}{i + 1}"
                label = f"scale-out of {name} ({total} minions)"
                runs.append(_scale_out(lab, name, next(spare), label, skip))
                per_rack[SCALE_OUT_RACK] += 1
                if len(lab.minions) != total:
                    raise BenchError(
                        f"scale-out of {name}: the datacenter has {len(lab.minions)} minions, not {total}"
                    )
            scale[total] = runs
            print(figure(f"scale_out_one_node_{total}_minions_s", runs, digits=1))
        print(
            figure(
                "scale_out_20_vs_5_minions_ratio",
                [statistics.median(scale[20]) / statistics.median(scale[5])],
            )
        )
        print(figure("lab_peak_memory_mib", [_peak_memory_mib(lab)], digits=0))
    finally:
        problems = lab.close()
        nodes.restore_inotify_instances(old_inotify, out=lambda m: print(f"# {m}"))
        if problems:
            print(f"# clean-up problems, kept {top}: {problems}")
        else:
            shutil.rmtree(top, ignore_errors=True)
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except (BenchError, nodes.NodesError, staticpods.StaticPodLabError, lablib.LabError) as e:
        print(f"bench_site: {e}", file=sys.stderr)
        sys.exit(1)
