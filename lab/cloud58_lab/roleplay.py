"""Run a role on one host with ansible-playbook and read its JSON report, for the role tests.

:func:`play` writes the play and its variables into a directory, runs ansible-playbook with
the repository's ansible.cfg and the ``ansible.builtin.json`` stdout callback (optionally
inside a network namespace), and returns the host's stats, the failed tasks' messages and
the whole output; :func:`task_results` reads every task result of that output (diffs).
"""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Mapping
from pathlib import Path

from cloud58_lab import programs

REPO = Path(__file__).resolve().parents[2]


def task_results(stdout: str) -> list[dict]:
    """Every task result of a JSON report, in play and task order."""
    report = json.loads(stdout)
    return [result for play in report["plays"] for task in play["tasks"] for result in task["hosts"].values()]


def play(
    directory: Path,
    playbook: str,
    host: str,
    variables: Mapping,
    *,
    check: bool = False,
    env: Mapping | None = None,
    netns: str | None = None,
    with_output: bool = False,
) -> tuple[dict, list[str], str]:
    """Run ``playbook`` on ``host`` with ``variables`` (play.yml and vars.json in ``directory``;
    ``--check --diff`` if ``check``; in the network namespace ``netns`` if given; the
    environment ``env``, else this process's). Returns the host's stats (changed, failures),
    per failed task its message (with ``with_output``: its message, stdout and stderr joined
    by newlines) and ansible-playbook's stdout."""
    (directory / "play.yml").write_text(playbook)
    (directory / "vars.json").write_text(json.dumps(variables))
    run_env = dict(
        os.environ if env is None else env,
        ANSIBLE_CONFIG=str(REPO / "ansible.cfg"),
        ANSIBLE_STDOUT_CALLBACK="ansible.builtin.json",
        PYTHONPATH=str(REPO / "collections"),
    )
    args = ["-i", f"{host},", str(directory / "play.yml"), "-e", f"@{directory / 'vars.json'}"]
    if netns is None:
        argv = programs.argv("ansible-playbook", *args)
    else:
        argv = programs.argv("ip", "netns", "exec", netns, programs.path("ansible-playbook"), *args)
    proc = subprocess.run(
        argv + (["--check", "--diff"] if check else []),
        capture_output=True,
        text=True,
        env=run_env,
        cwd=REPO,
        check=False,
    )
    stats = json.loads(proc.stdout)["stats"][host]
    failed = [
        "\n".join(result.get(key) or "" for key in ("msg", "stdout", "stderr")).strip()
        if with_output
        else result["msg"]
        for result in task_results(proc.stdout)
        if result.get("failed")
    ]
    return {"changed": stats["changed"], "failures": stats["failures"]}, failed, proc.stdout


def failed_items(stdout: str) -> list[str]:
    """The messages of the failed items of looped tasks in ansible-playbook's JSON ``stdout``
    (the task's own message is then only "One or more items failed")."""
    return [
        item["msg"]
        for result in task_results(stdout)
        if result.get("failed")
        for item in result.get("results") or []
        if item.get("failed")
    ]
