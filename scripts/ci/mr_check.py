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
   defaulted by the real API server, nothing changed.
4. Every other cluster (no context, or its API server out of reach: a CI runner) is
   dry-run against an ephemeral etcd + kube-apiserver of the pinned version on loopback,
   started once for the job (cloud58_lab.ephemeral) and stopped by PID at the end, even
   on error. It holds the project's Calico CRDs (crds/calico/) and, for the time of each
   cluster's run, the CRDs of that cluster's directory; the namespaces the directory's
   objects live in are created (bare) first, since a dry run cannot create an object in a
   namespace that does not exist. The identity is bootstrapped in check mode (the engine
   sends it as a dry-run create), so nothing of one cluster's run stays for the next but
   those bare namespaces. Clusters are checked one after another. A server rejection
   (unknown kind, unknown field, bad value or name) fails the job; no cluster is skipped:
   without the pinned programs the job fails.
5. Writes a Markdown report: verdict, problems, how each cluster was checked, then every
   change with its diff (real clusters) and what the ephemeral apiserver accepted or rejected.

Exit status 0 when everything holds, 1 otherwise.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "collections"))
sys.path.insert(0, str(REPO / "lab"))

from ansible_collections.cloud58.platform.plugins.module_utils.gitops.clusterdir import (  # noqa: E402
    load_cluster_dir,
    select_clusters,
)
from ansible_collections.cloud58.platform.plugins.module_utils.gitops.report import markdown_report  # noqa: E402
from ansible_collections.cloud58.platform.plugins.module_utils.gitops.runner import run_reconcile  # noqa: E402
from ansible_collections.cloud58.platform.plugins.module_utils.kube.errors import GitOpsError  # noqa: E402
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


@dataclass
class Ephemeral:
    """What was checked against the ephemeral apiserver."""

    version: str = ""
    why: dict[str, str] = field(default_factory=dict)  # cluster -> why not its own cluster
    created: set[str] = field(default_factory=set)  # namespaces created for the dry runs
    namespaces: dict[str, list[str]] = field(default_factory=dict)  # cluster -> those its objects use
    crds: dict[str, list[str]] = field(default_factory=dict)  # cluster -> CRDs of its directory
    clusters: dict[str, dict] = field(default_factory=dict)  # cluster -> engine report
    seconds: float = 0.0  # start, CRDs, every cluster's run, stop


@dataclass
class DryRun:
    report: dict | None = None  # the engine's result for the clusters reached through their contexts
    ephemeral: Ephemeral | None = None
    problems: list[str] = field(default_factory=list)

    def checked(self) -> list[tuple[str, str, str]]:
        """(cluster, checked against, result), sorted by cluster."""
        rows = []
        for name, cluster in (self.report or {"clusters": {}})["clusters"].items():
            rows.append((name, f"its context `{cluster['context']}`", cluster["status"]))
        eph = self.ephemeral
        for name in eph.why if eph is not None else ():
            against = f"{EPHEMERAL} {eph.version}".rstrip() + f" ({eph.why[name]})"
            cluster = eph.clusters.get(name)
            rows.append((name, against, _ephemeral_result(cluster) if cluster else "not checked"))
        return sorted(rows)


EPHEMERAL = "ephemeral apiserver"


def dry_run(clusters_dir: Path, kubeconfig: str | None, names: list[str], out=print) -> DryRun:
    """Dry-run every selected cluster: through its context when it answers, else against the
    ephemeral apiserver. Raises nothing for one cluster."""
    try:
        selected = select_clusters(str(clusters_dir), names)
        clusters = [load_cluster_dir(str(clusters_dir), name) for name in selected]
    except GitOpsError as e:
        return DryRun(problems=[str(e)])
    contexts = kubeconfig_contexts(kubeconfig)
    reachable = [c.name for c in clusters if c.context in contexts]
    why = {
        c.name: f"the kubeconfig has no context {c.context!r}" for c in clusters if c.name not in reachable
    }
    outcome = DryRun()
    if reachable:
        params = {
            "clusters_dir": str(clusters_dir),
            "clusters": reachable,
            "kubeconfig": kubeconfig,
            "request_timeout": 15,
        }
        result = run_reconcile(params, check_mode=True, diff=True)
        for name in reachable:
            cluster = result["clusters"][name]
            if cluster["status"] == "unreachable":
                why[name] = cluster["error"]
            elif cluster["status"] != "ok":
                outcome.problems.extend(_cluster_problems(name, cluster))
        outcome.report = {
            **result,
            "clusters": {n: c for n, c in result["clusters"].items() if c["status"] != "unreachable"},
        }
    if why:
        by_name = {c.name: c for c in clusters}
        outcome.ephemeral = Ephemeral(why={name: why[name] for name in sorted(why)})
        outcome.problems.extend(
            ephemeral_dry_run(clusters_dir, [by_name[n] for n in sorted(why)], outcome.ephemeral, out)
        )
    return outcome


def ephemeral_dry_run(clusters_dir: Path, clusters: list, eph: Ephemeral, out=print) -> list[str]:
    """Dry-run ``clusters`` (ClusterDir) one after another against one ephemeral apiserver
    started here and stopped by PID before returning, even on error; fills ``eph``, returns
    the problems."""
    from cloud58_lab.controlplane import ControlPlaneError  # only this path needs the lab
    from cloud58_lab.ephemeral import start_ephemeral
    from cloud58_lab.lab import LabError, bin_dir

    started = time.monotonic()
    names = ", ".join(c.name for c in clusters)
    workdir = Path(tempfile.mkdtemp(prefix="cloud58-mr-check-"))
    problems = []
    try:
        try:
            apiserver = start_ephemeral(workdir / "controlplane", bin_dir())
        except (LabError, ControlPlaneError) as e:
            return [f"{names}: no reachable context, and no {EPHEMERAL} to check against: {e}"]
        with apiserver:
            eph.version = apiserver.version
            pids = apiserver.pids()
            out(
                f"mr-check: {EPHEMERAL} {eph.version} on {apiserver.server} for {names} "
                f"(etcd pid {pids['etcd']}, kube-apiserver pid {pids['kube-apiserver']})"
            )
            try:
                apiserver.install_calico_crds()
            except ControlPlaneError as e:
                return [
                    f"{names}: {EPHEMERAL} {eph.version}: the Calico CRDs of crds/calico/ do not install: {e}"
                ]
            kubeconfig = apiserver.write_kubeconfig(workdir / "kubeconfig", [c.context for c in clusters])
            for cluster in clusters:
                problems.extend(_ephemeral_cluster(clusters_dir, cluster, apiserver, kubeconfig, eph))
        out(f"mr-check: {EPHEMERAL} stopped (pids {pids['etcd']}, {pids['kube-apiserver']})")
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
        eph.seconds = time.monotonic() - started
    return problems


def _ephemeral_cluster(clusters_dir: Path, cluster, apiserver, kubeconfig: Path, eph: Ephemeral) -> list[str]:
    from cloud58_lab.calico import calico_crd_names
    from cloud58_lab.controlplane import ControlPlaneError

    where = f"{cluster.name} ({EPHEMERAL} {eph.version})"
    crds = [m for m in cluster.manifests if m.key.kind == "CustomResourceDefinition"]
    namespaces = {m.key.namespace for m in cluster.manifests if m.key.namespace}
    try:
        eph.crds[cluster.name] = apiserver.install_crds([clusters_dir / m.source for m in crds])
        eph.created.update(apiserver.create_namespaces(namespaces))
        eph.namespaces[cluster.name] = sorted(namespaces & eph.created)
    except ControlPlaneError as e:
        return [f"{where}: {e}"]
    params = {
        "clusters_dir": str(clusters_dir),
        "clusters": [cluster.name],
        "kubeconfig": str(kubeconfig),
        "request_timeout": 15,
        # Check mode: the engine sends the identity as a dry-run create and goes on, as on
        # a new cluster's first run; nothing of it stays for the next cluster.
        "bootstrap_identity": True,
    }
    result = run_reconcile(params, check_mode=True, diff=False)["clusters"][cluster.name]
    eph.clusters[cluster.name] = result
    problems = [] if result["status"] == "ok" else _cluster_problems(where, result)
    try:
        # The next cluster must not find kinds that only this directory defines; a Calico
        # CRD this directory replaced is put back.
        apiserver.remove_crds(eph.crds[cluster.name])
        if set(eph.crds[cluster.name]) & set(calico_crd_names()):
            apiserver.install_calico_crds()
    except ControlPlaneError as e:
        problems.append(f"{where}: removing the CRDs of its directory: {e}")
    return problems


def _cluster_problems(where: str, cluster: dict) -> list[str]:
    return [f"{where}: {cluster['error']}"] + [
        f"{where}: {o['kind']}/{o['name']}: {o['error']}"
        for o in cluster["objects"]
        if o["action"] == "failed"
    ]


def _accepted(cluster: dict) -> int:
    counts = cluster["counts"]
    return counts["created"] + counts["updated"] + counts["unchanged"]


def _ephemeral_result(cluster: dict) -> str:
    count = _accepted(cluster)
    accepted = f"{count} object{'' if count == 1 else 's'} accepted"
    if cluster["status"] == "ok":
        return f"ok, {accepted}"
    rejected = cluster["counts"]["failed"]
    return f"{cluster['status']}, {rejected} rejected, {accepted}" if rejected else cluster["status"]


def ephemeral_markdown(eph: Ephemeral, level: int = 2) -> str:
    """What the ephemeral apiserver accepted and rejected, cluster by cluster."""
    out = [
        f"{'#' * level} Server-side dry run against an {EPHEMERAL} {eph.version} (nothing was changed)",
        "",
        f"These clusters were not reached through the kubeconfig, so each directory was sent to a fresh "
        f"etcd + kube-apiserver {eph.version} on loopback holding the project's Calico CRDs "
        "(crds/calico/) and the CRDs of the directory: every object a server-side apply with "
        "dryRun=All, validated and defaulted by the server. Nothing is compared with what runs in "
        "the cluster: no diffs, no drift, no prune.",
        "",
    ]
    for name in eph.why:
        out += [f"{'#' * (level + 1)} {name}", "", f"* why not its own cluster: {eph.why[name]}"]
        cluster = eph.clusters.get(name)
        if eph.crds.get(name):
            out.append(f"* CRDs of the directory installed first: {', '.join(eph.crds[name])}")
        if eph.namespaces.get(name):
            out.append(
                "* namespaces created (bare) before the dry run, which cannot create an object in a "
                f"namespace that does not exist: {', '.join(eph.namespaces[name])}"
            )
        if cluster is None:
            out += ["* **not checked** (see Problems)", ""]
            continue
        out.append(f"* {_ephemeral_result(cluster)}")
        if cluster["status"] != "ok" and not cluster["counts"]["failed"]:
            out.append(f"* **{cluster['status']}**: {cluster['error']}")
        for o in cluster["objects"]:
            if o["action"] == "failed":
                where = f"{o['namespace']}/" if o["namespace"] else ""
                out.append(f"* **rejected** `{o['kind']}/{where}{o['name']}`: {o['error']}")
        out.append("")
    return "\n".join(out).rstrip("\n") + "\n"


def write_report(path: Path, render: list[str], outcome: DryRun) -> str:
    lines = ["# Merge-request check", ""]
    problems = render + outcome.problems
    verdict = "passed" if not problems else "FAILED"
    lines += [f"**{verdict}**", ""]
    if problems:
        lines += ["## Problems", ""] + [f"* {p}" for p in problems] + [""]
    rows = outcome.checked()
    if rows:
        lines += ["## Clusters", "", "| cluster | checked against | result |", "|---|---|---|"]
        lines += [f"| {name} | {against} | {result} |" for name, against, result in rows] + [""]
    text = "\n".join(lines)
    if outcome.report is not None and outcome.report["clusters"]:
        text += "\n" + markdown_report(
            outcome.report, title="Server-side dry run (nothing was changed)", level=2
        )
    if outcome.ephemeral is not None and outcome.ephemeral.clusters:
        text += "\n" + ephemeral_markdown(outcome.ephemeral)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text if text.endswith("\n") else text + "\n", encoding="utf-8")
    return text


class ChangedSinceError(Exception):
    """The merge request's base revision cannot be compared with (unknown revision, no git)."""


def changed_clusters(repo: Path, clusters_dir: Path, base: str) -> list[str]:
    """The cluster directories of ``clusters_dir`` that the merge request changes: a file
    under them differs between ``base`` (the merge base) and the working tree. A directory
    the request deletes has nothing left to dry-run and is not listed."""
    from cloud58_lab import programs  # the lab's program registry: git is an apt package

    relative = clusters_dir.resolve().relative_to(repo.resolve())
    run = subprocess.run(
        programs.argv("git", "-C", repo, "diff", "--name-only", "--no-renames", base, "--", relative),
        capture_output=True,
        text=True,
        check=False,
    )
    if run.returncode != 0:
        raise ChangedSinceError(f"--changed-since {base}: git diff failed: {run.stderr.strip()}")
    names = set()
    for line in run.stdout.splitlines():
        parts = Path(line).relative_to(relative).parts
        if len(parts) > 1:
            names.add(parts[0])
    return sorted(n for n in names if (clusters_dir / n).is_dir())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repo", default=str(REPO), help="repository root (default: this one)")
    parser.add_argument("--clusters-dir", help="cluster directories to dry-run (default: <repo>/clusters)")
    parser.add_argument("--kubeconfig", default=os.environ.get("KUBECONFIG"), help="default: $KUBECONFIG")
    parser.add_argument("--clusters", default="", help="comma-separated cluster names (default: all)")
    parser.add_argument(
        "--changed-since",
        default=os.environ.get("CI_MERGE_REQUEST_DIFF_BASE_SHA", ""),
        help="dry-run only the cluster directories changed since this revision, the merge request's "
        "base (default: $CI_MERGE_REQUEST_DIFF_BASE_SHA; unset: every cluster)",
    )
    parser.add_argument("--report", default=None, help="Markdown report (default: <repo>/build/mr-report.md)")
    parser.add_argument("--skip-render", action="store_true", help="skip step 1 and 2 (tests of step 3)")
    args = parser.parse_args(argv)
    repo = Path(args.repo)
    render = [] if args.skip_render else render_problems(repo)
    clusters_dir = Path(args.clusters_dir) if args.clusters_dir else repo / "clusters"
    names = [n for n in args.clusters.split(",") if n]
    selected = bool(names)
    if args.changed_since and not names:
        try:
            names = changed_clusters(repo, clusters_dir, args.changed_since)
        except ChangedSinceError as e:
            print(f"mr-check: {e}", file=sys.stderr)
            return 2
        selected = True
        print(
            f"mr-check: cluster directories changed since {args.changed_since}: {', '.join(names) or 'none'}"
        )
    # an empty selection dry-runs nothing (dry_run takes no names as every cluster)
    outcome = dry_run(clusters_dir, args.kubeconfig, names) if names or not selected else DryRun()
    path = Path(args.report) if args.report else repo / "build/mr-report.md"
    write_report(path, render, outcome)
    for line in render + outcome.problems:
        print(f"mr-check: {line}", file=sys.stderr)
    if outcome.report is not None and outcome.report["clusters"]:
        for line in outcome.report["summary"]:
            print(line)
    for name, against, result in outcome.checked():
        print(f"mr-check: {name}: checked against {against}: {result}")
    if outcome.ephemeral is not None:
        eph = outcome.ephemeral
        print(f"mr-check: {EPHEMERAL}: {len(eph.clusters)} cluster(s) checked in {eph.seconds:.1f}s")
    print(f"mr-check: report written to {path}")
    return 1 if render or outcome.problems else 0


if __name__ == "__main__":
    sys.exit(main())
