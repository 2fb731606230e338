"""Plans of the example inventories, shared by the control plane tests."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest

from ansible_collections.cloud58.platform.plugins.module_utils.topology import build_plan, load_inventory

REPO = Path(__file__).resolve().parents[9]
_PLANS: dict = {}


def inventory_plan(name: str) -> dict:
    """A fresh copy of ``inventories/<name>``'s plan as plain dicts."""
    if name not in _PLANS:
        _PLANS[name] = build_plan(load_inventory(str(REPO / "inventories" / name))).as_dict()
    return copy.deepcopy(_PLANS[name])


@pytest.fixture
def lab_plan() -> dict:
    return inventory_plan("lab")


@pytest.fixture
def bj1_plan() -> dict:
    return inventory_plan("bj1")
