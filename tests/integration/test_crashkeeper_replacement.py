"""cloud58-crashkeeper marks a crashed pod Failed and its Deployment replaces it.

A real control plane (etcd, kube-apiserver, kube-controller-manager, kube-scheduler) with one
kwok node runs a Deployment of one pod that opted in (``cloud58.io/crash``). kwok plays the
kubelet for the API; the container that "is" that pod runs in a private containerd
(``lab/cloud58_lab/crashlab.py``) with the CRI's pod labels. The agent's ``capture`` keeps the
site and patches the Pod's status through the apiserver: the pod is Failed with reason
CrashPreserved, and the real ReplicaSet controller starts a replacement that becomes Running.
The network cut is proven in tests/network/test_crashkeeper.py; here the container has no veth.
"""

from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path

import pytest
from kubernetes import client as k8s
from kubernetes import config as k8s_config

from cloud58_lab import programs
from cloud58_lab.crashlab import CrashLab

REPO = Path(__file__).resolve().parents[2]
AGENT = REPO / "collections/ansible_collections/cloud58/platform/agents/cloud58_crashkeeper.py"
CRASH = json.dumps({"app": "shop", "dump": ["sh", "-c", "echo goroutine 1 [running]"]})
WAIT = 45  # a guard that turns a hang into a failure; no duration is asserted


def _eventually(check, what: str):
    deadline = time.monotonic() + WAIT
    while True:
        got = check()
        if got:
            return got
        if time.monotonic() > deadline:
            pytest.fail(f"{what}: still {got!r}", pytrace=False)
        time.sleep(0.2)


def _running(core: k8s.CoreV1Api) -> list[str]:
    pods = core.list_namespaced_pod("default", label_selector="app=shop").items
    return sorted(p.metadata.name for p in pods if p.status.phase == "Running")


def test_crashed_pod_is_marked_failed_and_replaced(kube_cluster_factory, tmp_path):
    cset = kube_cluster_factory(["cr1"], controllers=True, kwok_nodes=1)
    core = k8s.CoreV1Api(k8s_config.new_client_from_config(config_file=str(cset.kubeconfig), context="cr1"))
    deployment = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "shop", "namespace": "default"},
        "spec": {
            "replicas": 1,
            "selector": {"matchLabels": {"app": "shop"}},
            "template": {
                "metadata": {"labels": {"app": "shop"}, "annotations": {"cloud58.io/crash": CRASH}},
                "spec": {"containers": [{"name": "app", "image": "registry.invalid/shop:1"}]},
            },
        },
    }
    cset["cr1"].kubectl("apply", "-f", "-", stdin=json.dumps(deployment))
    [first] = _eventually(lambda: _running(core), "a Running pod of shop")

    with CrashLab() as lab:
        lab.start(
            "shop-app",
            "echo serving; exec sleep 1000",
            f"default/{first}",
            annotations={"cloud58.io/crash": CRASH},
        )
        done = subprocess.run(
            programs.argv(
                "python3",
                AGENT,
                "capture",
                "--container-id",
                "shop-app",
                "--address",
                lab.address,
                "--root",
                tmp_path / "crash",
                "--pod-logs",
                lab.pod_logs,
                "--max-bytes",
                "64M",
                "--min-free-bytes",
                "0",
                "--kubeconfig",
                cset.kubeconfig,
                "--context",
                "cr1",
            ),
            capture_output=True,
            text=True,
            check=False,
        )
    assert (done.returncode, done.stderr) == (0, "")
    result = json.loads(done.stdout)
    assert result["pod_failed"] == "Failed"
    assert (Path(result["site"]) / "dump").read_text() == "goroutine 1 [running]\n"
    crashed = core.read_namespaced_pod_status(first, "default").status
    assert (crashed.phase, crashed.reason) == ("Failed", "CrashPreserved")
    assert crashed.message == (
        f"container app was failing (still running); crash site {result['site']}; "
        "no veth found to take down by cloud58-crashkeeper"
    )
    replacement = _eventually(lambda: [n for n in _running(core) if n != first], "a Running replacement")
    assert len(replacement) == 1
    cset["cr1"].kubectl("delete", "deployment", "shop", "-n", "default")
