#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: cloud58 platform team
# Apache License 2.0 (see https://www.apache.org/licenses/LICENSE-2.0)

from __future__ import annotations

DOCUMENTATION = r"""
module: sysctl_profile
short_description: Write sysctl.d files and set chosen keys live, in one step
version_added: 0.1.0
author:
  - cloud58 platform team (@cloud58)
description:
  - Writes each sysctl.d file of I(files) whole (a comment header, then C(key = value) in
    key order), so keys that left the profile leave the file too.
  - Sets the keys listed in I(apply) live through C(/proc/sys) when their value differs;
    keys not listed are written to their file but never applied. Never runs
    C(sysctl -p)/C(--system), so inside a container no key reaches the host's kernel
    unless it is listed in I(apply).
  - Values compare the way the kernel prints them (runs of whitespace count as one space).
  - Diff mode shows each file and the live values that change.
  - The profile itself is computed by the C(cloud58.platform.node_kernel_profile) filter.
extends_documentation_fragment:
  - cloud58.platform.attributes
  - cloud58.platform.attributes.diff
options:
  files:
    description: The sysctl.d files to own, each written whole with mode 0644, owned by root.
    type: list
    elements: dict
    required: true
    suboptions:
      path:
        description: Path of the file, for example C(/etc/sysctl.d/60-cloud58-namespaced.conf).
        type: path
        required: true
      comment:
        description: Text of the header comment (one C(#) line per line).
        type: str
        default: ""
      values:
        description: Sysctl key to value.
        type: dict
        required: true
  apply:
    description: Keys to set live now; each must be in one of the I(files).
    type: list
    elements: str
    default: []
  missing:
    description:
      - What to do when a key of I(apply) has no C(/proc/sys) entry (its module not loaded).
      - C(fail) stops with the list of such keys; C(skip) leaves them and returns them in C(missing).
    type: str
    choices: [fail, skip]
    default: fail
seealso:
  - module: ansible.posix.sysctl
    description: One key at a time, without diff mode.
"""

EXAMPLES = r"""
- name: Write the profile; apply only the namespaced keys
  cloud58.platform.sysctl_profile:
    files:
      - path: /etc/sysctl.d/60-cloud58-namespaced.conf
        comment: Keys per network namespace.
        values: {net.core.somaxconn: 8192, net.ipv4.ip_local_port_range: "10240 65535"}
      - path: /etc/sysctl.d/61-cloud58-host.conf
        comment: Keys global to the host kernel.
        values: {vm.swappiness: 0}
    apply: [net.core.somaxconn, net.ipv4.ip_local_port_range]
"""

RETURN = r"""
files_changed:
  description: The files that were (or in check mode would be) rewritten.
  returned: always
  type: list
  elements: str
  sample: [/etc/sysctl.d/60-cloud58-namespaced.conf]
applied:
  description: Keys whose live value was (or would be) changed, with the new value.
  returned: always
  type: dict
  sample: {net.core.somaxconn: "8192"}
missing:
  description: Keys of I(apply) without a C(/proc/sys) entry (with I(missing=skip)).
  returned: always
  type: list
  elements: str
  sample: [net.bridge.bridge-nf-call-iptables]
"""

from ansible.module_utils.basic import AnsibleModule  # noqa: E402

from ansible_collections.cloud58.platform.plugins.module_utils.node.runner import (  # noqa: E402
    SysctlApplyError,
    run_sysctl_profile,
)


def argspec():
    return {
        "files": {
            "type": "list",
            "elements": "dict",
            "required": True,
            "options": {
                "path": {"type": "path", "required": True},
                "comment": {"type": "str", "default": ""},
                "values": {"type": "dict", "required": True},
            },
        },
        "apply": {"type": "list", "elements": "str", "default": []},
        "missing": {"type": "str", "choices": ["fail", "skip"], "default": "fail"},
    }


def main():
    module = AnsibleModule(argument_spec=argspec(), supports_check_mode=True)
    try:
        result = run_sysctl_profile(module.params, module.check_mode, module._diff, module.atomic_move)
    except SysctlApplyError as e:
        module.fail_json(msg=str(e), missing=e.missing)
    module.exit_json(**result)


if __name__ == "__main__":
    main()
