"""The lab tier: `make lab` end to end. Its own tier (`make lab-e2e`) so that CI runs it
beside the integration tier instead of after it."""

from __future__ import annotations

import pytest

from cloud58_lab import staticpods


@pytest.fixture(scope="session", autouse=True)
def _no_static_pod_lab_leftovers():
    """As in tests/integration/conftest.py: a killed run's lab is removed by its fixed names."""
    problems = staticpods.remove_leftovers()
    assert problems == [], f"could not remove the leftovers of an earlier static-pod lab run: {problems}"
