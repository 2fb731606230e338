#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: cloud58 platform team
# Apache License 2.0 (see https://www.apache.org/licenses/LICENSE-2.0)

from __future__ import annotations

DOCUMENTATION = r"""
module: keepalived_fnat
short_description: Keepalived configuration of an IPVS FNAT (DPVS) LVS director, checked before it is written
version_added: 0.1.0
author:
  - cloud58 platform team (@cloud58)
description:
  - Writes the keepalived configuration of one director of the plan for LVS kernels that do
    full NAT in IPVS (DPVS, Alibaba LVS) - one C(local_address_group) with the director's
    local-address range, and one C(virtual_server) per VIP and port that has realservers with
    C(lb_kind FNAT), C(lb_algo), C(protocol TCP), C(laddr_group_name), optionally
    C(syn_proxy), and one C(real_server) with a C(TCP_CHECK) per realserver.
  - Before anything is written the text is checked against the project's keyword schema of
    DPVS's keepalived parser (which keyword in which block, its arguments); a problem fails
    the task naming the file, the director, the line, the block and the keyword, and leaves
    the file as it was. Stock keepalived cannot check this file (it rejects the FNAT
    keywords).
  - The file is written whole (mode 0644) only when its content differs; C(changed) says
    whether it was (or in check mode would be) rewritten. Reloading keepalived is left to
    the caller (a handler).
  - Diff mode shows the file before and after.
  - See C(docs/lvs.md) of the collection's repository.
extends_documentation_fragment:
  - cloud58.platform.attributes
  - cloud58.platform.attributes.diff
options:
  director:
    description: Name of the director (an inventory host in group C(lvs)) whose VIPs to serve.
    type: str
    required: true
  lvs:
    description:
      - The plan's LVS section of the director's datacenter,
        C(plan.datacenters[dc].lvs) of the C(cloud58.platform.topology_plan) module.
    type: dict
    required: true
  realservers:
    description:
      - VIP name to its realservers (C(address), C(port), optional C(vip_port)), replacing the
        plan's C(real_servers) of the VIPs named, as in C(cloud58.platform.nft_fullnat).
    type: dict
  path:
    description: The keepalived configuration file.
    type: path
    default: /etc/keepalived/keepalived.conf
  lb_algo:
    description: The IPVS scheduler of every virtual server.
    type: str
    choices: [rr, wrr, lc, wlc, lblc, sh, mh, dh, fo, ovf, lblcr, sed, nq, conhash]
    default: rr
  syn_proxy:
    description: Turn on DPVS's SYN proxy for every virtual server.
    type: bool
    default: false
  laddr_interface:
    description: The (DPDK) interface the local addresses are on, in C(local_address_group).
    type: str
    default: dpdk0
  connect_timeout:
    description: Seconds the C(TCP_CHECK) of a realserver waits for the connection.
    type: int
    default: 3
  retry:
    description: Failed C(TCP_CHECK)s before a realserver is taken out.
    type: int
    default: 3
  delay_before_retry:
    description: Seconds between the retries of a failed C(TCP_CHECK).
    type: int
    default: 3
  delay_loop:
    description: Seconds between two C(TCP_CHECK)s of a realserver.
    type: int
    default: 6
  virtual_server_options:
    description:
      - More keywords for every C(virtual_server), keyword to value (C(null) for a keyword
        without value), written in keyword order and checked against the schema like the rest.
    type: dict
    default: {}
requirements:
  - keepalived of DPVS (or another FNAT-capable build) on the director, to use the file
seealso:
  - module: cloud58.platform.nft_fullnat
    description: The same director in nftables, for stock kernels.
"""

EXAMPLES = r"""
- name: Write the director's keepalived configuration
  cloud58.platform.keepalived_fnat:
    director: "{{ inventory_hostname }}"
    lvs: "{{ cloud58_plan.datacenters[cloud58_datacenter].lvs }}"
    syn_proxy: true
    virtual_server_options:
      establish_timeout: 90
  notify: Reload keepalived
"""

RETURN = r"""
path:
  description: The file written (or that would be written).
  returned: always
  type: str
  sample: /etc/keepalived/keepalived.conf
virtual_servers:
  description: Number of C(virtual_server) blocks in the file.
  returned: always
  type: int
  sample: 3
"""

from ansible.module_utils.basic import AnsibleModule  # noqa: E402

from ansible_collections.cloud58.platform.plugins.module_utils.lvs.keepalived_schema import SCHEDULERS  # noqa: E402
from ansible_collections.cloud58.platform.plugins.module_utils.lvs.plan import LvsError  # noqa: E402
from ansible_collections.cloud58.platform.plugins.module_utils.lvs.runner import run_keepalived  # noqa: E402


def argspec():
    return {
        "director": {"type": "str", "required": True},
        "lvs": {"type": "dict", "required": True},
        "realservers": {"type": "dict"},
        "path": {"type": "path", "default": "/etc/keepalived/keepalived.conf"},
        "lb_algo": {"type": "str", "choices": list(SCHEDULERS), "default": "rr"},
        "syn_proxy": {"type": "bool", "default": False},
        "laddr_interface": {"type": "str", "default": "dpdk0"},
        "connect_timeout": {"type": "int", "default": 3},
        "retry": {"type": "int", "default": 3},
        "delay_before_retry": {"type": "int", "default": 3},
        "delay_loop": {"type": "int", "default": 6},
        "virtual_server_options": {"type": "dict", "default": {}},
    }


def main():
    module = AnsibleModule(argument_spec=argspec(), supports_check_mode=True)
    try:
        result = run_keepalived(module.params, module.check_mode, module._diff, module.atomic_move)
    except LvsError as e:
        module.fail_json(msg=str(e))
    module.exit_json(**result)


if __name__ == "__main__":
    main()
