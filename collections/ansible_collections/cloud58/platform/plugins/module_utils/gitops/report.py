# -*- coding: utf-8 -*-
# Copyright: cloud58 platform team
# Apache License 2.0
"""What a run tells people: a per-cluster summary table, a JSON report file, a Markdown report."""

from __future__ import annotations

import json
import os
import tempfile

from .engine import STATUS_OK, ClusterResult

_COLUMNS = ("created", "updated", "unchanged", "pruned", "failed")
_PENDING_SHOWN = 5


def nodes_line(counts: dict, pending: list[str]) -> str:
    """What happened to the node annotations of cluster.yml ("" when it names no node)."""
    if not counts["nodes_annotated"] + counts["nodes_unchanged"] + counts["nodes_pending"]:
        return ""
    shown = ", ".join(pending[:_PENDING_SHOWN]) + (", ..." if len(pending) > _PENDING_SHOWN else "")
    return (
        f"node annotations: {counts['nodes_annotated']} annotated, {counts['nodes_unchanged']} unchanged, "
        f"{counts['nodes_pending']} pending" + (f" (not registered yet: {shown})" if pending else "")
    )


def summary_lines(results: list[ClusterResult]) -> list[str]:
    """A fixed-width table, one line per cluster, then one line per failure, note and node summary."""
    width = max([len("cluster")] + [len(r.cluster) for r in results])
    mode = " (check mode: nothing written)" if results and results[0].check_mode else ""
    lines = [
        f"{'cluster':<{width}}  {'status':<11} "
        + " ".join(f"{c:>9}" for c in _COLUMNS)
        + f" {'requests':>8} {'seconds':>8}"
    ]
    for r in results:
        counts = r.counts
        cells = " ".join(f"{counts[c]:>9}" for c in _COLUMNS)
        lines.append(f"{r.cluster:<{width}}  {r.status:<11} {cells} {r.requests:>8} {r.seconds:>8.2f}")
    for r in results:
        if r.status != STATUS_OK:
            lines.append(f"{r.cluster}: {r.status.upper()}: {r.error}")
        for o in r.objects:
            if o.action == "failed":
                lines.append(f"{r.cluster}: failed {o.key}: {o.error}")
            elif o.action == "protected":
                lines.append(f"{r.cluster}: kept {o.key}: {o.reason}")
            elif o.action == "gone":
                lines.append(f"{r.cluster}: not pruned {o.key}: already deleted by someone else")
        lines.extend(f"{r.cluster}: {note}" for note in r.notes)
        nodes = nodes_line(r.counts, r.pending_nodes)
        if nodes:
            lines.append(f"{r.cluster}: {nodes}")
    if mode:
        lines[0] += mode
    return lines


def report_dict(results: list[ClusterResult], *, with_diff: bool) -> dict:
    failed = [r.cluster for r in results if r.status != STATUS_OK]
    return {
        "check_mode": bool(results and results[0].check_mode),
        "changed": any(r.changed for r in results),
        "failed_clusters": failed,
        "clusters": {r.cluster: r.as_dict(with_diff) for r in results},
    }


def write_json_report(path: str, report: dict) -> None:
    """Write atomically: a reader never sees half a report."""
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=directory, prefix=".report-", suffix=".json")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            json.dump(report, handle, indent=2, sort_keys=True)
            handle.write("\n")
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def markdown_report(report: dict, *, title: str = "Reconcile dry-run", level: int = 1) -> str:
    """The merge-request report (from ``report_dict(..., with_diff=True)``): the summary
    table, then every change with its diff in a collapsible block."""
    clusters = [report["clusters"][name] for name in sorted(report["clusters"])]
    out = [f"{'#' * level} {title}", ""]
    out.append("| cluster | status | " + " | ".join(_COLUMNS) + " |")
    out.append("|---|---|" + "---:|" * len(_COLUMNS))
    for c in clusters:
        out.append(
            f"| {c['cluster']} | {c['status']} | " + " | ".join(str(c["counts"][k]) for k in _COLUMNS) + " |"
        )
    out.append("")
    for c in clusters:
        out.append(f"{'#' * (level + 1)} {c['cluster']}")
        out.append("")
        if c["status"] != STATUS_OK:
            out.append(f"**{c['status']}**: {c['error']}")
            out.append("")
        if not c["objects"] and c["status"] == STATUS_OK:
            out.append("No changes.")
            out.append("")
        for o in c["objects"]:
            where = f"{o['namespace']}/" if o["namespace"] else ""
            detail = f" ({o['reason']})" if o.get("reason") else ""
            fields = f" — fields: {', '.join(o['fields'])}" if o.get("fields") else ""
            out.append(f"* **{o['action']}** `{o['kind']}/{where}{o['name']}`{detail}{fields}")
            if o.get("error"):
                out.append(f"  * error: {o['error']}")
            if o.get("diff"):
                out.append("")
                out.append("  <details><summary>diff</summary>")
                out.append("")
                out.append("  ```diff")
                out.extend(f"  {line}" for line in o["diff"].rstrip("\n").splitlines())
                out.append("  ```")
                out.append("  </details>")
                out.append("")
        out.extend(f"* note: {note}" for note in c["notes"])
        nodes = nodes_line(c["counts"], c["pending_nodes"])
        if nodes:
            out.append(f"* {nodes}")
        out.append("")
    return "\n".join(out).rstrip("\n") + "\n"
