# -*- coding: utf-8 -*-
# Copyright: cloud58 platform team
# Apache License 2.0 (see https://www.apache.org/licenses/LICENSE-2.0)

from __future__ import annotations

DOCUMENTATION = r"""
name: host_group_vars
version_added: 0.1.0
author:
  - cloud58 platform team (@cloud58)
short_description: group_vars and host_vars as host_group_vars loads them; a YAML error names its file
requirements:
  - Enabled in configuration (C(vars_plugins_enabled) in ansible.cfg, in place of C(host_group_vars))
description:
  - Ansible's C(host_group_vars), unchanged, except that a file that does not parse (a syntax
    error, a key written twice under C(duplicate_dict_key = error)) fails with the file and
    line. Ansible 2.19 reports only the YAML message for C(group_vars/all), which it reads
    before any task runs.
options:
  stage:
    ini:
      - key: stage
        section: vars_host_group_vars
    env:
      - name: ANSIBLE_VARS_PLUGIN_STAGE
  _valid_extensions:
    default: [".yml", ".yaml", ".json"]
    description:
      - Check all of these extensions when looking for variable files (YAML or JSON).
    env:
      - name: ANSIBLE_YAML_FILENAME_EXT
    ini:
      - key: yaml_valid_extensions
        section: defaults
    type: list
    elements: string
extends_documentation_fragment:
  - ansible.builtin.vars_plugin_staging
"""

from ansible.errors import AnsibleError, AnsibleParserError  # noqa: E402
from ansible.plugins.vars.host_group_vars import VarsModule as _HostGroupVars  # noqa: E402

from ansible_collections.cloud58.platform.plugins.plugin_utils.origin import located_message  # noqa: E402


class _NotDeclared:
    """Hides an inherited class attribute from ``hasattr``."""

    def __get__(self, obj, owner=None):
        raise AttributeError("REQUIRES_ENABLED")


class VarsModule(_HostGroupVars):
    """host_group_vars whose parse errors name the file and line."""

    # A collection's vars plugin runs only when enabled anyway; Ansible warns about the
    # attribute the builtin declares, so it is hidden here.
    REQUIRES_ENABLED = _NotDeclared()

    def load_found_files(self, loader, data, found_files):
        for found in found_files:
            try:
                data = super().load_found_files(loader, data, [found])
            except AnsibleError as exc:
                text = located_message(exc)
                if found not in text:
                    text = f"{found}: {text}"
                raise AnsibleParserError(text) from exc
        return data
