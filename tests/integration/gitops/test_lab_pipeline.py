"""The lab path: render the lab clusters from inventories/lab and apps/, reconcile them, roll out."""

from __future__ import annotations

from pathlib import Path

import pytest

from ansible_collections.cloud58.platform.plugins.module_utils.gitops.pipeline import render_and_reconcile

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[3]
LAB = ["lab1-k8s", "lab2-k8s"]


def test_rendered_lab_clusters_are_accepted_by_real_api_servers_and_roll_out(kube_cluster_factory, tmp_path):
    cset = kube_cluster_factory(LAB, controllers=True, kwok_nodes=2)
    printed: list[str] = []
    result = render_and_reconcile(
        str(REPO),
        str(cset.kubeconfig),
        LAB,
        clusters_dir=str(tmp_path / "clusters"),
        wait_rollouts=True,
        wait_timeout=240,
        out=printed.append,
    )
    assert result["failed_clusters"] == [], "\n".join(result["summary"])
    for name in LAB:
        cluster = result["clusters"][name]
        # every rendered object but the identity (bootstrapped just before) was created
        assert cluster["counts"]["created"] == len(list((tmp_path / "clusters" / name).glob("*.yaml"))) - 1
        assert cluster["counts"]["failed"] == 0
        assert cluster["notes"] == [
            "identity bootstrapped: created ConfigMap kube-system/cloud58-identity",
            "1 rollout(s) complete",
        ]
        echo = cset[name].api("GET", "/apis/apps/v1/namespaces/lab-demo/deployments/echo")
        assert echo["status"]["availableReplicas"] >= 1
    assert printed[0].startswith("render: lab1-k8s 19 objects, lab2-k8s 19 objects")
    assert printed[1].split() == [
        "cluster",
        "status",
        "created",
        "updated",
        "unchanged",
        "pruned",
        "failed",
        "requests",
        "seconds",
    ]

    again = render_and_reconcile(
        str(REPO), str(cset.kubeconfig), LAB, clusters_dir=str(tmp_path / "clusters"), out=printed.append
    )
    for name in LAB:
        assert again["clusters"][name]["counts"]["unchanged"] == 19
        assert again["clusters"][name]["changed"] is False
