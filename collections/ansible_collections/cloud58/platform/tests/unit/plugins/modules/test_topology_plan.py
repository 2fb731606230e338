# -*- coding: utf-8 -*-
# Copyright: cloud58 platform team
# Apache License 2.0
# The expected messages are whole lines, as a person reads them: not wrapped.
# ruff: noqa: E501
"""The module cloud58.platform.topology_plan, called directly and through playbooks/validate.yml."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys

import pytest
import yaml
from ansible.module_utils.testing import patch_module_args

from ansible_collections.cloud58.platform.plugins.doc_fragments import attributes
from ansible_collections.cloud58.platform.plugins.module_utils.topology import build_plan, load_inventory
from ansible_collections.cloud58.platform.plugins.modules import topology_plan

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), *([".."] * 8)))
PLAYBOOK = os.path.join(REPO, "playbooks", "validate.yml")


def _params(path):
    inventory = load_inventory(path)
    return {
        "datacenters": inventory.datacenters,
        "clusters": inventory.clusters,
        "hosts": inventory.hosts,
        "groups": inventory.groups,
        "bgp_options": inventory.bgp_options,
    }


def _run_module(args, capsys):
    with patch_module_args(args), pytest.raises(SystemExit) as info:
        topology_plan.main()
    return info.value.code, json.loads(capsys.readouterr().out)


def test_argspec():
    assert topology_plan.argspec() == {
        "datacenters": {"type": "raw"},
        "clusters": {"type": "raw", "default": {}},
        "hosts": {"type": "dict", "required": True},
        "groups": {"type": "dict", "required": True},
        "bgp_options": {"type": "raw", "default": {}},
    }


@pytest.mark.parametrize("check_mode", [False, True], ids=["run", "check-mode"])
def test_plans_the_lab_and_changes_nothing(capsys, check_mode):
    path = os.path.join(REPO, "inventories", "lab")
    args = dict(_params(path), _ansible_check_mode=check_mode)
    code, result = _run_module(args, capsys)
    assert code == 0
    assert result["changed"] is False
    assert "failed" not in result
    assert result["plan"] == build_plan(load_inventory(path)).as_dict()
    assert result["summary"] == [
        "lab1 (lab): 2 racks, 7 hosts, clusters lab1-k8s, 2 LVS directors, 2 VIPs, 3 Consul servers",
        "lab2 (lab): 2 racks, 7 hosts, clusters lab2-k8s, 2 LVS directors, 2 VIPs, 3 Consul servers",
    ]


def test_fails_with_every_problem(capsys):
    args = _params(os.path.join(REPO, "inventories", "lab"))
    args["hosts"]["lab1-w2"]["address"] = "198.18.0.5"
    args["datacenters"]["lab2"]["bgp"]["mode"] = "ibgp"
    code, result = _run_module(args, capsys)
    assert code == 1
    assert result["failed"] is True
    assert result["changed"] is False
    assert result["kinds"] == ["host-outside-rack", "invalid-choice"]
    assert result["msg"].splitlines() == [
        "the inventory has 2 problems:",
        "  - datacenter 'lab1', rack 'lab1-r2', host 'lab1-w2': address = '198.18.0.5': "
        "outside the rack's node subnet 198.18.0.64/26 [host-outside-rack]",
        "  - datacenter 'lab2': bgp.mode = 'ibgp': must be one of ebgp, route_reflector; did you mean 'ebgp'? "
        "[invalid-choice]",
    ]


def test_bad_bgp_option_fails_naming_the_field_and_value(capsys):
    args = _params(os.path.join(REPO, "inventories", "lab"))
    args["bgp_options"] = {"maximum_paths": 200}
    code, result = _run_module(args, capsys)
    assert code == 1
    assert result["kinds"] == ["out-of-range"]
    assert result["msg"].splitlines() == [
        "the inventory has 1 problem:",
        "  - inventory: cloud58_bgp_options.maximum_paths = 200: outside 1..128 [out-of-range]",
    ]


def test_missing_datacenters_is_a_problem_not_an_argument_error(capsys):
    code, result = _run_module({"hosts": {}, "groups": {}}, capsys)
    assert code == 1
    assert result["msg"].splitlines() == [
        "the inventory has 2 problems:",
        "  - inventory: cloud58_datacenters = null: no datacenter is defined (set it in group_vars/all) [missing-field]",
        "  - inventory: groups = []: no host is in any role group (masters, etcd_events, minions, lvs, "
        "consul_servers) [no-hosts]",
    ]


def test_documentation_is_valid_yaml_with_the_argspec_options():
    doc = yaml.safe_load(topology_plan.DOCUMENTATION)
    assert doc["module"] == "topology_plan"
    assert set(doc["options"]) == set(topology_plan.argspec())
    # check_mode (full) and diff_mode (none) come from the shared fragment
    assert doc["extends_documentation_fragment"] == [
        "cloud58.platform.attributes",
        "cloud58.platform.attributes.no_diff",
    ]
    assert "attributes" not in doc
    assert (
        yaml.safe_load(attributes.ModuleDocFragment.DOCUMENTATION)["attributes"]["check_mode"]["support"]
        == "full"
    )
    assert isinstance(yaml.safe_load(topology_plan.EXAMPLES), list)
    assert set(yaml.safe_load(topology_plan.RETURN)) == {"plan", "summary", "kinds"}


# ---- through ansible-playbook -----------------------------------------------------------


def _ansible_playbook(inventory, playbook=PLAYBOOK, callback=None):
    env = dict(os.environ, ANSIBLE_CONFIG=os.path.join(REPO, "ansible.cfg"), ANSIBLE_NOCOLOR="1")
    if callback:
        env["ANSIBLE_STDOUT_CALLBACK"] = callback
    tool = os.path.join(os.path.dirname(sys.executable), "ansible-playbook")
    return subprocess.run(
        [tool, "-i", str(inventory), playbook], capture_output=True, text=True, env=env, check=False
    )


def _json_report(stdout):
    # other callbacks (profile_tasks, if a user enables it) may print lines around the JSON document
    start = ("\n" + stdout).index("\n{\n")
    report = json.JSONDecoder().raw_decode(stdout[start:])[0]
    return report


@pytest.mark.slow
@pytest.mark.parametrize("name", ["lab", "bj1", "sh1"])
def test_validate_playbook_passes_and_plans_like_the_python_api(name):
    path = os.path.join(REPO, "inventories", name)
    run = _ansible_playbook(path, callback="ansible.posix.json")
    assert run.returncode == 0, run.stdout + run.stderr
    report = _json_report(run.stdout)
    tasks = {task["task"]["name"]: task for task in report["plays"][0]["tasks"]}
    task = tasks["Plan every datacenter of the inventory"]
    result = task["hosts"]["localhost"]
    assert result["changed"] is False
    # Ansible's hostvars path and the offline loader give byte-identical plans
    assert (
        build_plan(load_inventory(path)).to_json()
        == json.dumps(result["plan"], sort_keys=True, indent=2, ensure_ascii=True, separators=(",", ": "))
        + "\n"
    )


@pytest.mark.slow
def test_validate_playbook_fails_clearly_on_a_broken_inventory(tmp_path):
    broken = tmp_path / "broken"
    shutil.copytree(os.path.join(REPO, "inventories", "lab"), broken)
    hosts = (broken / "hosts.yml").read_text()
    hosts = hosts.replace(
        "lab1-w2: {rack: lab1-r2, address: 198.18.0.85", "lab1-w2: {rack: lab1-r2, address: 198.18.0.5"
    )
    hosts = hosts.replace("lab2-m3: {rack: lab2-r1,", "lab2-m3: {rack: lab2-r7,")
    (broken / "hosts.yml").write_text(hosts)
    datacenters = (broken / "group_vars/all/datacenters.yml").read_text()
    (broken / "group_vars/all/datacenters.yml").write_text(
        datacenters.replace("      nodes: 198.19.0.0/24", "      nodez: 198.19.0.0/24")
    )
    run = _ansible_playbook(broken)
    output = run.stdout + run.stderr
    assert run.returncode == 2
    assert "Traceback" not in output
    for line in (
        "the inventory has 4 problems:",
        "- datacenter 'lab1', rack 'lab1-r2', host 'lab1-w2': address = '198.18.0.5': outside the rack's node subnet "
        "198.18.0.64/26 [host-outside-rack]",
        "- datacenter 'lab2': networks.nodes = null: required field of a datacenter networks is missing [missing-field]",
        "- datacenter 'lab2': networks.nodez = '198.19.0.0/24': unknown field of a datacenter networks; did you mean "
        "'nodes'? [unknown-field]",
        "- host 'lab2-m3': rack = 'lab2-r7': no such rack in this inventory; did you mean 'lab2-r1'? [unknown-rack]",
    ):
        assert line in output
    assert "Report what was planned" not in output  # the play stopped at the failure


@pytest.mark.slow
@pytest.mark.parametrize(
    ("path", "old", "new", "expected"),
    [
        pytest.param(
            "hosts.yml",
            "lab1-w2: {rack: lab1-r2, address: 198.18.0.85",
            "lab1-w2: {rack: lab1-r2, rack: lab1-r1, address: 198.18.0.85",
            [
                "YAML parsing failed: Found duplicate mapping key 'rack'.",
                "[ERROR]: Completely failed to parse inventory source {inventory}/hosts.yml",
            ],
            id="duplicate-key-in-hosts",
        ),
        pytest.param(
            "hosts.yml",
            "    minions:\n",
            "    minions:\n  - broken\n",
            ["[ERROR]: Completely failed to parse inventory source {inventory}/hosts.yml"],
            id="hosts-file-that-does-not-parse",
        ),
        pytest.param(
            "group_vars/all/datacenters.yml",
            "      nodes: 198.19.0.0/24",
            "      nodes: 198.19.0.0/24\n      nodes: 198.19.1.0/24",
            # Ansible 2.19 names only the key for group_vars/all; the vars plugin
            # cloud58.platform.host_group_vars (ansible.cfg) adds the file and line
            [
                "[ERROR]: {inventory}/group_vars/all/datacenters.yml:39: YAML parsing failed: "
                "Found duplicate mapping key 'nodes'."
            ],
            id="duplicate-key-in-group-vars",
        ),
    ],
)
def test_validate_refuses_an_inventory_ansible_would_read_silently_wrong(tmp_path, path, old, new, expected):
    """Ansible's defaults warn on a duplicate key (the last one wins) and on an inventory file
    that does not parse (the run goes on without its hosts); ansible.cfg makes both errors."""
    broken = tmp_path / "broken"
    shutil.copytree(os.path.join(REPO, "inventories", "lab"), broken)
    text = (broken / path).read_text()
    assert text.count(old) == 1
    (broken / path).write_text(text.replace(old, new))
    run = _ansible_playbook(broken)
    output = run.stdout + run.stderr
    assert run.returncode != 0
    assert "Traceback" not in output
    assert [line for line in expected if line.format(inventory=broken) not in output] == []
    assert "Report what was planned" not in output


def test_site_playbook_runs_the_preflight_before_any_host_play():
    with open(os.path.join(REPO, "playbooks", "site.yml"), encoding="utf-8") as handle:
        site = yaml.safe_load(handle)
    assert site[0]["ansible.builtin.import_playbook"] == "validate.yml"
    # Then the check of the Calico release on the controller alone, and the first host play.
    assert site[1]["hosts"] == "localhost"
    assert site[2]["hosts"] == "all"
    assert site[2]["roles"] == [{"role": "cloud58.platform.base"}]
    with open(PLAYBOOK, encoding="utf-8") as handle:
        validate = yaml.safe_load(handle)
    assert len(validate) == 1
    play = validate[0]
    # localhost:all, tasks once on the controller: --limit never matches the implicit localhost
    assert (play["hosts"], play["connection"], play["gather_facts"], play["any_errors_fatal"]) == (
        "localhost:all",
        "local",
        False,
        True,
    )
    [block] = play["tasks"]
    assert (block["run_once"], block["delegate_to"]) == (True, "localhost")
