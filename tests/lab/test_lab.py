"""`make lab` end to end, through the front door, on one lab datacenter (lab2: lab1 is
provisioned the same way by tests/integration/test_control_plane_lab.py; each costs about
ten minutes, so this one is a tier of its own, `make lab-e2e`, that CI runs beside the
integration tier): its hosts as containers at the plan's addresses provisioned by
playbooks/site.yml, the cluster that the control_plane role installed reached through a
master's api_endpoint, real kubelets on the minions registering Ready Nodes, the rendered
objects reconciled into that cluster (the Nodes get the plan's AS-number annotations), the
BGP fabric, the status table naming its stand-ins; then remove-node.yml drains and deletes
lab2-w2's Node and cleans its kubelet; `down` removes everything, by name and PID."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

import pytest

from cloud58_lab import controlplane, lab, nodes, programs, staticpods

DC = "lab2"
# inventories/lab/hosts.yml: the hosts of lab2, and its minions (function, rack).
HOSTS = ["lab2-lvs1", "lab2-lvs2", "lab2-m1", "lab2-m2", "lab2-m3", "lab2-w1", "lab2-w2"]
MINIONS = {"lab2-w1": ("ingress", "lab2-r1"), "lab2-w2": ("online", "lab2-r2")}
# clusters/lab2-k8s/cluster.yml: node_annotations of the minions.
AS_NUMBERS = {"lab2-w1": "65211", "lab2-w2": "65212"}


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
    print("\n" + "\n".join(lines))  # what `make lab` printed: the status table and step times
    # The host containers and network have fixed names; this is the fallback.
    staticpods.down(DC, top / "fallback")
    shutil.rmtree(top, ignore_errors=True)


def _in_node(container: str, env: dict, *argv: str) -> subprocess.CompletedProcess:
    return staticpods.podman_exec(container, argv, env=env, check=False)


def _kubectl(state_dir: Path, *args: str) -> str:
    kubeconfig = json.loads((state_dir / "state.json").read_text())["kubeconfig"]
    argv = programs.argv("kubectl", "--kubeconfig", kubeconfig, "--context", "lab2-k8s", *args)
    return subprocess.run(argv, capture_output=True, text=True, check=True, timeout=60).stdout


def _nodes(state_dir: Path) -> dict:
    items = json.loads(_kubectl(state_dir, "get", "nodes", "-o", "json"))["items"]
    return {n["metadata"]["name"]: n for n in items}


def _ready_nodes(state_dir: Path) -> list[str]:
    return sorted(
        name
        for name, node in _nodes(state_dir).items()
        if any(c["type"] == "Ready" and c["status"] == "True" for c in node["status"]["conditions"])
    )


# What the kubelet role and the join stage wrote on a node, and remove-node.yml takes away
# (containerd stays).
KUBELET_FILES = (
    "/etc/systemd/system/kubelet.service",
    "/etc/kubernetes/kubelet.env",
    "/etc/kubernetes/kubelet.conf",
    "/etc/kubernetes/pki/kubelet-client.crt",
    "/etc/kubernetes/pki/kubelet-client.key",
    "/var/lib/kubelet",
    "/var/lib/kubelet/config.yaml",
    "/usr/local/bin/kubelet",
)


def _remove_node(state_dir: Path, host: str, *args: str) -> subprocess.CompletedProcess:
    """playbooks/remove-node.yml on the lab, reaching the containers as site.yml did."""
    workdir = Path(json.loads((state_dir / "state.json").read_text())["datacenters"][DC]["workdir"])
    env = dict(
        os.environ,
        CONTAINERS_CONF=str(workdir / "containers.conf"),
        ANSIBLE_CONFIG=str(lab.REPO / "ansible.cfg"),
        ANSIBLE_NOCOLOR="1",
    )
    kubeconfig = json.loads((state_dir / "state.json").read_text())["kubeconfig"]
    inventory = ("-i", lab.REPO / "inventories/lab", "-i", workdir / "connection.yml")
    extra = ("-e", f"remove_node={host}", "-e", f"kubeconfig={kubeconfig}")
    argv = programs.argv(
        "ansible-playbook", *inventory, lab.REPO / "playbooks/remove-node.yml", *extra, *args
    )
    return subprocess.run(argv, capture_output=True, text=True, env=env, cwd=lab.REPO, check=False)


def _kubelet_unit(container: str, env: dict) -> dict:
    unit = _in_node(
        container, env, "systemctl", "show", "-p", "LoadState,ActiveState,UnitFileState", "kubelet.service"
    )
    return dict(line.split("=", 1) for line in unit.stdout.split())


def _present(container: str, env: dict, paths) -> list[str]:
    return [p for p in paths if _in_node(container, env, "test", "-e", p).returncode == 0]


def check_remove_node(state_dir: Path) -> None:
    """remove-node.yml takes lab2-w2 out of lab2-k8s and cleans its kubelet: nothing in check
    mode, everything for real, nothing the second time."""
    env = nodes.podman_env()
    container = "c58cp-lab2-w2"
    before = sorted(_nodes(state_dir))
    assert before == ["lab2-w1", "lab2-w2"]

    check = _remove_node(state_dir, "lab2-w2", "--check", "--diff")
    assert check.returncode == 0, check.stdout[-4000:] + check.stderr
    assert sorted(h for h, r in nodes.recap(check.stdout).items() if r["changed"]) == ["lab2-w2", "localhost"]
    assert sorted(_nodes(state_dir)) == before
    assert _kubelet_unit(container, env) == {
        "LoadState": "loaded", "ActiveState": "active", "UnitFileState": "enabled"
    }  # fmt: skip
    assert _present(container, env, KUBELET_FILES) == list(KUBELET_FILES)

    first = _remove_node(state_dir, "lab2-w2")
    assert first.returncode == 0, first.stdout[-4000:] + first.stderr
    assert sorted(h for h, r in nodes.recap(first.stdout).items() if r["changed"]) == ["lab2-w2", "localhost"]
    assert sorted(_nodes(state_dir)) == ["lab2-w1"]
    assert _kubelet_unit(container, env) == {
        "LoadState": "not-found", "ActiveState": "inactive", "UnitFileState": ""
    }  # fmt: skip
    assert _present(container, env, KUBELET_FILES) == []
    # containerd stays
    assert _in_node(container, env, "systemctl", "is-active", "containerd.service").stdout.strip() == "active"

    second = _remove_node(state_dir, "lab2-w2")
    assert second.returncode == 0, second.stdout[-4000:] + second.stderr
    again = nodes.recap(second.stdout)
    assert sorted(again) == ["lab2-w2", "localhost"]
    assert [h for h, r in again.items() if r["changed"] or r["failed"] or r["unreachable"]] == []


def _namespaces(prefix: str) -> list[str]:
    out = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True, check=True).stdout
    return sorted(line.split()[0] for line in out.splitlines() if line.startswith(prefix))


def test_make_lab_provisions_a_datacenter_through_site_yml_and_down_removes_everything(lab_run):
    state_dir, prefix, lines = lab_run
    started = time.monotonic()
    assert lab.up(state_dir=state_dir, out=lines.append, net_prefix=prefix, datacenters=[DC]) == 0
    lines.append(f"(lab up in {time.monotonic() - started:.0f} s)")
    state = json.loads((state_dir / "state.json").read_text())

    # site.yml changed every host of the datacenter and failed none (up raises otherwise).
    changed = state["datacenters"][DC]["changed"]
    assert sorted(changed) == [*HOSTS, "localhost"]
    assert [h for h in HOSTS if changed[h] == 0] == []

    # The status table: the cluster the control_plane role installed, through lab2-m2's
    # api_endpoint (198.19.0.75:8443), at the pinned version, with its identity.
    header = next(
        i for i, line in enumerate(lines) if line.split()[:4] == ["cluster", "datacenter", "api", "endpoint"]
    )
    row = lines[header + 1].split()
    assert row[:4] + row[-1:] == ["lab2-k8s", "lab2", "https://198.19.0.75:8443", "v1.36.3", "lab2-k8s"]
    assert "stand-ins in use:" in lines

    # The minions' real kubelets registered Ready Nodes with the plan's labels; reconcile
    # gave them the plan's AS numbers.
    def joined():
        return _ready_nodes(state_dir) == sorted(MINIONS)

    deadline = time.monotonic() + 240
    while not joined():
        if time.monotonic() > deadline:
            pytest.fail(
                f"the minions' Nodes are not Ready after 240 s: {_ready_nodes(state_dir)}", pytrace=False
            )
        time.sleep(2)
    nodes_now = _nodes(state_dir)
    for name, (function, rack) in MINIONS.items():
        labels = nodes_now[name]["metadata"]["labels"]
        assert {
            k: v for k, v in labels.items() if k.startswith(("cloud58.io/", "topology.kubernetes.io/"))
        } == {
            "cloud58.io/function": function,
            "cloud58.io/location": DC,
            "cloud58.io/rack": rack,
            "topology.kubernetes.io/region": DC,
            "topology.kubernetes.io/zone": rack,
        }
        annotations = nodes_now[name]["metadata"].get("annotations", {})
        assert annotations.get("projectcalico.org/ASNumber") == AS_NUMBERS[name]
    assert _kubectl(state_dir, "get", "namespace", "cloud58-system", "-o", "name").strip() == (
        "namespace/cloud58-system"
    )

    # The BGP fabric: every router and node of lab2 with all its sessions up.
    sessions = [re.match(r"\s*(\S+): (\d+)/(\d+) sessions Established", line) for line in lines]
    sessions = [m.groups() for m in sessions if m]
    assert len(sessions) == 10
    assert [s for s in sessions if s[1] != s[2] or s[1] == "0"] == []
    pids = [p["pid"] for p in state["net"]["processes"]]
    assert len(_namespaces(prefix)) > 5

    check_remove_node(state_dir)

    started = time.monotonic()
    assert lab.down(state_dir, out=lines.append) == 0
    lines.append(f"(lab down in {time.monotonic() - started:.0f} s)")
    assert not state_dir.exists()
    assert _namespaces(prefix) == []
    assert [pid for pid in pids if controlplane.proc_start_time(pid) is not None] == []
    left = subprocess.run(
        ["podman", "ps", "-a", "--format", "{{.Names}}", "--filter", "name=^c58cp-lab2"],
        capture_output=True, text=True, env=nodes.podman_env(), check=True,
    ).stdout.split()  # fmt: skip
    assert left == []
