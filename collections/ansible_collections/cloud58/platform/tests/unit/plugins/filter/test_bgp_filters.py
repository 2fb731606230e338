# -*- coding: utf-8 -*-
# Copyright: cloud58 platform team
# Apache License 2.0
"""The calico_release_problem filter: a thin adapter over bgp.calico_install.release_problem
(whose cases test_bgp_calico_install.py holds), one AnsibleFilterError per bad input."""

from __future__ import annotations

import pytest
from ansible.errors import AnsibleFilterError

from ansible_collections.cloud58.platform.plugins.filter.bgp import FilterModule, calico_release_problem

DIGEST = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"


def test_filters_are_registered():
    assert sorted(FilterModule().filters()) == [
        "calico_install",
        "calico_node_annotations",
        "calico_objects",
        "calico_release_problem",
        "tor_router_config",
        "tor_router_names",
    ]


@pytest.mark.parametrize(
    ("url", "sha256", "start"),
    [
        pytest.param("https://mirror.example/calico.yaml", DIGEST, "", id="verifiable"),
        pytest.param(
            "https://mirror.example/calico.yaml",
            "",
            "calico_manifest_sha256 is not set (inventory inventories/sh1): set calico_manifest_url to "
            "Calico v3.28.2's",
            id="no-digest",
        ),
    ],
)
def test_calico_release_problem_passes_the_line_through(url, sha256, start):
    problem = calico_release_problem(url, sha256, "v3.28.2", ["inventories/sh1"])
    assert problem[: len(start)] == start
    assert (problem == "") == (start == "")


@pytest.mark.parametrize("version", [None, "", 3.28], ids=["null", "empty", "float"])
def test_calico_release_problem_refuses_a_version_that_is_not_a_string(version):
    with pytest.raises(AnsibleFilterError) as e:
        calico_release_problem("https://mirror.example/calico.yaml", DIGEST, version)
    assert str(e.value) == f"calico_release_problem: version must be a string, got {version!r}"
