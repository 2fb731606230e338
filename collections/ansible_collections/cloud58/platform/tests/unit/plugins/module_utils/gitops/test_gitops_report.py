"""What a run tells people: the summary table, the JSON report, the Markdown report."""

from __future__ import annotations

import json

from ansible_collections.cloud58.platform.plugins.module_utils.gitops.engine import (
    ClusterResult,
    ObjectResult,
)
from ansible_collections.cloud58.platform.plugins.module_utils.gitops.report import (
    markdown_report,
    report_dict,
    summary_lines,
    write_json_report,
)
from ansible_collections.cloud58.platform.plugins.module_utils.kube.objects import ObjKey

CM = ObjKey("", "ConfigMap", "ns", "cm")
NS = ObjKey("", "Namespace", "", "old")
NODE = ObjKey("", "Node", "", "bj1-node-001")


def results():
    ok = ClusterResult("bj1-k8s", "bj1-k8s", check_mode=False, requests=9, seconds=0.5)
    ok.objects = [
        ObjectResult(
            CM,
            "update",
            source="bj1-k8s/32_configmap_ns_cm.yaml",
            reason="drift",
            fields=["data.k"],
            diff="-a\n+b\n",
        ),
        ObjectResult(ObjKey("", "ConfigMap", "ns", "same"), "unchanged"),
        ObjectResult(NS, "protected", reason="kept"),
        ObjectResult(
            ObjKey("", "ConfigMap", "ns", "old"), "gone", reason="removed from Git; already deleted"
        ),
        ObjectResult(
            NODE,
            "annotate",
            source="bj1-k8s/cluster.yml node_annotations",
            reason="annotations differ",
            fields=["metadata.annotations.projectcalico.org/ASNumber"],
        ),
    ]
    ok.nodes_unchanged = 1
    ok.pending_nodes = ["bj1-node-009"]
    down = ClusterResult(
        "sh1-k8s", "sh1-k8s", check_mode=False, status="unreachable", error="API server down", requests=1
    )
    return [ok, down]


def test_summary_table_and_problem_lines():
    assert summary_lines(results()) == [
        "cluster  status        created   updated unchanged    pruned    failed requests  seconds",
        "bj1-k8s  ok                  0         1         1         0         0        9     0.50",
        "sh1-k8s  unreachable         0         0         0         0         0        1     0.00",
        "bj1-k8s: kept Namespace/old: kept",
        "bj1-k8s: not pruned ConfigMap/ns/old: already deleted by someone else",
        "bj1-k8s: node annotations: 1 annotated, 1 unchanged, 1 pending (not registered yet: bj1-node-009)",
        "sh1-k8s: UNREACHABLE: API server down",
    ]


def test_report_lists_changes_not_unchanged_objects(tmp_path):
    report = report_dict(results(), with_diff=False)
    assert report["failed_clusters"] == ["sh1-k8s"]
    assert report["changed"] is True
    assert report["clusters"]["bj1-k8s"]["counts"] == {
        "created": 0,
        "updated": 1,
        "unchanged": 1,
        "pruned": 0,
        "failed": 0,
        "prune_protected": 1,
        "already_gone": 1,
        "maybe_written": 0,
        "nodes_annotated": 1,
        "nodes_unchanged": 1,
        "nodes_pending": 1,
    }
    assert report["clusters"]["sh1-k8s"]["counts"]["nodes_pending"] == 0
    assert report["clusters"]["bj1-k8s"]["pending_nodes"] == ["bj1-node-009"]
    assert [o["name"] for o in report["clusters"]["bj1-k8s"]["objects"]] == [
        "cm",
        "old",
        "old",
        "bj1-node-001",
    ]
    assert "diff" not in report["clusters"]["bj1-k8s"]["objects"][0]
    path = tmp_path / "deep" / "report.json"
    write_json_report(str(path), report)
    assert json.loads(path.read_text()) == report
    assert [p.name for p in path.parent.iterdir()] == ["report.json"]


def test_markdown_report_shows_table_changes_and_diffs():
    text = markdown_report(report_dict(results(), with_diff=True), title="Dry run", level=2)
    assert text.startswith(
        "## Dry run\n\n| cluster | status | created | updated | unchanged | pruned | failed |\n"
    )
    assert "| bj1-k8s | ok | 0 | 1 | 1 | 0 | 0 |" in text
    assert "* **update** `ConfigMap/ns/cm` (drift) — fields: data.k" in text
    assert "  ```diff\n  -a\n  +b\n  ```" in text
    assert (
        "* **annotate** `Node/bj1-node-001` (annotations differ) — fields: "
        "metadata.annotations.projectcalico.org/ASNumber\n"
        "* node annotations: 1 annotated, 1 unchanged, 1 pending (not registered yet: bj1-node-009)\n"
    ) in text
    assert text.endswith("### sh1-k8s\n\n**unreachable**: API server down\n")  # and no node line
