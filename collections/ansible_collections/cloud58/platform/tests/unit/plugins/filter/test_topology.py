# -*- coding: utf-8 -*-
# Copyright: cloud58 platform team
# Apache License 2.0
# The expected messages are whole lines, as a person reads them: not wrapped.
# ruff: noqa: E501
"""The topology_* filters: thin adapters, one AnsibleFilterError per bad input."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
from ansible.errors import AnsibleFilterError

from ansible_collections.cloud58.platform.plugins.filter.topology import (
    FilterModule,
    topology_host,
    topology_host_vars,
    topology_plan,
)
from ansible_collections.cloud58.platform.plugins.module_utils.topology import build_plan, load_inventory

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), *([".."] * 8)))
LAB = os.path.join(REPO, "inventories", "lab")


@pytest.fixture(scope="module")
def lab():
    return load_inventory(LAB)


@pytest.fixture(scope="module")
def lab_plan(lab):
    return topology_plan(lab.datacenters, lab.clusters, lab.hosts, lab.groups, lab.bgp_options)


def test_filters_are_registered():
    assert sorted(FilterModule().filters()) == ["topology_host", "topology_host_vars", "topology_plan"]


def test_topology_plan_is_the_planner_plan(lab, lab_plan):
    assert lab_plan == build_plan(lab).as_dict()
    assert isinstance(lab_plan, dict)


def test_topology_host_vars_keeps_topology_fields_only():
    hostvars = {
        "a": {
            "rack": "r1",
            "address": "10.0.0.1",
            "ansible_host": "x",
            "inventory_hostname": "a",
            "groups": {},
        },
        "b": {"rack": "r2", "adress": "10.0.0.2", "cloud58_datacenters": {}},
        "c": {},
    }
    assert topology_host_vars(hostvars, ["a", "b"]) == {
        "a": {"rack": "r1", "address": "10.0.0.1"},
        "b": {"rack": "r2", "adress": "10.0.0.2"},
    }


def test_topology_host_returns_one_entry(lab_plan):
    entry = topology_host(lab_plan, "lab2-w1")
    assert (entry["rack"], entry["bgp"]["asn"], [p["name"] for p in entry["bgp"]["peers"]]) == (
        "lab2-r1",
        65211,
        ["lab2-r1-tor1", "lab2-r1-tor2"],
    )


@pytest.mark.parametrize(
    ("call", "message"),
    [
        pytest.param(
            lambda plan: topology_host(plan, "nope"),
            "topology_host: host 'nope' (str) is not in the plan (not in a role group?)",
            id="unknown-host",
        ),
        pytest.param(
            lambda plan: topology_host(["not", "a", "plan"], "lab1-m1"),
            "topology_host expects a plan from topology_plan, got list",
            id="not-a-plan",
        ),
        pytest.param(
            lambda plan: topology_host_vars("hostvars", ["a"]),
            "topology_host_vars expects hostvars (a mapping), got 'hostvars' (str)",
            id="hostvars-not-a-mapping",
        ),
        pytest.param(
            lambda plan: topology_host_vars({}, "a"),
            "topology_host_vars expects a list of host names, got 'a' (str)",
            id="hosts-a-string",
        ),
        pytest.param(
            lambda plan: topology_host_vars({"a": {}}, ["a", "b"]),
            "topology_host_vars: host 'b' is not in hostvars",
            id="host-not-in-hostvars",
        ),
        pytest.param(
            lambda plan: topology_plan({}, {}, ["h"], {}),
            "topology_plan: hosts must map host names to variables, got ['h'] (list)",
            id="hosts-not-a-mapping",
        ),
        pytest.param(
            lambda plan: topology_plan({}, {}, {}, "all"),
            "topology_plan: groups must be Ansible's groups, got 'all' (str)",
            id="groups-not-a-mapping",
        ),
    ],
)
def test_bad_input_raises_one_filter_error(lab_plan, call, message):
    with pytest.raises(AnsibleFilterError) as info:
        call(lab_plan)
    assert info.value.message == message


def test_an_inventory_problem_is_a_filter_error_listing_all_problems(lab):
    hosts = {name: dict(values) for name, values in lab.hosts.items()}
    hosts["lab1-w1"]["rack"] = "lab1-r9"
    hosts["lab2-w1"]["labels"] = {"function": "web server"}
    with pytest.raises(AnsibleFilterError) as info:
        topology_plan(lab.datacenters, lab.clusters, hosts, lab.groups)
    assert info.value.message.splitlines() == [
        "the inventory has 2 problems:",
        "  - datacenter 'lab2', rack 'lab2-r1', host 'lab2-w1': labels.function = 'web server': not a valid label "
        "value: up to 63 of A-Z a-z 0-9 - _ . starting and ending alphanumeric [invalid-label]",
        "  - host 'lab1-w1': rack = 'lab1-r9': no such rack in this inventory; did you mean 'lab1-r1'? [unknown-rack]",
    ]


def _json_report(stdout):
    # other callbacks (profile_tasks, if a user enables it) may print lines around the JSON document
    start = ("\n" + stdout).index("\n{\n")
    report = json.JSONDecoder().raw_decode(stdout[start:])[0]
    return report


@pytest.mark.slow
def test_filters_in_a_playbook(tmp_path):
    playbook = tmp_path / "peers.yml"
    playbook.write_text(
        "- hosts: localhost\n"
        "  gather_facts: false\n"
        "  tasks:\n"
        "    - ansible.builtin.set_fact:\n"
        '        plan: "{{ cloud58_datacenters | cloud58.platform.topology_plan(cloud58_clusters,'
        " hostvars | cloud58.platform.topology_host_vars(groups['all']), groups) }}\"\n"
        "    - ansible.builtin.debug:\n"
        "        msg: \"{{ (plan | cloud58.platform.topology_host('lab1-m2')).bgp.peers"
        " | map(attribute='name') | join(',') }}\"\n"
    )
    env = dict(
        os.environ,
        ANSIBLE_CONFIG=os.path.join(REPO, "ansible.cfg"),
        ANSIBLE_STDOUT_CALLBACK="ansible.posix.json",
    )
    tool = os.path.join(os.path.dirname(sys.executable), "ansible-playbook")
    run = subprocess.run(
        [tool, "-i", LAB, str(playbook)], capture_output=True, text=True, env=env, check=False
    )
    assert run.returncode == 0, run.stdout + run.stderr
    report = _json_report(run.stdout)
    assert report["plays"][0]["tasks"][1]["hosts"]["localhost"]["msg"] == "lab1-r2-tor1,lab1-r2-tor2"
