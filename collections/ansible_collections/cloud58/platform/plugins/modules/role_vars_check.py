#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: cloud58 platform team
# Apache License 2.0 (see https://www.apache.org/licenses/LICENSE-2.0)

from __future__ import annotations

DOCUMENTATION = r"""
module: role_vars_check
short_description: Check every host's role variables against the roles' argument specs
version_added: 0.1.0
author:
  - cloud58 platform team (@cloud58)
description:
  - Ansible checks a role's variables against its C(meta/argument_specs.yml) only when the role
    starts on a host. This module checks them on the controller, for every host and every role
    the host will get, before any host is touched (C(playbooks/validate.yml)).
  - A variable is a role's when it carries the role's prefix (C(kubelet_max_pods) is the role
    C(kubelet)'s). Declared variables are validated with Ansible's own C(ArgumentSpecValidator);
    an undeclared one gets a did-you-mean; one the playbook sets itself from the plan is
    reported, since the inventory value would never be used.
  - Also refuses a host that two inventory files define (O(inventory_sources)), whose groups
    and variables Ansible would merge without a word.
  - Every problem is reported in one failure, each naming the file and line that set the
    variable, the host or hosts, the variable, the bad value and what the role expects.
  - Reads the roles' argument specs and its parameters; contacts no host and changes nothing,
    so it always returns C(changed=false).
extends_documentation_fragment:
  - cloud58.platform.attributes
  - cloud58.platform.attributes.no_diff
options:
  roles_dir:
    description: Directory of the roles (each with C(meta/argument_specs.yml)), on the controller.
    type: path
    required: true
  roles:
    description: The roles as the playbooks apply them, one entry per role.
    type: list
    elements: dict
    required: true
    suboptions:
      role:
        description: Role name, a directory of O(roles_dir).
        type: str
        required: true
      hosts:
        description: Groups or hosts that get the role (the play's pattern C(a:b) as a list).
        type: list
        elements: str
        required: true
      set_by_playbook:
        description: Variables of the role the playbook sets itself (from the plan).
        type: list
        elements: str
        default: []
  hosts:
    description:
      - Host name to the host's role variables.
      - Use C(hostvars | cloud58.platform.role_host_vars(groups['all'] + ['localhost'], roles)).
    type: dict
    required: true
  groups:
    description: Ansible's C(groups) magic variable.
    type: dict
    required: true
  inventory_sources:
    description:
      - Ansible's C(ansible_inventory_sources); their YAML files are checked for hosts defined twice.
    type: list
    elements: path
    default: []
  limit:
    description:
      - Ansible's C(ansible_limit) (the C(--limit) patterns). A plain name in it that is no host
        and no group of the inventory is a problem; Ansible itself only warns and runs the rest.
    type: str
    default: ""
seealso:
  - module: cloud58.platform.topology_plan
  - name: Inventory model
    description: The preflight and every problem kind (docs/inventory.md in the repository).
    link: https://example.invalid/cloud58/platform/docs/inventory.md
"""

EXAMPLES = r"""
- name: Check every host's role variables against the roles' argument specs
  cloud58.platform.role_vars_check:
    roles_dir: "{{ playbook_dir }}/../collections/ansible_collections/cloud58/platform/roles"
    roles:
      - {role: base, hosts: [all]}
      - {role: kubelet, hosts: [masters, minions], set_by_playbook: [kubelet_max_pods]}
    hosts: "{{ hostvars | cloud58.platform.role_host_vars(groups['all'], ['base', 'kubelet']) }}"
    groups: "{{ groups }}"
    inventory_sources: "{{ ansible_inventory_sources }}"
    limit: "{{ ansible_limit | default('') }}"
"""

RETURN = r"""
roles:
  description: The roles whose variables were checked.
  returned: success
  type: list
  elements: str
  sample: [base, kubelet]
summary:
  description: One line, for people.
  returned: success
  type: str
  sample: role variables of 23 hosts checked against roles base, kubelet
kinds:
  description: The kinds of problem found; C(msg) lists every problem, one a line.
  returned: failure
  type: list
  elements: str
  sample: [unknown-variable, wrong-type]
"""

# Ansible modules keep their imports below the documentation blocks.
from ansible.module_utils.basic import AnsibleModule  # noqa: E402

from ansible_collections.cloud58.platform.plugins.module_utils.topology.role_vars import (  # noqa: E402
    RoleVarProblems,
    RoleVarsError,
    run_role_vars_check,
)


def argspec():
    return {
        "roles_dir": {"type": "path", "required": True},
        "roles": {
            "type": "list",
            "elements": "dict",
            "required": True,
            "options": {
                "role": {"type": "str", "required": True},
                "hosts": {"type": "list", "elements": "str", "required": True},
                "set_by_playbook": {"type": "list", "elements": "str", "default": []},
            },
        },
        "hosts": {"type": "dict", "required": True},
        "groups": {"type": "dict", "required": True},
        "inventory_sources": {"type": "list", "elements": "path", "default": []},
        "limit": {"type": "str", "default": ""},
    }


def main():
    module = AnsibleModule(argument_spec=argspec(), supports_check_mode=True)
    try:
        result = run_role_vars_check(module.params)
    except RoleVarProblems as exc:
        module.fail_json(msg=exc.text(), kinds=exc.kinds(), changed=False)
    except RoleVarsError as exc:
        module.fail_json(msg=str(exc), changed=False)
    module.exit_json(**result)


if __name__ == "__main__":
    main()
