# -*- coding: utf-8 -*-
# Copyright: cloud58 platform team
# Apache License 2.0
"""The module cloud58.platform.role_vars_check, called directly; playbooks/validate.yml runs it
(test_preflight_corpus.py runs the playbook on broken inventories)."""

from __future__ import annotations

import json
import os

import pytest
import yaml
from ansible.module_utils.testing import patch_module_args

from ansible_collections.cloud58.platform.plugins.module_utils.topology.role_vars import (
    PREFLIGHT_KINDS,
    preflight_kinds_markdown,
)
from ansible_collections.cloud58.platform.plugins.module_utils.topology.sources import duplicate_host_problems
from ansible_collections.cloud58.platform.plugins.modules import role_vars_check

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), *([".."] * 8)))
ROLES_DIR = os.path.join(REPO, "collections", "ansible_collections", "cloud58", "platform", "roles")
GROUPS = {
    "all": ["m1", "w1", "w2", "w3", "w4", "w5"],
    "masters": ["m1"],
    "minions": ["w1", "w2", "w3", "w4", "w5"],
}
ROLES = [
    {"role": "base", "hosts": ["all"]},
    {"role": "kubelet", "hosts": ["masters", "minions"], "set_by_playbook": ["kubelet_max_pods"]},
    {"role": "tor_router", "hosts": ["localhost"]},
]


def _var(value, origin="inv/hosts.yml:3", unresolved=False):
    return {"value": value, "origin": origin, "unresolved": unresolved}


def _run(args, capsys):
    with patch_module_args(args), pytest.raises(SystemExit) as info:
        role_vars_check.main()
    return info.value.code, json.loads(capsys.readouterr().out)


def _args(hosts, **more):
    return dict({"roles_dir": ROLES_DIR, "roles": ROLES, "hosts": hosts, "groups": GROUPS}, **more)


@pytest.mark.parametrize("check_mode", [False, True], ids=["run", "check-mode"])
def test_good_variables_pass_and_change_nothing(capsys, check_mode):
    hosts = {
        "m1": {"kubelet_cgroup_driver": _var("cgroupfs"), "base_journald_rate_limit_burst": _var("200")},
        "localhost": {"tor_router_options": _var({"maximum_paths": 8})},
    }
    code, result = _run(_args(hosts, _ansible_check_mode=check_mode), capsys)
    assert (code, result["changed"], result.get("failed")) == (0, False, None)
    assert result["roles"] == ["base", "kubelet", "tor_router"]
    assert result["summary"] == "role variables of 2 hosts checked against roles base, kubelet, tor_router"


def test_every_problem_at_once_with_file_host_value_and_expectation(capsys):
    shared = _var("lots", origin="inv/group_vars/minions.yml:2")
    hosts = {name: {"base_journald_rate_limit_burst": shared} for name in GROUPS["minions"]}
    hosts["m1"] = {
        "kubelet_max_pod": _var(50, origin="inv/host_vars/m1.yml:2"),
        "kubelet_cgroup_driver": _var("sysd", origin="inv/host_vars/m1.yml:3"),
        "kubelet_max_pods": _var(20, origin="inv/host_vars/m1.yml:4"),
        "kubelet_extra_args": _var("{{ ansible_default_ipv4 }}", unresolved=True),
        "kubelet_fail_cgroup_v1": _var("maybe", origin="inv/host_vars/m1.yml:5"),
        "kubelet_whatever": _var(1, origin="inv/host_vars/m1.yml:6"),
    }
    hosts["localhost"] = {"tor_router_optionz": _var({}, origin="inv/group_vars/all/x.yml:2")}
    code, result = _run(_args(hosts), capsys)
    assert (code, result["failed"], result["changed"]) == (1, True, False)
    assert result["kinds"] == ["invalid-choice", "set-by-playbook", "unknown-variable", "wrong-type"]
    assert result["msg"].splitlines() == [
        "the inventory's files and role variables have 7 problems:",
        "  - inv/group_vars/all/x.yml:2, host 'localhost': tor_router_optionz = {}: role 'tor_router' "
        "declares no such variable; did you mean 'tor_router_options'? [unknown-variable]",
        "  - inv/group_vars/minions.yml:2, hosts 'w1', 'w2', 'w3' and 2 more: "
        "base_journald_rate_limit_burst = 'lots': expected int (role 'base'): \"'lots'\" cannot be "
        "converted to an int [wrong-type]",
        "  - inv/host_vars/m1.yml:2, host 'm1': kubelet_max_pod = 50: role 'kubelet' declares no such "
        "variable; did you mean 'kubelet_max_pods'? [unknown-variable]",
        "  - inv/host_vars/m1.yml:3, host 'm1': kubelet_cgroup_driver = 'sysd': expected one of "
        "systemd, cgroupfs (role 'kubelet'); did you mean 'systemd'? [invalid-choice]",
        "  - inv/host_vars/m1.yml:4, host 'm1': kubelet_max_pods = 20: the playbook sets it for role "
        "'kubelet' from the plan, so this value would never be used [set-by-playbook]",
        "  - inv/host_vars/m1.yml:5, host 'm1': kubelet_fail_cgroup_v1 = 'maybe': expected bool (role "
        "'kubelet'): The value 'maybe' is not a valid boolean [wrong-type]",
        "  - inv/host_vars/m1.yml:6, host 'm1': kubelet_whatever = 1: role 'kubelet' declares no such "
        "variable (see the role's meta/argument_specs.yml) [unknown-variable]",
    ]


def test_a_host_without_the_role_is_not_judged_by_it(capsys):
    # w1 is no master; a kubelet variable of a host outside masters/minions has no reader
    groups = dict(GROUPS, minions=["w2"])
    hosts = {"w1": {"kubelet_cgroup_driver": _var("sysd")}}
    code, result = _run(dict(_args(hosts), groups=groups), capsys)
    assert (code, result.get("failed")) == (0, None)


def test_a_role_without_argument_specs_fails_naming_the_file(capsys, tmp_path):
    code, result = _run(_args({}, roles_dir=str(tmp_path)), capsys)
    assert code == 1
    assert (
        result["msg"]
        == f"role 'base': cannot read {tmp_path}/base/meta/argument_specs.yml: No such file or directory"
    )


def test_documentation_matches_the_argspec():
    doc = yaml.safe_load(role_vars_check.DOCUMENTATION)
    assert doc["module"] == "role_vars_check"
    assert set(doc["options"]) == set(role_vars_check.argspec())
    assert set(doc["options"]["roles"]["suboptions"]) == set(role_vars_check.argspec()["roles"]["options"])
    assert doc["extends_documentation_fragment"] == [
        "cloud58.platform.attributes",
        "cloud58.platform.attributes.no_diff",
    ]
    assert isinstance(yaml.safe_load(role_vars_check.EXAMPLES), list)
    assert set(yaml.safe_load(role_vars_check.RETURN)) == {"roles", "summary", "kinds"}


def test_the_kinds_table_of_docs_inventory_md_is_current():
    with open(os.path.join(REPO, "docs", "inventory.md"), encoding="utf-8") as handle:
        text = handle.read()
    start = text.index("<!-- preflight kinds: generated by preflight_kinds_markdown() -->\n")
    end = text.index("<!-- end preflight kinds -->")
    table = text[start:end].split("\n", 1)[1]
    assert table == preflight_kinds_markdown()
    assert len(PREFLIGHT_KINDS) == 7


# ---- validate.yml's table of roles follows the playbooks ------------------------------


def _plays(name):
    with open(os.path.join(REPO, "playbooks", name), encoding="utf-8") as handle:
        for play in yaml.safe_load(handle):
            imported = play.get("ansible.builtin.import_playbook")
            if imported:
                if imported != "validate.yml":
                    yield from _plays(imported)
                continue
            yield play


# Plays whose hosts are computed from the plan, by role: the group those hosts belong to.
# The routers' play is left out: its role is checked where the play before includes it.
COMPUTED_HOSTS = {
    "cloud58.platform.haproxy_gateway": "minions",  # the ingress nodes
    "cloud58.platform.prometheus": "masters:monitoring",  # the group, else the first masters
    "cloud58.platform.log_store": "masters:monitoring:logs",  # logs, else the Prometheus hosts
    "cloud58.platform.log_shipper": "all",  # every host of the plan
    "cloud58.platform.consul": "all",  # every host of the plan
    "cloud58.platform.consul_sync": "masters:minions:consul_sync",  # the group, else the first masters
    "cloud58.platform.node_exporter": "all",  # every host of the plan
}


def _roles_applied():
    """{role: (groups, variables the playbooks set)} as site.yml and its imports apply them."""
    out = {}
    for play in _plays("site.yml"):
        hosts = play["hosts"]
        if "{{" in hosts:
            roles = [entry["role"] for entry in play.get("roles") or []] + [
                task["ansible.builtin.include_role"]["name"]
                for task in play.get("tasks") or []
                if "ansible.builtin.include_role" in task
            ]
            if len(roles) != 1 or roles[0] not in COMPUTED_HOSTS:
                continue  # the routers that are inventory hosts
            hosts = COMPUTED_HOSTS[roles[0]]
        uses = [(entry["role"], entry.get("vars") or {}) for entry in play.get("roles") or []]
        for task in play.get("tasks") or []:
            if "ansible.builtin.include_role" in task:
                uses.append((task["ansible.builtin.include_role"]["name"], task.get("vars") or {}))
        for role, variables in uses:
            groups, given = out.setdefault(role.split(".")[-1], (set(), set()))
            groups.update(hosts.split(":"))
            given.update(variables)
    return out


def test_validate_checks_the_roles_site_yml_applies_where_it_applies_them():
    with open(os.path.join(REPO, "playbooks", "validate.yml"), encoding="utf-8") as handle:
        table = yaml.safe_load(handle)[0]["vars"]["validate__roles"]
    # a role may have one entry per group it is applied to with other variables (node_agents:
    # the minions, and the masters with every agent but signals switched off)
    listed = {}
    for entry in table:
        groups, given = listed.setdefault(entry["role"], (set(), set()))
        groups.update(entry["hosts"])
        given.update(entry.get("set_by_playbook") or ())
    assert listed == _roles_applied()


# ---- a host in two files: one inventory directory, or two sources on purpose ---------------


def _host_file(path, host):
    path.write_text(f"all:\n  children:\n    minions:\n      hosts:\n        {host}: {{}}\n")


def test_a_host_in_two_files_of_one_inventory_is_a_problem_in_two_sources_it_is_layering(tmp_path):
    inventory = tmp_path / "inventory"
    inventory.mkdir()
    _host_file(inventory / "hosts.yml", "dc1-w1")
    _host_file(inventory / "more.yml", "dc1-w1")
    overlay = tmp_path / "overlay.yml"
    _host_file(overlay, "dc1-w1")
    assert [str(p) for p in duplicate_host_problems([str(inventory)])] == [
        f"host 'dc1-w1': inventory files = '{inventory}/hosts.yml', '{inventory}/more.yml': the host is "
        "defined in 2 files; Ansible merges its groups and variables without a word: define it in one "
        "[duplicate-host]"
    ]
    (inventory / "more.yml").unlink()
    # the lab's way: the inventory, then an overlay with the connection settings (-i twice)
    assert duplicate_host_problems([str(inventory), str(overlay)]) == []
