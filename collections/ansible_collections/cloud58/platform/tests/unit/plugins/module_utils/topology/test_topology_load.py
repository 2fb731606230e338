# -*- coding: utf-8 -*-
# Copyright: cloud58 platform team
# Apache License 2.0
"""The offline inventory loader: Ansible's layout and precedence, and unreadable files."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys

import pytest

from ansible_collections.cloud58.platform.plugins.module_utils.topology import (
    PlanError,
    build_plan,
    host_topology_vars,
    load_inventory,
    plan_paths,
)
from ansible_collections.cloud58.platform.plugins.module_utils.topology.inventory import expand_host_pattern

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), *([".."] * 9)))
LAB = os.path.join(REPO, "inventories", "lab")


def _write(path, text):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w", encoding="utf-8") as handle:
        handle.write(text)


@pytest.fixture
def lab_copy(tmp_path):
    target = tmp_path / "lab"
    shutil.copytree(LAB, target)
    return target


def test_the_lab_inventory_loads_both_datacenters():
    inventory = load_inventory(LAB)
    assert sorted(inventory.datacenters) == ["lab1", "lab2"]
    assert sorted(inventory.clusters) == ["lab1-k8s", "lab2-k8s"]
    assert inventory.bgp_options == {
        "fixed_ip_reservations": {"lab1-k8s": {"lab-demo-fixed": ["198.18.16.200", "198.18.16.240/30"]}}
    }
    assert inventory.problems == []
    assert inventory.groups["masters"] == ["lab1-m1", "lab1-m2", "lab1-m3", "lab2-m1", "lab2-m2", "lab2-m3"]
    assert inventory.groups["etcd_events"] == inventory.groups["masters"]
    assert len(inventory.groups["all"]) == 14
    assert inventory.groups["ungrouped"] == []
    assert inventory.hosts["lab1-w1"] == {
        "rack": "lab1-r1",
        "address": "198.18.0.21",
        "labels": {"function": "ingress"},
    }


@pytest.mark.parametrize(
    ("files", "expected"),
    [
        pytest.param({}, "lab1-r1", id="inline-host-var"),
        pytest.param({"group_vars/minions.yml": "rack: from-group\n"}, "lab1-r1", id="host-beats-group-vars"),
        pytest.param(
            {"host_vars/lab1-w1.yml": "rack: from-host-vars\n"}, "from-host-vars", id="host-vars-beat-inline"
        ),
        pytest.param(
            {"host_vars/lab1-w1/a.yml": "rack: first\n", "host_vars/lab1-w1/b.yml": "rack: second\n"},
            "second",
            id="host-vars-dir-files-in-order",
        ),
    ],
)
def test_host_variable_precedence(lab_copy, files, expected):
    for name, text in files.items():
        _write(str(lab_copy / name), text)
    assert load_inventory(lab_copy).hosts["lab1-w1"]["rack"] == expected


def test_group_vars_precedence_all_then_parent_then_child(tmp_path):
    _write(
        str(tmp_path / "hosts.yml"),
        "all:\n  vars: {labels: {function: inline-all}}\n  children:\n"
        "    minions:\n      hosts:\n        a: {rack: r1, address: 10.0.0.10}\n        b:\n"
        "      vars: {labels: {function: inline-minions}}\n"
        "    special:\n      children:\n        minions:\n",
    )
    _write(str(tmp_path / "group_vars/all/labels.yml"), "labels: {function: all-file}\ncluster: c1\n")
    _write(str(tmp_path / "group_vars/special.yml"), "labels: {function: special-file}\n")
    _write(str(tmp_path / "group_vars/minions.yaml"), "labels: {function: minions-file}\n")
    _write(str(tmp_path / "host_vars/b.yml"), "rack: r2\naddress: 10.0.0.11\n")
    inventory = load_inventory(tmp_path)
    # group_vars files beat every inline group var; the child group (depth 2) beats its parent
    assert inventory.hosts["a"] == {
        "rack": "r1",
        "address": "10.0.0.10",
        "labels": {"function": "minions-file"},
        "cluster": "c1",
    }
    assert inventory.hosts["b"]["rack"] == "r2"
    assert inventory.groups["special"] == ["a", "b"]
    assert inventory.groups["all"] == ["a", "b"]


def _write_precedence_fixture(root):
    _write(
        str(root / "hosts.yml"),
        "all:\n  vars: {labels: {function: inline-all}}\n  children:\n"
        "    minions:\n      hosts:\n        a: {rack: r1, address: 10.0.0.10}\n        b:\n"
        "        c: {labels: {function: inline-host}}\n"
        "      vars: {labels: {function: inline-minions}, cluster: inline-minions}\n"
        "    special:\n      children:\n        minions:\n      vars: {address: 10.0.0.99}\n"
        "    lvs:\n      hosts:\n        d: {rack: r3}\n",
    )
    _write(str(root / "group_vars/all/labels.yml"), "labels: {function: all-file}\ncluster: c1\n")
    _write(str(root / "group_vars/special.yml"), "labels: {function: special-file}\nrack: special-file\n")
    _write(str(root / "group_vars/minions.yaml"), "labels: {function: minions-file}\n")
    _write(str(root / "host_vars/b.yml"), "rack: r2\naddress: 10.0.0.11\n")
    _write(str(root / "host_vars/c/x.yml"), "address: 10.0.0.12\n")


def test_host_variables_match_what_ansible_inventory_resolves(tmp_path):
    _write_precedence_fixture(tmp_path)
    tool = os.path.join(os.path.dirname(sys.executable), "ansible-inventory")
    env = dict(os.environ, ANSIBLE_CONFIG=os.path.join(REPO, "ansible.cfg"))
    result = subprocess.run(
        [tool, "-i", str(tmp_path), "--list"], capture_output=True, text=True, env=env, check=True
    )
    listed = json.loads(result.stdout)
    expected = {host: host_topology_vars(values) for host, values in listed["_meta"]["hostvars"].items()}
    inventory = load_inventory(tmp_path)
    assert inventory.hosts == expected
    assert inventory.hosts["a"] == {
        "rack": "r1",
        "address": "10.0.0.10",
        "labels": {"function": "minions-file"},
        "cluster": "c1",
    }
    for group in ("minions", "special", "lvs"):
        assert sorted(inventory.groups[group]) == sorted(
            listed[group].get("hosts", []) or _children_hosts(listed, group)
        )


def _children_hosts(listed, group):
    hosts = []
    for child in listed[group].get("children", []):
        hosts += listed[child].get("hosts", [])
    return hosts


def test_host_ranges_are_expanded(tmp_path):
    _write(str(tmp_path / "hosts.yml"), "minions:\n  hosts:\n    node[01:03]-x:\n    r[a:c]:\n")
    inventory = load_inventory(tmp_path)
    assert inventory.groups["minions"] == ["node01-x", "node02-x", "node03-x", "ra", "rb", "rc"]


@pytest.mark.parametrize(
    ("pattern", "expected"),
    [
        pytest.param("web", ["web"], id="plain"),
        pytest.param("n[1:3]", ["n1", "n2", "n3"], id="numeric"),
        pytest.param("n[08:10]", ["n08", "n09", "n10"], id="zero-padded"),
        pytest.param("n[0:6:3]", ["n0", "n3", "n6"], id="step"),
        pytest.param("r[1:2]-n[1:2]", ["r1-n1", "r1-n2", "r2-n1", "r2-n2"], id="two-ranges"),
    ],
)
def test_expand_host_pattern(pattern, expected):
    assert expand_host_pattern(pattern) == expected


def test_unsafe_and_vault_tags_do_not_stop_the_loader(lab_copy):
    _write(
        str(lab_copy / "group_vars/all/secrets.yml"),
        "db_password: !vault |\n  $ANSIBLE_VAULT;1.1;AES256\n  3036\nbanner: !unsafe '{{ not templated }}'\n",
    )
    assert sorted(build_plan(load_inventory(lab_copy))["datacenters"]) == ["lab1", "lab2"]


def test_only_topology_fields_and_their_lookalikes_are_kept():
    variables = {
        "rack": "r1",
        "address": "10.0.0.1",
        "labels": {},
        "cluster": "c",
        "racks": "typo",
        "adress": "typo",
        "ansible_host": "10.9.9.9",
        "ansible_address": "ignored",
        "cloud58_datacenters": {},
        "base_sysctl": {},
        "groups": {},
        "ip": "10.0.0.2",
    }
    assert sorted(host_topology_vars(variables)) == [
        "address",
        "adress",
        "cluster",
        "labels",
        "rack",
        "racks",
    ]


def _problems(path):
    with pytest.raises(PlanError) as info:
        build_plan(load_inventory(path))
    return [str(p) for p in info.value.problems]


def test_unreadable_yaml_is_reported_with_the_file(lab_copy):
    path = lab_copy / "group_vars/all/clusters.yml"
    _write(str(path), "cloud58_clusters:\n  lab1-k8s: [unclosed\n")
    problems = _problems(lab_copy)
    assert len(problems) == 1
    assert problems[0].startswith(
        f"file '{path}': file = null: cannot parse YAML: while parsing a flow sequence"
    )
    assert problems[0].endswith("[unreadable-inventory]")


@pytest.mark.parametrize(
    ("files", "expected"),
    [
        pytest.param(
            {"hosts.yml": "all:\n  children:\n    masters:\n      host:\n        a:\n"},
            "file '{dir}/hosts.yml': file = null: group 'masters' has key 'host'; a group holds only hosts, "
            "vars and children; did you mean 'hosts'? [unreadable-inventory]",
            id="group-key-typo",
        ),
        pytest.param(
            {"hosts.yml": "- a\n- b\n"},
            "file '{dir}/hosts.yml': file = null: a YAML inventory is a mapping of group names to groups "
            "[unreadable-inventory]",
            id="not-a-mapping",
        ),
        pytest.param(
            {"hosts.yml": "minions:\n  hosts:\n    n[3:1]:\n"},
            "file '{dir}/hosts.yml': file = null: host pattern 'n[3:1]' in group 'minions': "
            "host range is empty (begin > end) [unreadable-inventory]",
            id="empty-range",
        ),
        pytest.param(
            {"README.md": "not an inventory\n"},
            "file '{dir}': file = null: no YAML inventory file (hosts.yml) in this directory "
            "[unreadable-inventory]",
            id="no-inventory-file",
        ),
    ],
)
def test_inventory_file_problems(tmp_path, files, expected):
    for name, text in files.items():
        _write(str(tmp_path / name), text)
    assert _problems(tmp_path) == [expected.format(dir=tmp_path)]


def test_a_missing_directory_is_a_problem_not_a_traceback(tmp_path):
    missing = tmp_path / "nope"
    assert _problems(missing) == [
        f"file '{missing}': file = null: no such inventory directory or file [unreadable-inventory]"
    ]


def test_unreadable_inventories_are_reported_with_the_other_inventories_problems(tmp_path, lab_copy):
    broken = tmp_path / "broken"
    _write(str(broken / "hosts.yml"), "all: [\n")
    _write(str(lab_copy / "group_vars/all/clusters.yml"), "cloud58_clusters: {}\n")
    with pytest.raises(PlanError) as info:
        plan_paths([broken, lab_copy])
    # no-cluster, and the lab's fixed-IP reservation now names a cluster the copy does not define
    assert info.value.kinds() == ["no-cluster", "unknown-cluster", "unreadable-inventory"]


@pytest.mark.parametrize("name", ["lab", "bj1", "sh1"])
def test_the_plan_of_a_path_or_of_its_loaded_inventory_is_the_same(name):
    path = os.path.join(REPO, "inventories", name)
    assert plan_paths([path]).to_json() == build_plan(load_inventory(path)).to_json()
