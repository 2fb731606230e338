# -*- coding: utf-8 -*-
# Copyright: cloud58 platform team
# Apache License 2.0
"""What Ansible merges without a word: a host defined by two inventory files. Checked by the
preflight (playbooks/validate.yml, module ``cloud58.platform.role_vars_check``).
"""

from __future__ import annotations

import os

from .errors import Problem
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
    """Hosts that two YAML inventory files of ``sources`` both define: Ansible merges their
    groups and variables silently. A file that does not parse is Ansible's to report."""
    files_of = {}
    for source in sources or ():
        for path in _inventory_files(str(source)):
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
