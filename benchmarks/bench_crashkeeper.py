#!/usr/bin/env python3
# -*- coding: utf-8 -*-
# Copyright: cloud58 platform team
# Apache License 2.0
"""Benchmark cloud58-crashkeeper's capture of a big dump against doing the same by hand.

A private containerd (Debian's, lab/cloud58_lab/crashlab.py) runs one container of the crash
lab's tiny image with the annotation ``cloud58.io/crash``; its dump command writes
``DUMP_MIB`` MiB to standard output (``head -c … /dev/zero``). Each run times:

* the agent: ``cloud58_crashkeeper.py capture`` as a program (Python's start included): the
  dump streamed out of the container into the crash site and hashed, the logs copied, the
  writable layer listed, the manifest written, old sites deleted beyond the budget;
* by hand, the way a user does it with ``kubectl cp`` (which is tar over exec): exec the dump
  into a file inside the container, ``tar cf -`` it out through a second exec into ``tar xf -``
  on the host, and copy the log file.

Prints (CLOUD58_BENCH_SIZE=full: 100 MiB, 5 runs each; ci or CI=true: 10 MiB, 3 runs):

    BENCH crashkeeper_capture_s <s>          median capture, with every run and the spread
    BENCH crashkeeper_manual_cp_s <s>        median of the manual way
    BENCH crashkeeper_capture_vs_manual_ratio <r>  the two medians' ratio
    BENCH crashkeeper_idle_rss_mib <MiB>     ``watch`` at idle, as the role runs it (``--kubeconfig``
                                             of a real kube-apiserver and ``--node``: it also
                                             watches the API's probe Events): resident memory of
                                             the agent and its ``ctr events`` child together
    BENCH crashkeeper_idle_cpu_cores <c>     their CPU time over IDLE_S seconds of idle watching
                                             (full: 30 s, ci: 10 s) divided by the seconds

The issue's goal for each agent: < 50 MiB RSS and < 0.01 core at idle.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path[:0] = [
    os.path.join(REPO, "collections"),
    os.path.join(REPO, "benchmarks"),
    os.path.join(REPO, "lab"),
]

from benchstats import bench_size, figure, upstream_bin_dir  # noqa: E402

AGENT = os.path.join(REPO, "collections/ansible_collections/cloud58/platform/agents/cloud58_crashkeeper.py")
SIZES = {"full": (100, 5), "ci": (10, 3)}  # MiB of dump, runs of each way
IDLE_S = {"full": 30, "ci": 10}
BENCH = "bench_crashkeeper"
CLUSTER = "ckbench"


def _rss_and_cpu(pids: list[int]) -> tuple[float, float]:
    """Resident MiB and CPU seconds (user + system) of ``pids`` together, from /proc."""
    rss, ticks = 0, 0
    for pid in pids:
        with open(f"/proc/{pid}/status", encoding="ascii") as handle:
            rss += next(int(line.split()[1]) for line in handle if line.startswith("VmRSS:"))
        with open(f"/proc/{pid}/stat", encoding="ascii") as handle:
            fields = handle.read().rsplit(")", 1)[1].split()
        ticks += int(fields[11]) + int(fields[12])
    return rss / 1024, ticks / os.sysconf("SC_CLK_TCK")


def idle(lab, programs, root: str, seconds: int) -> tuple[float, float]:
    """RSS (MiB) and cores of ``watch`` doing nothing for ``seconds`` after its start, with a
    kubeconfig of a real kube-apiserver (etcd and kube-apiserver of the pinned programs) and
    ``--node``, as the role's unit runs it."""
    from cloud58_lab.controlplane import start_clusters

    cset = start_clusters([CLUSTER], os.path.join(os.path.dirname(root), "clusters"), upstream_bin_dir(BENCH))
    watch = subprocess.Popen(
        programs.argv(
            "python3", AGENT, "watch", "--address", lab.address, "--root", root,
            "--pod-logs", lab.pod_logs, "--max-bytes", "64M", "--min-free-bytes", "0",
            "--kubeconfig", str(cset.kubeconfig), "--context", CLUSTER, "--node", "bench-node",
        ),
        stdout=subprocess.PIPE,
        text=True,
    )  # fmt: skip
    try:
        watch.stdout.readline()  # {"watching": ...}: started, ctr events and the Events watch running
        children = [int(p) for p in open(f"/proc/{watch.pid}/task/{watch.pid}/children").read().split()]  # noqa: SIM115
        pids = [watch.pid, *children]
        _, cpu_before = _rss_and_cpu(pids)
        time.sleep(seconds)
        rss, cpu_after = _rss_and_cpu(pids)
    finally:
        watch.terminate()
        watch.wait()
        cset.close()
    return rss, (cpu_after - cpu_before) / seconds


def main() -> int:
    from cloud58_lab import programs
    from cloud58_lab.crashlab import CrashLab

    size = "ci" if os.environ.get("CI") == "true" else bench_size()
    mib, runs = SIZES[size]
    print(f"size {size}: a {mib} MiB dump, {runs} runs of each way")
    dump = ["sh", "-c", f"head -c {mib << 20} /dev/zero"]
    work = tempfile.mkdtemp(prefix="c58crash-bench-")
    try:
        with CrashLab() as lab:
            annotation = json.dumps({"app": "bench", "dump": dump, "timeout_s": 600})
            log = lab.start(
                "bench",
                "echo started; exec sleep 100000",
                "bench/bench-0",
                annotations={"cloud58.io/crash": annotation},
            )
            agent_s, manual_s = [], []
            for run in range(runs):
                start = time.perf_counter()
                done = subprocess.run(
                    programs.argv(
                        "python3",
                        AGENT,
                        "capture",
                        "--container-id",
                        "bench",
                        "--address",
                        lab.address,
                        "--root",
                        os.path.join(work, "crash"),
                        "--pod-logs",
                        lab.pod_logs,
                        "--max-sites",
                        "1",
                        "--max-bytes",
                        f"{2 * mib + 16}M",
                        "--min-free-bytes",
                        "1G",
                    ),
                    capture_output=True,
                    text=True,
                    check=False,
                )
                agent_s.append(time.perf_counter() - start)
                if done.returncode != 0:
                    raise SystemExit(f"bench_crashkeeper: capture failed: {done.stderr.strip()}")
                files = {f["name"]: f["size"] for f in json.loads(done.stdout)["manifest"]["files"]}
                if files.get("dump") != mib << 20:
                    raise SystemExit(
                        f"bench_crashkeeper: the dump has {files.get('dump')} bytes, not {mib << 20}"
                    )

                target = os.path.join(work, f"manual-{run}")
                os.makedirs(target)
                start = time.perf_counter()
                lab.ctr(
                    "tasks", "exec", "--exec-id", f"m{run}a", "bench", "sh", "-c", f"{dump[2]} > /tmp/dump"
                )
                tar_out = subprocess.Popen(
                    programs.argv(
                        "ctr", "--address", lab.address, "--namespace", "k8s.io",
                        "tasks", "exec", "--exec-id", f"m{run}b", "bench",
                        "tar", "cf", "-", "-C", "/tmp", "dump",
                    ),
                    stdout=subprocess.PIPE,
                )  # fmt: skip
                subprocess.run(
                    programs.argv("tar", "xf", "-", "-C", target), stdin=tar_out.stdout, check=True
                )
                tar_out.stdout.close()
                if tar_out.wait() != 0:
                    raise SystemExit("bench_crashkeeper: tar out of the container failed")
                shutil.copy(log, target)
                manual_s.append(time.perf_counter() - start)
                if os.path.getsize(os.path.join(target, "dump")) != mib << 20:
                    raise SystemExit("bench_crashkeeper: the manual copy is incomplete")
                lab.ctr("tasks", "exec", "--exec-id", f"m{run}c", "bench", "sh", "-c", "echo > /tmp/dump")
                shutil.rmtree(target)
            rss, cores = idle(lab, programs, os.path.join(work, "idle"), IDLE_S[size])
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print(figure("crashkeeper_capture_s", agent_s))
    print(figure("crashkeeper_manual_cp_s", manual_s))
    median = sorted(agent_s)[len(agent_s) // 2] / sorted(manual_s)[len(manual_s) // 2]
    print(f"BENCH crashkeeper_capture_vs_manual_ratio {median:.2f}  # agent median / manual median")
    print(
        f"BENCH crashkeeper_idle_rss_mib {rss:.1f}  # watch (with --kubeconfig) + its ctr events, goal < 50"
    )
    print(f"BENCH crashkeeper_idle_cpu_cores {cores:.4f}  # over {IDLE_S[size]} s idle, goal < 0.01")
    return 0


if __name__ == "__main__":
    sys.exit(main())
