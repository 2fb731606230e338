# -*- coding: utf-8 -*-
# Copyright: cloud58 platform team
# Apache License 2.0
"""What Ansible lets pass with a warning at most: a host defined by two inventory files
(merged), a ``--limit`` naming a host or group the inventory lacks (the rest runs). Checked by
the preflight (playbooks/validate.yml, module ``cloud58.platform.role_vars_check``).
"""

from __future__ import annotations

import os
import re

from .errors import Problem, did_you_mean
from .inventory import _INVENTORY_EXTENSIONS, _read_yaml, expand_host_pattern


def _inventory_files(source):
    if os.path.isdir(source):
        return [
            os.path.join(source, name)
            for name in sorted(os.listdir(source))
            if not name.startswith(".")
            and os.path.isfile(os.path.join(source, name))
            and os.path.splitext(name)[1] in _INVENTORY_EXTENSIONS
        ]
    return [source] if os.path.isfile(source) else []


def _hosts_of(body, out):
    if not isinstance(body, dict):
        return
    hosts = body.get("hosts")
    if isinstance(hosts, dict):
        for pattern in hosts:
            out.update(expand_host_pattern(str(pattern)))
    children = body.get("children")
    if isinstance(children, dict):
        for child in children.values():
            _hosts_of(child, out)


def duplicate_host_problems(sources) -> list:
    """Hosts that two YAML inventory files of one source (an inventory directory) both
    define: Ansible merges their groups and variables silently. A host in two sources given
    with two ``-i`` is layering on purpose (the lab adds its connection settings so) and is
    not reported. A file that does not parse is Ansible's to report."""
    problems = []
    for source in sources or ():
        problems += _duplicates_in(str(source))
    return problems


def _duplicates_in(source) -> list:
    files_of = {}
    for path in _inventory_files(source):
        try:
            data = _read_yaml(path)
        except Exception:
            continue
        hosts = set()
        if isinstance(data, dict):
            for body in data.values():
                _hosts_of(body, hosts)
        for host in hosts:
            files_of.setdefault(host, []).append(path)
    return [
        Problem(
            where=f"host '{host}'",
            field="inventory files",
            value=", ".join(f"'{path}'" for path in files),  # paths in full, never cut
            message=f"the host is defined in {len(files)} files; Ansible merges its groups and variables "
            "without a word: define it in one",
            kind="duplicate-host",
        )
        for host, files in sorted(files_of.items())
        if len(files) > 1
    ]


# A pattern holding one of these is a wildcard, a regex (~), a file (@) or a host range: it
# matches what it matches, and Ansible says so when it matches nothing.
_PATTERN_SYNTAX = frozenset("*?[]~@")


def limit_problems(limit, hosts, groups) -> list:
    """The plain names in ``limit`` (``--limit``, as ``ansible_limit`` holds it) that are no
    host and no group of the inventory. Ansible only warns about them and runs the other
    hosts: a typo in a scale-out would run on fewer hosts than asked, silently."""
    known = set(hosts or ()) | set(groups or ()) | {"localhost"}
    problems = []
    for token in re.split(r"[,:]", limit or ""):
        name = token.strip().lstrip("!&")
        if not name or _PATTERN_SYNTAX & set(name) or name in known:
            continue
        problems.append(
            Problem(
                where="--limit",
                field="pattern",
                value=f"'{name}'",
                message="no host or group of the inventory has this name; Ansible would only warn "
                f"and run the other hosts{did_you_mean(name, sorted(known))}",
                kind="unknown-limit",
            )
        )
    return problems
