"""`make mr-check --changed-since <base>`: only the cluster directories a merge request changes
are dry-run, read from a real git history."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from cloud58_lab import programs

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "scripts/ci"))

import mr_check  # noqa: E402


def _git(repo: Path, *args: str) -> str:
    return subprocess.run(
        programs.argv("git", "-C", repo, "-c", "user.name=t", "-c", "user.email=t@t.test", *args),
        capture_output=True, text=True, check=True,
    ).stdout.strip()  # fmt: skip


@pytest.fixture
def history(tmp_path):
    """clusters/a, b and c at the base commit; the merge request edits b, deletes c, adds d
    and touches a file outside clusters/."""
    repo = tmp_path / "repo"
    for name in ("a", "b", "c"):
        (repo / "clusters" / name).mkdir(parents=True)
        (repo / "clusters" / name / "10_namespace_x.yaml").write_text(f"# {name}\n")
    (repo / "README.md").write_text("base\n")
    _git(repo.parent, "init", "-q", str(repo))
    _git(repo, "add", "-A")
    _git(repo, "commit", "-q", "-m", "base")
    base = _git(repo, "rev-parse", "HEAD")
    (repo / "clusters/b/10_namespace_x.yaml").write_text("# b, edited\n")
    _git(repo, "rm", "-q", "-r", "clusters/c")
    (repo / "clusters/d").mkdir()
    (repo / "clusters/d/cluster.yml").write_text("name: d\n")
    (repo / "README.md").write_text("changed\n")
    _git(repo, "add", "-A")
    _git(repo, "commit", "-q", "-m", "the merge request")
    return repo, base


def test_the_changed_cluster_directories_are_those_with_a_changed_file_that_still_exist(history):
    repo, base = history
    assert mr_check.changed_clusters(repo, repo / "clusters", base) == ["b", "d"]
    assert mr_check.changed_clusters(repo, repo / "clusters", "HEAD") == []


def test_an_unknown_base_revision_is_a_clear_error(history):
    repo, _base = history
    with pytest.raises(
        mr_check.ChangedSinceError, match=r"^--changed-since no-such-rev: git diff failed: fatal: "
    ):
        mr_check.changed_clusters(repo, repo / "clusters", "no-such-rev")
    assert mr_check.main(["--repo", str(repo), "--skip-render", "--changed-since", "no-such-rev"]) == 2


def test_a_merge_request_that_changes_no_cluster_dry_runs_none(history, capsys):
    repo, _base = history
    report = repo / "build/mr-report.md"
    assert (
        mr_check.main(
            ["--repo", str(repo), "--skip-render", "--changed-since", "HEAD", "--report", str(report)]
        )
        == 0
    )
    assert "mr-check: cluster directories changed since HEAD: none\n" in capsys.readouterr().out
    assert report.read_text() == "# Merge-request check\n\n**passed**\n"
