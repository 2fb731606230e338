"""What the base role's argument_specs accept and refuse, through Ansible's own validator.

The role's first task (validate_argument_spec) runs the same ArgumentSpecValidator, so a
bad inventory value fails there, before any file on the node is touched.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from ansible.module_utils.common.arg_spec import ArgumentSpecValidator

ROLE_DIR = Path(__file__).resolve().parents[3] / "roles" / "base"
DEFAULTS = yaml.safe_load((ROLE_DIR / "defaults" / "main.yml").read_text())
OPTIONS = yaml.safe_load((ROLE_DIR / "meta" / "argument_specs.yml").read_text())["argument_specs"]["main"][
    "options"
]


def _validate(**overrides):
    result = ArgumentSpecValidator(OPTIONS).validate({**DEFAULTS, **overrides})
    return [str(e) for e in result.errors], result.validated_parameters


def test_defaults_pass_unchanged():
    assert _validate() == ([], DEFAULTS)


@pytest.mark.parametrize(
    ("overrides", "expected"),
    [
        pytest.param(
            {"base_labels": {"pool": "gpu"}, "base_datacenter": "bj1", "base_rack": "r07"},
            {"base_labels": {"pool": "gpu"}, "base_datacenter": "bj1", "base_rack": "r07"},
            id="identity",
        ),
        pytest.param(
            {"base_journald_rate_limit_burst": "2000"},
            {"base_journald_rate_limit_burst": 2000},
            id="burst-from-extra-vars-string",
        ),
        pytest.param(
            {"base_motd_extra_lines": ["owner: sre", 7]},
            {"base_motd_extra_lines": ["owner: sre", "7"]},
            id="banner-lines-become-strings",
        ),
    ],
)
def test_valid_values_are_accepted(overrides, expected):
    errors, params = _validate(**overrides)
    assert (errors, {k: params[k] for k in expected}) == ([], expected)


@pytest.mark.parametrize(
    ("overrides", "expected"),
    [
        pytest.param(
            {"base_journald_storage": "disk"},
            "value of base_journald_storage must be one of: persistent, volatile, auto, none, got: disk",
            id="storage-outside-choices",
        ),
        pytest.param(
            {"base_labels": 5},
            "argument 'base_labels' is of type int and we were unable to convert to dict: "
            "<class 'int'> cannot be converted to a dict",
            id="labels-not-a-dict",
        ),
        pytest.param(
            {"base_journald_rate_limit_burst": "many"},
            "argument 'base_journald_rate_limit_burst' is of type str and we were unable to convert to int: "
            "\"'many'\" cannot be converted to an int",
            id="burst-not-a-number",
        ),
    ],
)
def test_invalid_values_are_refused(overrides, expected):
    errors, _params = _validate(**overrides)
    assert errors == [expected]
