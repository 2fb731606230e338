"""`make lab` end to end, in a state directory and namespace prefix of the test's own."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest

from cloud58_lab import controlplane, lab


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
    lab.down(state_dir, out=lines.append)
    shutil.rmtree(top, ignore_errors=True)


def _namespaces(prefix: str) -> list[str]:
    out = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True, check=True).stdout
    return sorted(line.split()[0] for line in out.splitlines() if line.startswith(prefix))


def test_lab_up_serves_every_lab_cluster_and_down_removes_everything(lab_run):
    state_dir, prefix, lines = lab_run
    assert lab.up(state_dir=state_dir, out=lines.append, net_prefix=prefix) == 0

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

    assert lab.down(state_dir, out=lines.append) == 0
    assert not state_dir.exists()
    assert _namespaces(prefix) == []
    assert [pid for pid in pids if _running(pid)] == []


def _running(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False
