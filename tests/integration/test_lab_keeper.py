"""`make lab` leaves its lab up after it exits, until `make lab-down`; any test session meanwhile
runs staticpods.remove_leftovers (tests/integration/conftest.py), which removes the labs whose
creator is gone. The network of a `make lab` lab names the state file that keeps it
(staticpods.KEEPER_LABEL): while that file exists the lab is not a leftover. Before this, a
helper's test run removed a developer's running `make lab` a minute after it came up.

Uses a podman network of its own (``c58cp-kt<pid>``, no containers), removed at the end."""

from __future__ import annotations

import os
import subprocess

import pytest

from cloud58_lab import staticpods
from cloud58_lab.nodes import podman_env


@pytest.fixture
def network(tmp_path):
    dc = f"kt{os.getpid()}"
    state = tmp_path / "state.json"
    state.write_text("{}\n")
    env = podman_env()
    subprocess.run(
        ["podman", "network", "create", "--label", f"{staticpods.KEEPER_LABEL}={state}", f"c58cp-{dc}"],
        check=True, capture_output=True, env=env,
    )  # fmt: skip
    try:
        yield dc, state, env
    finally:
        subprocess.run(["podman", "network", "rm", "--force", f"c58cp-{dc}"], check=False, env=env)


def _exists(name: str, env: dict) -> bool:
    return subprocess.run(["podman", "network", "exists", name], check=False, env=env).returncode == 0


def test_a_make_lab_lab_is_kept_while_its_state_file_exists(network):
    dc, state, env = network
    said = []
    assert staticpods.keeper(dc, env) == str(state)
    assert staticpods.remove_leftovers([dc], out=said.append) == []
    assert said == [
        f"static-pod lab {dc} is up by `make lab` ({state}); left alone: `make lab-down` removes it"
    ]
    assert _exists(f"c58cp-{dc}", env)


def test_without_its_state_file_the_lab_has_no_keeper(network):
    dc, state, env = network
    state.unlink()
    assert staticpods.keeper(dc, env) is None


def test_a_lab_without_the_label_has_no_keeper():
    assert staticpods.keeper(f"nolab{os.getpid()}", podman_env()) is None
