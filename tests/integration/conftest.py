"""Integration-tier fixtures shared by every test module in this directory."""

from __future__ import annotations

import pytest

from cloud58_lab import staticpods


@pytest.fixture(scope="session", autouse=True)
def _no_static_pod_lab_leftovers():
    """A killed run leaves its podman hosts and network behind under fixed names: remove
    them before any test would trip over them (a lab whose creator still runs is kept)."""
    problems = staticpods.remove_leftovers()
    assert problems == [], f"could not remove the leftovers of an earlier static-pod lab run: {problems}"
