# -*- coding: utf-8 -*-
# Copyright: cloud58 platform team
# Apache License 2.0 (see https://www.apache.org/licenses/LICENSE-2.0)

from __future__ import annotations

DOCUMENTATION = r"""
name: yaml
version_added: 0.1.0
author:
  - cloud58 platform team (@cloud58)
short_description: A YAML inventory file as ansible.builtin.yaml reads it; a YAML error names its line
description:
  - Ansible's C(yaml) inventory plugin, unchanged, except that a file that does not parse (a
    syntax error, a key written twice under C(duplicate_dict_key = error)) fails with the file
    and line. Ansible 2.19 names the file but not the line.
  - Enabled in C(ansible.cfg) in place of C(ansible.builtin.yaml); where the collection is not
    on the collections path, the inventory fails to parse (C(unparsed_is_failed)), never
    silently.
options:
  yaml_extensions:
    description: List of valid extensions for files containing YAML.
    type: list
    elements: string
    default: [".yaml", ".yml", ".json"]
    env:
      - name: ANSIBLE_YAML_FILENAME_EXT
      - name: ANSIBLE_INVENTORY_PLUGIN_EXTS
    ini:
      - key: yaml_valid_extensions
        section: defaults
      - section: inventory_plugin_yaml
        key: yaml_valid_extensions
"""

EXAMPLES = r"""
# ansible.cfg
# [inventory]
# enable_plugins = cloud58.platform.yaml, ansible.builtin.ini, ansible.builtin.host_list
"""

from ansible.errors import AnsibleParserError  # noqa: E402
from ansible.plugins.inventory.yaml import InventoryModule as _YamlInventory  # noqa: E402

from ansible_collections.cloud58.platform.plugins.plugin_utils.origin import located_message  # noqa: E402


class InventoryModule(_YamlInventory):
    """ansible.builtin.yaml whose parse errors name the file and line."""

    NAME = "cloud58.platform.yaml"

    def parse(self, inventory, loader, path, cache=True):
        try:
            super().parse(inventory, loader, path, cache=cache)
        except AnsibleParserError as exc:
            text = located_message(exc)
            raise AnsibleParserError(text if path in text else f"{path}: {text}") from exc
