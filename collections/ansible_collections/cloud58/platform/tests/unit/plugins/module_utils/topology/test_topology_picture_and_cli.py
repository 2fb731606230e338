# -*- coding: utf-8 -*-
# Copyright: cloud58 platform team
# Apache License 2.0
"""The datacenter picture (DOT source, SVG via Graphviz) and the two scripts over the planner."""

from __future__ import annotations

import html
import json
import os
import shutil
import subprocess
import sys

import pytest

from ansible_collections.cloud58.platform.plugins.module_utils.topology import plan_paths
from ansible_collections.cloud58.platform.plugins.module_utils.topology.dot import render_dot

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), *([".."] * 9)))
LAB = os.path.join(REPO, "inventories", "lab")
BJ1 = os.path.join(REPO, "inventories", "bj1")


@pytest.fixture(scope="module")
def lab_plan():
    return plan_paths([LAB])


@pytest.mark.parametrize(
    ("datacenter", "expected"),
    [
        pytest.param(
            "lab1",
            [
                # core router, racks with subnet and node AS, ToRs with their AS
                '"lab1-core1" [label="lab1-core1\\ncore AS 65100\\n198.18.1.30"',
                'label="rack lab1-r1\\n198.18.0.0/26  node AS 65111\\npods lab1-k8s: 198.18.16.0/23"',
                '"lab1-r2-tor2" [label="lab1-r2-tor2\\nToR AS 65122\\n198.18.0.66"',
                # masters (which are also events etcd and Consul servers in the lab)
                '"lab1-m2" [label="lab1-m2\\nmaster + events etcd + Consul server\\n198.18.0.75"',
                # BGP sessions: host-ToR, minions summarised, ToR-core with both AS numbers
                '"lab1-r1-tor1" -> "lab1-m1" [style=dashed];',
                '"lab1-r2-tor1" -> "lab1-r2/minions" [style="dashed", label="1 BGP"];',
                '"lab1-core1" -> "lab1-r1-tor2" [label="65121-65100", color="#6a51a3"];',
                # VIPs and the directors announcing them
                '"vip/lab1-k8s-api" [label="VIP lab1-k8s-api\\n198.18.2.1:6443"',
                '"lab1-lvs2" -> "vip/lab1-ingress" [style="dotted", color="#1f77b4", label="BGP"];',
                "cluster lab1-k8s: API https://api.lab1-k8s.lab.cloud58.test:6443 (VIP 198.18.2.1)",
            ],
            id="lab1-ebgp",
        ),
        pytest.param(
            "lab2",
            [
                "BGP route_reflector, core AS 65200",
                '"lab2-r1-tor1" [label="lab2-r1-tor1\\nToR AS 65211\\n198.19.0.1"',
                '"lab2-core1" -> "lab2-r2-tor1" [label="65212-65200", color="#6a51a3"];',
            ],
            id="lab2-route-reflector",
        ),
    ],
)
def test_dot_source_shows_racks_tors_as_numbers_sessions_vips_masters(lab_plan, datacenter, expected):
    source = render_dot(lab_plan, datacenter)
    for fragment in expected:
        assert fragment in source
    assert source == render_dot(lab_plan, datacenter)  # deterministic
    assert "lab2" not in source if datacenter == "lab1" else "lab1-" not in source


def test_minions_of_a_rack_are_one_box():
    plan = plan_paths([BJ1])
    source = render_dot(plan, "bj1")
    assert '"bj1-r06/minions" [label="17 minions\\n10.16.6.101 - .117\\ninfra"' in source
    assert '"bj1-node-' not in source
    assert source.count('subgraph "cluster_bj1-r') == 6


def test_unknown_datacenter(lab_plan):
    with pytest.raises(KeyError):
        render_dot(lab_plan, "bj1")


# Graphviz comes with make setup-apt; without it the script says so and the test fails.
def test_topology_script_writes_an_svg(tmp_path):
    out = tmp_path / "lab1.svg"
    run = subprocess.run(
        [sys.executable, os.path.join(REPO, "scripts", "topology.py"), "--dc", "lab1", "--out", str(out)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert run.returncode == 0, run.stderr
    assert run.stdout.strip() == str(out)
    svg = html.unescape(out.read_text())  # Graphviz writes '-' as &#45;
    assert svg.startswith("<?xml")
    assert "<svg" in svg
    for text in ("lab1-r1-tor1", "ToR AS 65121", "lab1-m3", "VIP lab1-ingress"):
        assert text in svg
    assert (tmp_path / "lab1.dot").read_text() == render_dot(plan_paths([LAB]), "lab1")


@pytest.mark.parametrize(
    ("args", "message"),
    [
        pytest.param(
            ["--dc", "nope"],
            "topology: no inventory under {repo}/inventories defines datacenter 'nope'\n",
            id="unknown-dc",
        ),
        pytest.param(
            ["--dc", "bj1", "--inventory", LAB],
            f"topology: {LAB} does not define datacenter 'bj1'\n",
            id="dc-not-in-that-inventory",
        ),
    ],
)
def test_topology_script_errors(tmp_path, args, message):
    run = subprocess.run(
        [
            sys.executable,
            os.path.join(REPO, "scripts", "topology.py"),
            *args,
            "--out",
            str(tmp_path / "x.svg"),
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    assert run.returncode == 1
    assert run.stderr == message.format(repo=REPO)


def test_plan_script_prints_the_canonical_plan():
    run = subprocess.run(
        [sys.executable, os.path.join(REPO, "scripts", "plan.py"), LAB],
        capture_output=True,
        text=True,
        check=False,
    )
    assert run.returncode == 0, run.stderr
    assert run.stdout == plan_paths([LAB]).to_json()


def test_plan_script_summary_and_host():
    script = os.path.join(REPO, "scripts", "plan.py")
    summary = subprocess.run(
        [sys.executable, script, "--summary", BJ1, LAB], capture_output=True, text=True, check=False
    )
    assert summary.stdout.splitlines() == [
        "bj1 (north): 6 racks, 113 hosts, clusters bj1-k8s, 2 LVS directors, 3 VIPs, 3 Consul servers",
        "lab1 (lab): 2 racks, 7 hosts, clusters lab1-k8s, 2 LVS directors, 2 VIPs, 3 Consul servers",
        "lab2 (lab): 2 racks, 7 hosts, clusters lab2-k8s, 2 LVS directors, 2 VIPs, 3 Consul servers",
    ]
    host = subprocess.run(
        [sys.executable, script, "--host", "lab1-w1", LAB], capture_output=True, text=True, check=False
    )
    assert json.loads(host.stdout)["pod_pool"] == "198.18.16.0/23"


def test_plan_script_reports_problems_without_a_traceback(tmp_path):
    broken = tmp_path / "lab"
    shutil.copytree(LAB, broken)
    path = broken / "group_vars" / "all" / "clusters.yml"
    path.write_text(path.read_text().replace("max_pods: 32", "max_pods: 65", 1))
    run = subprocess.run(
        [sys.executable, os.path.join(REPO, "scripts", "plan.py"), str(broken)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert run.returncode == 1
    assert run.stdout == ""
    assert run.stderr == (
        "plan.py: the inventory has 1 problem:\n"
        "  - datacenter 'lab1', cluster 'lab1-k8s': pod_block_size = 26: a /26 block holds 64 addresses, "
        "fewer than max_pods 65; use /25 or less [pod-block-too-small]\n"
    )


def test_plan_bytes_do_not_depend_on_the_hash_seed():
    script = os.path.join(REPO, "scripts", "plan.py")
    outputs = set()
    for seed in ("1", "2"):
        env = dict(os.environ, PYTHONHASHSEED=seed)
        run = subprocess.run(
            [sys.executable, script, LAB, BJ1], capture_output=True, text=True, env=env, check=True
        )
        outputs.add(run.stdout)
    assert len(outputs) == 1
