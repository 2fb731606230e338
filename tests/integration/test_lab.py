"""`make lab` end to end, in a state directory, namespace prefix and container prefix of the
test's own: control planes, reconciled clusters, the BGP fabric, and the lab hosts as
containers that got the node roles: a running, healthy kubelet on every master and minion
with the plan's labels on its command line, none on the LVS directors; then remove-node.yml
takes lab1-w2 out of lab1-k8s and cleans its kubelet."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest

from cloud58_lab import controlplane, lab, nodes, programs


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


# What inventories/lab/hosts.yml says of the hosts with a kubelet (masters and minions),
# written out: function = the host's label (masters: master), location and region = the
# datacenter, rack and zone = the host's rack.
KUBELET_HOSTS = {
    "lab1-m1": ("master", "lab1", "lab1-r1"),
    "lab1-m2": ("master", "lab1", "lab1-r2"),
    "lab1-m3": ("master", "lab1", "lab1-r1"),
    "lab1-w1": ("ingress", "lab1", "lab1-r1"),
    "lab1-w2": ("online", "lab1", "lab1-r2"),
    "lab2-m1": ("master", "lab2", "lab2-r1"),
    "lab2-m2": ("master", "lab2", "lab2-r2"),
    "lab2-m3": ("master", "lab2", "lab2-r1"),
    "lab2-w1": ("ingress", "lab2", "lab2-r1"),
    "lab2-w2": ("online", "lab2", "lab2-r2"),
}
KUBELET_LABELS = {
    host: {
        "cloud58.io/function": function,
        "cloud58.io/location": dc,
        "cloud58.io/rack": rack,
        "topology.kubernetes.io/region": dc,
        "topology.kubernetes.io/zone": rack,
    }
    for host, (function, dc, rack) in KUBELET_HOSTS.items()
}
# LVS directors get the node roles but run no kubelet.
LVS_DIRECTORS = ("lab1-lvs1", "lab1-lvs2", "lab2-lvs1", "lab2-lvs2")
# The node image has python3, not curl.
HEALTHZ = (
    "import urllib.request as u; "
    "print(u.urlopen('http://127.0.0.1:10248/healthz', timeout=10).read().decode())"
)


def _in_node(container: str, env: dict, *argv: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        ["podman", "exec", container, *argv], capture_output=True, text=True, env=env, check=False
    )


def _kubelet(container: str, env: dict) -> dict:
    """The kubelet service of a lab node container: its state, what its healthz endpoint
    answers, and the command line of the running process (its labels from --node-labels=)."""
    active = _in_node(container, env, "systemctl", "is-active", "kubelet.service").stdout.strip()
    healthz = _in_node(container, env, "python3", "-c", HEALTHZ)
    # One exec: the PID and its command line from the same moment.
    cmdline = _in_node(
        container, env, "sh", "-c", "cat /proc/$(systemctl show -p MainPID --value kubelet.service)/cmdline"
    )
    argv = cmdline.stdout.split("\0")[:-1]
    flags = [a.removeprefix("--node-labels=") for a in argv if a.startswith("--node-labels=")]
    return {
        "active": active,
        "healthz": healthz.stdout.strip() or healthz.stderr.strip()[-300:],
        "argv": argv or [f"(no command line: {cmdline.stderr.strip()})"],
        "labels": dict(kv.split("=", 1) for flag in flags for kv in flag.split(",")),
    }


# What the kubelet role wrote on a node and remove-node.yml takes away (containerd stays).
KUBELET_FILES = (
    "/etc/systemd/system/kubelet.service",
    "/etc/kubernetes/kubelet.env",
    "/var/lib/kubelet",
    "/var/lib/kubelet/config.yaml",
    "/usr/local/bin/kubelet",
)


def _remove_node(state_dir: Path, host: str, *args: str) -> subprocess.CompletedProcess:
    """playbooks/remove-node.yml on the lab, reaching the containers as nodes.converge does."""
    env = dict(
        nodes.podman_env(),
        ANSIBLE_CONFIG=str(lab.REPO / "ansible.cfg"),
        ANSIBLE_NOCOLOR="1",
        ANSIBLE_COLLECTIONS_PATH=os.pathsep.join(
            [str(lab.REPO / "collections"), str(lab.REPO / "lab/collections")]
        ),
    )
    kubeconfig = json.loads((state_dir / "state.json").read_text())["kubeconfig"]
    inventory = ("-i", lab.REPO / "inventories/lab", "-i", state_dir / "nodes-overlay.yml")
    extra = ("-e", f"remove_node={host}", "-e", f"kubeconfig={kubeconfig}")
    argv = programs.argv(
        "ansible-playbook", *inventory, lab.REPO / "playbooks/remove-node.yml", *extra, *args
    )
    return subprocess.run(argv, capture_output=True, text=True, env=env, cwd=lab.REPO, check=False)


def _node_names(cluster) -> list[str]:
    return sorted(n["metadata"]["name"] for n in cluster.api("GET", "/api/v1/nodes")["items"])


def _kubelet_unit(container: str, env: dict) -> dict:
    unit = _in_node(
        container, env, "systemctl", "show", "-p", "LoadState,ActiveState,UnitFileState", "kubelet.service"
    )
    return dict(line.split("=", 1) for line in unit.stdout.split())


def _present(container: str, env: dict, paths) -> list[str]:
    return [p for p in paths if _in_node(container, env, "test", "-e", p).returncode == 0]


def check_remove_node(state_dir: Path, prefix: str) -> None:
    """remove-node.yml takes lab1-w2 out of lab1-k8s and cleans its kubelet: nothing in check
    mode, everything for real, nothing the second time."""
    cluster = controlplane.ClusterSet.load(state_dir / "controlplanes")["lab1-k8s"]
    env = nodes.podman_env()
    container = prefix + "lab1-w2"
    before = _node_names(cluster)
    assert {"lab1-w1", "lab1-w2"} <= set(before)

    check = _remove_node(state_dir, "lab1-w2", "--check", "--diff")
    assert check.returncode == 0, check.stdout[-4000:] + check.stderr
    assert sorted(h for h, r in nodes.recap(check.stdout).items() if r["changed"]) == ["lab1-w2", "localhost"]
    assert _node_names(cluster) == before
    assert _kubelet_unit(container, env) == {
        "LoadState": "loaded", "ActiveState": "active", "UnitFileState": "enabled"
    }  # fmt: skip
    assert _present(container, env, KUBELET_FILES) == list(KUBELET_FILES)

    first = _remove_node(state_dir, "lab1-w2")
    assert first.returncode == 0, first.stdout[-4000:] + first.stderr
    assert sorted(h for h, r in nodes.recap(first.stdout).items() if r["changed"]) == ["lab1-w2", "localhost"]
    assert _node_names(cluster) == [n for n in before if n != "lab1-w2"]
    assert _kubelet_unit(container, env) == {
        "LoadState": "not-found", "ActiveState": "inactive", "UnitFileState": ""
    }  # fmt: skip
    assert _present(container, env, KUBELET_FILES) == []
    # containerd stays
    assert _in_node(container, env, "systemctl", "is-active", "containerd.service").stdout.strip() == "active"

    second = _remove_node(state_dir, "lab1-w2")
    assert second.returncode == 0, second.stdout[-4000:] + second.stderr
    again = nodes.recap(second.stdout)
    assert sorted(again) == ["lab1-w2", "localhost"]
    assert [h for h, r in again.items() if r["changed"] or r["failed"] or r["unreachable"]] == []


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
    assert sorted([*KUBELET_LABELS, *LVS_DIRECTORS]) == hosts
    for host, labels in KUBELET_LABELS.items():
        kubelet = _kubelet(prefix + host, env)
        assert kubelet["active"] == "active", f"{host}: kubelet.service is {kubelet['active']}"
        assert kubelet["healthz"] == "ok", f"{host}: kubelet healthz answered {kubelet['healthz']!r}"
        assert kubelet["argv"][0] == "/usr/local/bin/kubelet"
        assert kubelet["labels"] == labels, host
    for host in LVS_DIRECTORS:
        unit = _in_node(
            prefix + host, env, "systemctl", "show", "-p", "LoadState,ActiveState", "kubelet.service"
        )
        state = dict(line.split("=", 1) for line in unit.stdout.split())
        assert state == {"LoadState": "not-found", "ActiveState": "inactive"}, host

    check_remove_node(state_dir, prefix)

    assert lab.down(state_dir, out=lines.append) == 0
    assert not state_dir.exists()
    assert _namespaces(prefix) == []
    assert [pid for pid in pids if controlplane.proc_start_time(pid) is not None] == []
    left = subprocess.run(
        ["podman", "ps", "-a", "--format", "{{.Names}}", "--filter", f"name=^{prefix}"],
        capture_output=True, text=True, env=env, check=True,
    ).stdout.split()  # fmt: skip
    assert left == []
