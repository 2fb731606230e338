# -*- coding: utf-8 -*-
# Copyright: cloud58 platform team
# Apache License 2.0
"""Every host's role variables against the argument specs of the roles the host gets.

Ansible validates a role's variables only when the role starts on a host; the preflight
(playbooks/validate.yml, module ``cloud58.platform.role_vars_check``) checks them on the
controller for every host and every role the host will get, all at once, with the same
validator (``ArgumentSpecValidator``) over the same files (each role's
``meta/argument_specs.yml``).

A variable belongs to a role by its prefix (``kubelet_max_pods`` to ``kubelet``). For each
role, the hosts that get it (its host patterns, as in site.yml) are checked:

* a variable the role declares is validated with Ansible's own ``ArgumentSpecValidator``,
  the check Ansible runs when the role starts on the host (types converted the same way);
* a variable with the prefix that the role does not declare is reported with a did-you-mean;
* a variable the playbook sets itself for the role (from the plan) is reported: the
  inventory value would be overridden without a word.

One problem is reported once: hosts that share a bad value from the same file are listed
together. A value that cannot be templated on the controller (it needs facts or variables
only the host has) is not judged here; Ansible judges it when the role starts.
"""

from __future__ import annotations

import os
import re

from ansible.module_utils.common.arg_spec import ArgumentSpecValidator

from .errors import PlanError, Problem, did_you_mean, show
from .sources import duplicate_host_problems, limit_problems

try:
    import yaml

    HAS_YAML = True
except ImportError:  # pragma: no cover - PyYAML ships with ansible-core
    HAS_YAML = False


class RoleVarsError(Exception):
    """The check itself cannot run (a role or its argument specs cannot be read)."""


class RoleVarProblems(PlanError):
    """The role variables have problems; carries every one (the planner's problem format)."""

    def text(self) -> str:
        count = len(self.problems)
        head = "the inventory's files and role variables have {} problem{}:".format(
            count, "" if count == 1 else "s"
        )
        return "\n".join([head] + [f"  - {p}" for p in self.problems])


def load_role_specs(roles_dir, roles) -> dict:
    """``{role: {variable: spec}}``: the options of every entry point of each role, merged.

    Entry points declare the same variable the same way (the role tests check it), so a
    variable is known to a role when any of its entry points declares it.
    """
    if not HAS_YAML:
        raise RoleVarsError("PyYAML is required to read the roles' meta/argument_specs.yml")
    specs = {}
    for role in roles:
        path = os.path.join(roles_dir, role, "meta", "argument_specs.yml")
        try:
            with open(path, encoding="utf-8") as handle:
                data = yaml.safe_load(handle)
        except OSError as exc:
            raise RoleVarsError(f"role {role!r}: cannot read {path}: {exc.strerror}") from exc
        except yaml.YAMLError as exc:
            raise RoleVarsError(f"role {role!r}: {path} is not valid YAML: {exc}") from exc
        entry_points = (data or {}).get("argument_specs") or {}
        if not isinstance(entry_points, dict) or not entry_points:
            raise RoleVarsError(f"role {role!r}: {path} declares no argument_specs entry point")
        options = {}
        for entry in entry_points.values():
            options.update((entry or {}).get("options") or {})
        specs[role] = options
    return specs


# Every kind of problem of the role variables and the inventory files (docs/inventory.md).
PREFLIGHT_KINDS = {
    "duplicate-host": "a host is defined by two inventory files (Ansible merges them silently)",
    "invalid-choice": "a role variable is not one of the choices of the role's argument specs",
    "invalid-value": "a role variable is refused by the role's argument specs for another reason",
    "set-by-playbook": "the inventory sets a role variable that the playbook sets from the plan (never used)",
    "unknown-limit": "--limit names a host or group the inventory lacks (Ansible warns, runs the rest)",
    "unknown-variable": "a variable carries a role's prefix but the role declares no such variable",
    "wrong-type": "a role variable (or an element of it) cannot be converted to the declared type",
}

_SPEC_KEYS = ("type", "elements", "choices", "options", "no_log")
_HOSTS_SHOWN = 3


def preflight_kinds_markdown() -> str:
    """The table of the role-variable and inventory-file problem kinds in docs/inventory.md."""
    lines = ["| kind | what it means |", "|---|---|"]
    lines += [f"| `{kind}` | {text} |" for kind, text in sorted(PREFLIGHT_KINDS.items())]
    return "\n".join(lines) + "\n"


def resolve_hosts(patterns, groups, known_hosts) -> list:
    """The hosts of ``patterns`` (group or host names, united as ``a:b`` is), in order."""
    out = []
    for pattern in patterns:
        members = groups.get(pattern)
        if members is None:
            members = [pattern] if pattern in known_hosts else []
        out.extend(host for host in members if host not in out)
    return out


def role_var_problems(specs, roles, host_vars, groups) -> list:
    """Every problem of the role variables in ``host_vars``, sorted by file.

    ``specs``: ``{role: {variable: spec}}`` (``load_role_specs``); ``roles``: one entry per
    role as the playbooks apply it, ``{role, hosts: [group or host], set_by_playbook: [...]}``;
    ``host_vars``: ``{host: {variable: {value, origin, unresolved}}}`` (the filter
    ``cloud58.platform.role_host_vars``); ``groups``: Ansible's ``groups``.
    """
    found = {}
    for entry in roles:
        role = entry["role"]
        spec = specs[role]
        prefix = role + "_"
        set_by_playbook = set(entry.get("set_by_playbook") or ())
        for host in resolve_hosts(entry["hosts"], groups, host_vars):
            for name, var in sorted((host_vars.get(host) or {}).items()):
                if not name.startswith(prefix):
                    continue
                problems = _variable_problems(role, spec, set_by_playbook, name, var, prefix=prefix)
                for kind, message in problems:
                    key = (var.get("origin") or "inventory", name, show(var.get("value")), message, kind)
                    found.setdefault(key, []).append(host)
    return sorted(
        Problem(where=f"{origin}, {_hosts_text(hosts)}", field=name, value=value, message=message, kind=kind)
        for (origin, name, value, message, kind), hosts in found.items()
    )


def _variable_problems(role, spec, set_by_playbook, name, var, *, prefix):
    if name in set_by_playbook:
        yield (
            "set-by-playbook",
            f"the playbook sets it for role '{role}' from the plan, so this value would never be used",
        )
        return
    if name not in spec:
        # compared without the prefix, which every candidate shares
        hint = did_you_mean(name[len(prefix) :], [option[len(prefix) :] for option in spec])
        hint = hint.replace("mean '", "mean '" + prefix) or " (see the role's meta/argument_specs.yml)"
        yield "unknown-variable", f"role '{role}' declares no such variable{hint}"
        return
    if var.get("unresolved"):
        return
    option = {key: spec[name][key] for key in _SPEC_KEYS if key in spec[name]}
    result = ArgumentSpecValidator({name: option}).validate({name: var.get("value")})
    for error in result.errors:
        yield _error_problem(role, option, var.get("value"), error)


def _expected(option) -> str:
    text = option.get("type", "str")
    if text == "list" and option.get("elements"):
        text += " of " + option["elements"]
    return text


def _error_problem(role, option, value, error):
    kind = type(error).__name__
    message = error.error_message
    if kind == "ArgumentValueError" and "choices" in option:
        choices = [str(choice) for choice in option["choices"]]
        hint = did_you_mean(value, choices) if isinstance(value, str) else ""
        return "invalid-choice", f"expected one of {', '.join(choices)} (role '{role}'){hint}"
    if kind in ("ArgumentTypeError", "ElementError"):
        match = re.search(r"unable to convert to \w+: (.*)$", message, re.S)
        detail = match.group(1) if match else message
        # Ansible lists the valid booleans from a set, in a different order each run
        detail = detail.split(". Valid booleans include:")[0]
        return "wrong-type", f"expected {_expected(option)} (role '{role}'): {detail}"
    return "invalid-value", f"refused by role '{role}': {message}"


def _hosts_text(hosts) -> str:
    names = ", ".join(f"'{host}'" for host in hosts[:_HOSTS_SHOWN])
    if len(hosts) == 1:
        return f"host {names}"
    more = len(hosts) - _HOSTS_SHOWN
    return f"hosts {names}" + (f" and {more} more" if more > 0 else "")


def run_role_vars_check(params) -> dict:
    """Check; raises RoleVarProblems with every problem, RoleVarsError when the specs are unreadable."""
    roles = params["roles"]
    specs = load_role_specs(params["roles_dir"], sorted({entry["role"] for entry in roles}))
    problems = role_var_problems(specs, roles, params["hosts"], params["groups"])
    problems += duplicate_host_problems(params.get("inventory_sources"))
    problems += limit_problems(params.get("limit"), params["hosts"], params["groups"])
    if problems:
        raise RoleVarProblems(problems)
    checked = sorted({entry["role"] for entry in roles})
    return {
        "changed": False,
        "roles": checked,
        "summary": "role variables of {} hosts checked against roles {}".format(
            len(params["hosts"]), ", ".join(checked)
        ),
    }
