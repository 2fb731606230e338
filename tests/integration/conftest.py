"""Integration-tier fixtures shared by every test module in this directory."""

from __future__ import annotations

import os
import subprocess
import tempfile

import pytest

from cloud58_lab import staticpods


def _podman_has(kind: str, name: str) -> bool:
    env = dict(os.environ)
    return (
        subprocess.run(["podman", kind, "exists", name], capture_output=True, env=env, check=False).returncode
        == 0
    )


@pytest.fixture(scope="session", autouse=True)
def _no_static_pod_lab_leftovers():
    """A run that was killed (a CI timeout, a stopped session) leaves its podman masters and
    network behind under fixed names; remove them, by those exact names, before any test
    would trip over them. A lab whose creator is still running is not a leftover."""
    for dc in ("lab1", "lab2"):
        owner = staticpods.live_owner(dc)
        if owner is not None:
            # Another test run (same names, same addresses) is using it right now: leave it;
            # this run's own static-pod lab, if it has one, then fails to start and says so.
            print(f"static-pod lab {dc} belongs to the running process {owner}; left alone")
            continue
        if _podman_has("network", f"c58cp-{dc}") or _podman_has("container", f"c58cp-{dc}-m1"):
            with tempfile.TemporaryDirectory(prefix="c58cp-leftovers-") as workdir:
                problems = staticpods.down(dc, workdir)
            assert problems == [], (
                f"could not remove the leftovers of an earlier static-pod lab run: {problems}"
            )
