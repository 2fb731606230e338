"""playbooks/site.yml, the front door: its stages run alone by tag, and the routers stage writes
every ToR and core router's configuration, checked by FRR itself."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from cloud58_lab import programs
from cloud58_lab.nodes import recap

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[2]
PREFLIGHT = "Validate the inventory and plan its datacenters"
BASE = "Apply the base configuration to every host"
NODES = "Tune the kernel, install containerd and the kubelet on the Kubernetes nodes"
LVS_KERNEL = "Tune the kernel of the LVS directors"
STATIC_PODS = "Run etcd, events etcd, kube-apiserver, controller-manager and scheduler as static pods"
ENDPOINT = "Balance each cluster's apiservers on its masters"
ROUTERS = "Write the router configurations of each datacenter for the network team"
RECONCILE = "Reconcile clusters with clusters/"
ARGUMENT_CHECK = ": Validating arguments against arg spec "
ROUTER_NAMES = ["core1", "r1-tor1", "r1-tor2", "r2-tor1", "r2-tor2"]


def _site(*args: str) -> subprocess.CompletedProcess:
    env = dict(os.environ, ANSIBLE_CONFIG=str(REPO / "ansible.cfg"), ANSIBLE_NOCOLOR="1")
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    argv = programs.argv(
        "ansible-playbook", "-i", REPO / "inventories/lab", REPO / "playbooks/site.yml", *args
    )
    return subprocess.run(argv, capture_output=True, text=True, env=env, cwd=REPO, timeout=900, check=False)


def _plays_with_tasks(listing: str) -> list[str]:
    """The plays of an ``--list-tasks`` output that would run at least one task of their own.

    A role's argument check is tagged ``always`` by Ansible and is listed under every tag; it
    runs on the controller and touches no host, so it does not count."""
    plays: list[tuple[str, int]] = []
    for line in listing.splitlines():
        play = re.match(r"\s*play #\d+ \([^)]*\): (.*?)\tTAGS:", line)
        if play:
            plays.append((play.group(1), 0))
        elif plays and line.startswith("      ") and line.strip() and ARGUMENT_CHECK not in line:
            plays[-1] = (plays[-1][0], plays[-1][1] + 1)
    return [name for name, tasks in plays if tasks]


@pytest.mark.parametrize(
    ("tags", "plays"),
    [
        pytest.param(
            [],
            [PREFLIGHT, BASE, PREFLIGHT, NODES, LVS_KERNEL, PREFLIGHT, STATIC_PODS, ENDPOINT, ROUTERS],
            id="all-but-gitops",
        ),
        pytest.param(["--tags", "base"], [PREFLIGHT, BASE], id="base"),
        pytest.param(["--tags", "nodes"], [PREFLIGHT, PREFLIGHT, NODES, LVS_KERNEL], id="nodes"),
        pytest.param(
            ["--tags", "control_plane"], [PREFLIGHT, PREFLIGHT, STATIC_PODS, ENDPOINT], id="control-plane"
        ),
        pytest.param(["--tags", "routers"], [PREFLIGHT, ROUTERS], id="routers"),
        pytest.param(["--tags", "gitops"], [PREFLIGHT, RECONCILE], id="gitops-only-when-asked"),
    ],
)
def test_each_stage_runs_alone_by_its_tag(tags, plays):
    run = _site("--list-tasks", *tags)
    assert run.returncode == 0, run.stdout + run.stderr
    assert _plays_with_tasks(run.stdout) == plays


def test_routers_stage_writes_every_router_config_that_frr_accepts(tmp_path):
    first = _site("--tags", "routers", "-e", f"site_routers_dir={tmp_path}")
    assert first.returncode == 0, first.stdout[-4000:] + first.stderr
    written = sorted(str(p.relative_to(tmp_path)) for p in tmp_path.rglob("*") if p.is_file())
    assert written == sorted(
        f"{dc}/{dc}-{router}/{name}"
        for dc in ("lab1", "lab2")
        for router in ROUTER_NAMES
        for name in ("daemons", "frr.conf")
    )
    refused = {}
    for conf in sorted(tmp_path.rglob("frr.conf")):
        check = subprocess.run(
            programs.argv("vtysh", "-C", "-f", conf), capture_output=True, text=True, check=False
        )
        if check.returncode != 0:
            refused[str(conf.relative_to(tmp_path))] = check.stdout + check.stderr
    assert refused == {}
    # Only the controller was touched (per datacenter: the directories, then one looped write
    # per router), and a second run changes nothing.
    assert {h: r["changed"] for h, r in recap(first.stdout).items() if r["changed"]} == {"localhost": 12}
    second = _site("--tags", "routers", "-e", f"site_routers_dir={tmp_path}")
    assert second.returncode == 0, second.stdout[-4000:]
    assert {h: r["changed"] for h, r in recap(second.stdout).items() if r["changed"]} == {}
    # FRR's check is not a formality: a broken line is refused.
    broken = tmp_path / "broken.conf"
    broken.write_text((tmp_path / "lab1/lab1-core1/frr.conf").read_text() + "router bgp not-a-number\n")
    assert (
        subprocess.run(
            programs.argv("vtysh", "-C", "-f", broken), capture_output=True, check=False
        ).returncode
        != 0
    )
