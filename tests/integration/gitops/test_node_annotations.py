"""cluster.yml node_annotations on a real apiserver: Nodes that exist are annotated, none is created."""

from __future__ import annotations

import os

ASN = "projectcalico.org/ASNumber"


def test_reconcile_annotates_registered_nodes_and_never_creates_one(workspace, gitops_clusters):
    c1 = gitops_clusters["c1"]
    node = f"t-node-{os.getpid()}"
    ghost = f"t-ghost-{os.getpid()}"  # named in cluster.yml, never registered
    c1.api(
        "POST",
        "/api/v1/nodes",
        {
            "apiVersion": "v1",
            "kind": "Node",
            "metadata": {"name": node, "annotations": {ASN: "64512", "x": "y"}},
        },
    )
    try:
        workspace.write("c1", [], node_annotations={node: {ASN: "65111"}, ghost: {ASN: "65112"}})

        check = workspace.reconcile(["c1"], check=True, diff=True)
        c1_check = check["clusters"]["c1"]
        assert (c1_check["status"], c1_check["changed"]) == ("ok", True)
        assert {k: v for k, v in c1_check["counts"].items() if k.startswith("nodes_")} == {
            "nodes_annotated": 1,
            "nodes_unchanged": 0,
            "nodes_pending": 1,
        }
        assert c1_check["pending_nodes"] == [ghost]
        [diff] = [d for d in check["diff"] if d["before_header"].startswith(f"c1: Node/{node}")]
        assert (diff["before"], diff["after"]) == (
            f"apiVersion: v1\nkind: Node\nmetadata:\n  annotations:\n    {ASN}: '64512'\n  name: {node}\n",
            f"apiVersion: v1\nkind: Node\nmetadata:\n  annotations:\n    {ASN}: '65111'\n  name: {node}\n",
        )
        assert (
            workspace.get("c1", f"/api/v1/nodes/{node}")["metadata"]["annotations"][ASN] == "64512"
        )  # check mode wrote nothing

        applied = workspace.reconcile(["c1"])
        assert applied["clusters"]["c1"]["counts"]["nodes_annotated"] == 1
        assert (
            f"c1: node annotations: 1 annotated, 0 unchanged, 1 pending (not registered yet: {ghost})"
            in (applied["summary"])
        )
        live = workspace.get("c1", f"/api/v1/nodes/{node}")["metadata"]
        assert live["annotations"] == {ASN: "65111", "x": "y"}  # only the managed annotation changed
        assert "cloud58-node-annotations" in [m["manager"] for m in live["managedFields"]]
        assert workspace.get("c1", f"/api/v1/nodes/{ghost}") is None

        again = workspace.reconcile(["c1"])["clusters"]["c1"]
        assert (again["changed"], again["counts"]["nodes_unchanged"], again["counts"]["nodes_pending"]) == (
            False,
            1,
            1,
        )
    finally:
        c1.api("DELETE", f"/api/v1/nodes/{node}")
