"""`make lab` end to end, in a state directory, namespace prefix and container prefix of the
test's own: control planes, reconciled clusters, the BGP fabric, and the lab hosts as
containers that got the node roles (labels from the plan in each kubelet's flags)."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest

from cloud58_lab import controlplane, lab, nodes


@pytest.fixture
def lab_run(upstream_bin_dir, monkeypatch):
    monkeypatch.setenv("CLOUD58_BIN_DIR", str(upstream_bin_dir))
    # FRR runs as its own user: its directories must be reachable, unlike pytest's tmp_path
    top = Path(tempfile.mkdtemp(prefix="c58-lab-test-"))
    top.chmod(0o755)
    state_dir = top / "lab"
    prefix = f"c58lt{os.getpid() % 100000}-"
    lines: list[str] = []
    yield state_dir, prefix, lines
    # lab.down removes the containers by the names in its state; these are the fallback.
    names = [f"{prefix}{h}" for h in nodes.node_hosts(lab.lab_plan(lab.REPO / "inventories/lab"))]
    nodes.remove_containers(names, nodes.podman_env())
    lab.down(state_dir, out=lines.append)
    shutil.rmtree(top, ignore_errors=True)


def _namespaces(prefix: str) -> list[str]:
    out = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True, check=True).stdout
    return sorted(line.split()[0] for line in out.splitlines() if line.startswith(prefix))


def test_lab_up_serves_every_lab_cluster_and_down_removes_everything(lab_run):
    state_dir, prefix, lines = lab_run
    assert lab.up(state_dir=state_dir, out=lines.append, net_prefix=prefix, node_prefix=prefix) == 0

    cset = controlplane.ClusterSet.load(state_dir / "controlplanes")
    assert sorted(cset) == ["lab1-k8s", "lab2-k8s"]
    for name in cset:
        identity = cset[name].api("GET", "/api/v1/namespaces/kube-system/configmaps/cloud58-identity")
        assert identity["data"]["cluster"] == name
        out = cset[name].kubectl("get", "namespace", "cloud58-system", "-o", "name")
        assert out.stdout.strip() == "namespace/cloud58-system"
    sessions = [re.match(r"\s*(\S+): (\d+)/(\d+) sessions Established", line) for line in lines]
    sessions = [m.groups() for m in sessions if m]
    # every router and node of both datacenters, each with all its sessions up
    assert len(sessions) == 20
    assert [s for s in sessions if s[1] != s[2] or s[1] == "0"] == []
    pids = [pid for comps in cset.pids().values() for pid in comps.values()]
    namespaces = _namespaces(prefix)
    assert len(namespaces) > 10

    plan = lab.lab_plan(lab.REPO / "inventories/lab")
    hosts = nodes.node_hosts(plan)
    # masters, minions and LVS directors of both datacenters (inventories/lab/hosts.yml)
    assert hosts == [
        *("lab1-lvs1", "lab1-lvs2", "lab1-m1", "lab1-m2", "lab1-m3", "lab1-w1", "lab1-w2"),
        *("lab2-lvs1", "lab2-lvs2", "lab2-m1", "lab2-m2", "lab2-m3", "lab2-w1", "lab2-w2"),
    ]
    recap = json.loads((state_dir / "state.json").read_text())["nodes"]["recap"]
    assert sorted(recap) == hosts
    assert [h for h, r in recap.items() if r["failed"] or r["unreachable"] or not r["changed"]] == []
    assert any(line.startswith("nodes: 14 containers given the node roles") for line in lines)
    env = nodes.podman_env()
    # What inventories/lab/hosts.yml says of these hosts, written out: zone = rack, region = dc.
    expected_labels = {
        "lab1-w2": {
            "cloud58.io/function": "online",
            "cloud58.io/location": "lab1",
            "cloud58.io/rack": "lab1-r2",
            "topology.kubernetes.io/region": "lab1",
            "topology.kubernetes.io/zone": "lab1-r2",
        },
        "lab2-m1": {
            "cloud58.io/function": "master",
            "cloud58.io/location": "lab2",
            "cloud58.io/rack": "lab2-r1",
            "topology.kubernetes.io/region": "lab2",
            "topology.kubernetes.io/zone": "lab2-r1",
        },
    }
    for host, expected in expected_labels.items():  # LVS directors run no kubelet
        flags = subprocess.run(
            ["podman", "exec", prefix + host, "cat", "/etc/kubernetes/kubelet.env"],
            capture_output=True, text=True, env=env, check=True,
        ).stdout  # fmt: skip
        labels = dict(
            kv.split("=", 1)
            for kv in re.search(r"^KUBELET_NODE_LABELS=(\S+)$", flags, re.M).group(1).split(",")
        )
        assert labels == expected

    assert lab.down(state_dir, out=lines.append) == 0
    assert not state_dir.exists()
    assert _namespaces(prefix) == []
    assert [pid for pid in pids if controlplane.proc_start_time(pid) is not None] == []
    left = subprocess.run(
        ["podman", "ps", "-a", "--format", "{{.Names}}", "--filter", f"name=^{prefix}"],
        capture_output=True, text=True, env=env, check=True,
    ).stdout.split()  # fmt: skip
    assert left == []
