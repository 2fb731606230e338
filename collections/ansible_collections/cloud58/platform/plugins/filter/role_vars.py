# -*- coding: utf-8 -*-
# Copyright: cloud58 platform team
# Apache License 2.0
"""``role_host_vars(hostvars, hosts, roles, roles_dir)``: each host's role variables, each with
the file and line that set it, for the module ``cloud58.platform.role_vars_check``; the values
of the variables the roles' argument specs mark ``no_log`` are masked, since the module's
arguments are printed at -vvv.

Only a filter sees where a value comes from (Ansible tags every value it reads from YAML
with its origin); a module gets plain JSON. The checking happens in the module, over
``module_utils/topology/role_vars.py``.
"""

from __future__ import annotations

from collections.abc import Mapping

from ansible.errors import AnsibleError, AnsibleFilterError
from jinja2 import Undefined

from ansible_collections.cloud58.platform.plugins.module_utils.topology.role_vars import (
    RoleVarsError,
    load_role_specs,
)
from ansible_collections.cloud58.platform.plugins.plugin_utils.origin import (
    located_message,
    origin_of,
)

# What a secret's value becomes: of the same type, so the module still checks the type.
MASK = "********"


def _has_undefined(value):
    """ansible-core 2.19 hands an undefined variable on as a marker, not as an exception."""
    if isinstance(value, Undefined):
        return True
    if isinstance(value, Mapping):
        return any(_has_undefined(item) for item in value.values())
    if isinstance(value, (list, tuple)):
        return any(_has_undefined(item) for item in value)
    return False


def _masked(value):
    if isinstance(value, Mapping):
        return {}
    if isinstance(value, (list, tuple)):
        return []
    return MASK if isinstance(value, str) else value


def _secret_names(roles_dir, roles) -> set:
    if not roles_dir:
        return set()
    try:
        specs = load_role_specs(roles_dir, roles)
    except RoleVarsError as exc:
        raise AnsibleFilterError(f"role_host_vars: {exc}") from None
    return {
        name for options in specs.values() for name, spec in options.items() if (spec or {}).get("no_log")
    }


def role_host_vars(hostvars, hosts, roles, roles_dir=None):
    """``{host: {variable: {value, origin, unresolved}}}`` for the variables of ``hosts`` whose
    name starts with one of ``roles`` and ``_``.

    ``value`` is templated as the host would see it; when that fails on the controller (the
    value needs facts or variables only the host has) it is the raw text and ``unresolved`` is
    true. ``origin`` is ``<file>:<line>`` where Ansible can tell, else the host's inventory
    directory. With ``roles_dir``, a variable whose option is ``no_log`` in its role's
    argument specs has its value masked (a string becomes ``MASK``, a mapping or list empty).
    """
    if not isinstance(hostvars, Mapping):
        raise AnsibleFilterError(
            f"role_host_vars expects hostvars (a mapping), got {type(hostvars).__name__}"
        )
    if isinstance(roles, (str, bytes)) or isinstance(hosts, (str, bytes)):
        raise AnsibleFilterError("role_host_vars expects lists of host names and role names, got a string")
    prefixes = tuple(f"{role}_" for role in roles)
    secrets = _secret_names(roles_dir, roles)
    out = {}
    for host in hosts:
        try:
            raw = hostvars.raw_get(host) if hasattr(hostvars, "raw_get") else hostvars[host]
        except AnsibleError as exc:  # a host_vars or group_vars file Ansible reads on demand
            raise AnsibleFilterError(f"variables of host {host!r}: {located_message(exc)}") from None
        inventory = raw.get("inventory_dir")
        found = {}
        for name in sorted(raw):
            if not name.startswith(prefixes):
                continue
            origin = origin_of(raw[name]) or (f"inventory {inventory}" if inventory else None)
            try:
                value = hostvars[host][name]
                unresolved = _has_undefined(value)
            except Exception:  # undefined here (facts, host-only variables): the role judges it
                unresolved = True
            if unresolved:
                value = str(raw[name])
            if name in secrets:
                value = _masked(value)
            found[str(name)] = {"value": value, "origin": origin, "unresolved": unresolved}
        out[str(host)] = found
    return out


class FilterModule:
    def filters(self):
        return {"role_host_vars": role_host_vars}
