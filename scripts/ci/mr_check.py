#!/usr/bin/env python3
"""The merge-request job: is clusters/ current, do the schemas hold, what would change.

    scripts/ci/mr-check.sh [--kubeconfig FILE] [--report build/mr-report.md] [--clusters a,b]

1. Re-renders clusters/ from inventories/ and apps/ in check mode: fails when the merge
   request changed an input without committing the rendered result (or edited clusters/
   by hand). The app specs are validated on the way (JSON Schema and rules against the plan).
2. docs/apps.md and schemas/app.schema.json are current; every cluster directory loads
   (cluster.yml, one valid object per file, labels).
3. Server-side dry run (``dryRun=All``) of every cluster whose context the kubeconfig
   holds and whose API server answers: identity proved, every write validated and
   defaulted by the real API server, nothing changed. Clusters without a context or out
   of reach are listed as skipped, not failed.
4. Writes a Markdown report (summary table, then every change with its diff).

Exit status 0 when everything holds, 1 otherwise.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "collections"))

from ansible_collections.cloud58.platform.plugins.module_utils.gitops.clusterdir import (  # noqa: E402
    load_cluster_dir,
    select_clusters,
)
from ansible_collections.cloud58.platform.plugins.module_utils.gitops.errors import GitOpsError  # noqa: E402
from ansible_collections.cloud58.platform.plugins.module_utils.gitops.report import markdown_report  # noqa: E402
from ansible_collections.cloud58.platform.plugins.module_utils.gitops.runner import run_reconcile  # noqa: E402
from ansible_collections.cloud58.platform.plugins.module_utils.render.docs import (  # noqa: E402
    apps_markdown,
    schema_json,
)
from ansible_collections.cloud58.platform.plugins.module_utils.render.runner import run_render  # noqa: E402


def render_problems(repo: Path) -> list[str]:
    """Problems of the inputs and of clusters/: stale render, stale docs, invalid specs or directories."""
    problems = []
    params = {
        "inventories_dir": str(repo / "inventories"),
        "apps_dir": str(repo / "apps"),
        "clusters_dir": str(repo / "clusters"),
    }
    try:
        result = run_render(params, check=True)
    except GitOpsError as e:
        return [f"render: {e}"]
    for what in ("added", "changed", "removed"):
        for rel in result["files"][what]:
            problems.append(
                f"clusters/ is not current: {rel} would be {what} (run `make render`, commit clusters/)"
            )
    for rel, produce in (("docs/apps.md", apps_markdown), ("schemas/app.schema.json", schema_json)):
        path = repo / rel
        if not path.exists() or path.read_text(encoding="utf-8") != produce():
            problems.append(f"{rel} is not current (run scripts/ci/gen_app_docs.py)")
    return problems


def kubeconfig_contexts(kubeconfig: str | None) -> set[str]:
    from kubernetes import config as k8s_config

    try:
        contexts, _active = k8s_config.list_kube_config_contexts(config_file=kubeconfig)
    except (k8s_config.ConfigException, OSError):
        return set()
    return {c["name"] for c in contexts or []}


def dry_run(
    clusters_dir: Path, kubeconfig: str | None, names: list[str]
) -> tuple[dict | None, list[str], list[str]]:
    """(report of the clusters dry-run, skipped lines, problems). Raises nothing for one cluster."""
    try:
        selected = select_clusters(str(clusters_dir), names)
        clusters = [load_cluster_dir(str(clusters_dir), name) for name in selected]
    except GitOpsError as e:
        return None, [], [str(e)]
    contexts = kubeconfig_contexts(kubeconfig)
    reachable = [c.name for c in clusters if c.context in contexts]
    skipped = [
        f"{c.name}: skipped, the kubeconfig has no context {c.context!r}"
        for c in clusters
        if c.name not in reachable
    ]
    if not reachable:
        return None, skipped, []
    params = {
        "clusters_dir": str(clusters_dir),
        "clusters": reachable,
        "kubeconfig": kubeconfig,
        "request_timeout": 15,
    }
    result = run_reconcile(params, check_mode=True, diff=True)
    problems = []
    for name in reachable:
        cluster = result["clusters"][name]
        if cluster["status"] == "unreachable":
            skipped.append(f"{name}: skipped, {cluster['error']}")
        elif cluster["status"] != "ok":
            problems.append(f"{name}: {cluster['error']}")
            problems.extend(
                f"{name}: {o['kind']}/{o['name']}: {o['error']}"
                for o in cluster["objects"]
                if o["action"] == "failed"
            )
    report = {
        **result,
        "clusters": {n: c for n, c in result["clusters"].items() if c["status"] != "unreachable"},
    }
    return report, skipped, problems


def write_report(
    path: Path, render: list[str], report: dict | None, skipped: list[str], problems: list[str]
) -> str:
    lines = ["# Merge-request check", ""]
    verdict = "passed" if not render and not problems else "FAILED"
    lines += [f"**{verdict}**", ""]
    if render or problems:
        lines += ["## Problems", ""] + [f"* {p}" for p in render + problems] + [""]
    if skipped:
        lines += ["## Clusters not checked against an API server", ""] + [f"* {s}" for s in skipped] + [""]
    text = "\n".join(lines)
    if report is not None:
        text += "\n" + markdown_report(report, title="Server-side dry run (nothing was changed)", level=2)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text if text.endswith("\n") else text + "\n", encoding="utf-8")
    return text


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repo", default=str(REPO), help="repository root (default: this one)")
    parser.add_argument("--clusters-dir", help="cluster directories to dry-run (default: <repo>/clusters)")
    parser.add_argument("--kubeconfig", default=os.environ.get("KUBECONFIG"), help="default: $KUBECONFIG")
    parser.add_argument("--clusters", default="", help="comma-separated cluster names (default: all)")
    parser.add_argument("--report", default=None, help="Markdown report (default: <repo>/build/mr-report.md)")
    parser.add_argument("--skip-render", action="store_true", help="skip step 1 and 2 (tests of step 3)")
    args = parser.parse_args(argv)
    repo = Path(args.repo)
    render = [] if args.skip_render else render_problems(repo)
    clusters_dir = Path(args.clusters_dir) if args.clusters_dir else repo / "clusters"
    names = [n for n in args.clusters.split(",") if n]
    report, skipped, problems = dry_run(clusters_dir, args.kubeconfig, names)
    path = Path(args.report) if args.report else repo / "build/mr-report.md"
    write_report(path, render, report, skipped, problems)
    for line in render + problems:
        print(f"mr-check: {line}", file=sys.stderr)
    for line in skipped:
        print(f"mr-check: {line}")
    if report is not None:
        for line in report["summary"]:
            print(line)
    print(f"mr-check: report written to {path}")
    return 1 if render or problems else 0


if __name__ == "__main__":
    sys.exit(main())
