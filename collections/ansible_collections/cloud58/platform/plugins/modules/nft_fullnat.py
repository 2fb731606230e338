#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: cloud58 platform team
# Apache License 2.0 (see https://www.apache.org/licenses/LICENSE-2.0)

from __future__ import annotations

DOCUMENTATION = r"""
module: nft_fullnat
short_description: Full-NAT LVS data plane of one director in nftables, changed element by element
version_added: 0.1.0
author:
  - cloud58 platform team (@cloud58)
description:
  - Keeps one nftables table (C(table ip cloud58_fullnat) by default) that does full NAT for
    the VIPs the plan assigns to I(director) - DNAT of C(VIP:port) to a realserver picked
    from a map of I(slots) slots per C(VIP:port), then SNAT to one of the director's local
    addresses, so realservers see a local address and need neither the VIP nor a route back
    to the client.
  - Creates the table when it is absent. When it exists, reads it with C(nft -j list table)
    and applies only the element difference (C(delete element) and C(add element) of the
    sets C(vips), C(realservers) and C(local_addresses)) in one C(nft -f) transaction; the
    table, its chains and its rules are not reloaded, so established connections and the
    table's handle stay.
  - A change of I(scheduler) or I(slots) changes the rules; then the table is deleted and
    created again in one transaction (C(action=replaced)).
  - TCP only. Needs conntrack (nftables NAT is connection tracking).
  - Diff mode shows the elements before and after, one line each.
  - See C(docs/lvs.md) of the collection's repository for the data plane.
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
      - Its C(directors[director].vips) are the VIPs served, C(directors[director].local_addresses)
        the SNAT pool, and each VIP's C(ports) and C(real_servers) the default realservers.
    type: dict
    required: true
  realservers:
    description:
      - VIP name to its realservers, replacing the plan's C(real_servers) of the VIPs named
        (those not named keep the plan's). An empty list leaves the VIP without realservers.
      - Each entry has C(address) (IPv4), C(port) and optionally C(vip_port) (the VIP port it
        serves, default C(port)); C(vip_port) must be one of the VIP's C(ports).
    type: dict
  scheduler:
    description:
      - How a new connection picks its slot. C(rr) C(numgen inc), C(random) C(numgen random),
        C(sh) a hash of the client address with a fixed seed (every director picks the same
        realserver for a client).
    type: str
    choices: [rr, random, sh]
    default: rr
  slots:
    description:
      - Slots per C(VIP:port) (and of the local-address map), dealt round-robin over the
        realservers in address order. Must be at least the number of realservers of every
        C(VIP:port) and of local addresses; more slots spread connections more evenly.
    type: int
    default: 256
  table:
    description: Name of the C(ip) family table the module owns.
    type: str
    default: cloud58_fullnat
  state:
    description: C(present) keeps the table as planned; C(absent) deletes it.
    type: str
    choices: [present, absent]
    default: present
requirements:
  - nft (nftables) 1.0 or later on the director
seealso:
  - module: cloud58.platform.topology_plan
    description: The plan whose C(lvs) section this module reads.
"""

EXAMPLES = r"""
- name: Serve the director's VIPs with the plan's realservers
  cloud58.platform.nft_fullnat:
    director: "{{ inventory_hostname }}"
    lvs: "{{ cloud58_plan.datacenters[cloud58_datacenter].lvs }}"

- name: Two ingress realservers for port 80 of VIP lab1-ingress, picked by client hash
  cloud58.platform.nft_fullnat:
    director: lab1-lvs1
    lvs: "{{ cloud58_plan.datacenters.lab1.lvs }}"
    scheduler: sh
    realservers:
      lab1-ingress:
        - {address: 198.18.0.21, port: 30080, vip_port: 80}
        - {address: 198.18.0.85, port: 30080, vip_port: 80}

- name: Remove the data plane
  cloud58.platform.nft_fullnat:
    director: lab1-lvs1
    lvs: "{{ cloud58_plan.datacenters.lab1.lvs }}"
    state: absent
"""

RETURN = r"""
action:
  description: What was (or in check mode would be) done to the table.
  returned: always
  type: str
  choices: [created, replaced, updated, deleted, unchanged]
  sample: updated
commands:
  description: The C(nft -f) transaction applied (or that would be applied); empty when unchanged.
  returned: always
  type: str
  sample: |
    delete element ip cloud58_fullnat realservers { 198.18.2.10 . 80 . 1 }
    add element ip cloud58_fullnat realservers { 198.18.2.10 . 80 . 1 : 198.18.0.21 . 30080 }
counts:
  description: Number of elements of each set after the change.
  returned: always
  type: dict
  sample: {vips: 2, realservers: 768, local_addresses: 256}
"""

from ansible.module_utils.basic import AnsibleModule  # noqa: E402

from ansible_collections.cloud58.platform.plugins.module_utils.lvs.fullnat import LvsError  # noqa: E402
from ansible_collections.cloud58.platform.plugins.module_utils.lvs.runner import run_fullnat  # noqa: E402


def argspec():
    return {
        "director": {"type": "str", "required": True},
        "lvs": {"type": "dict", "required": True},
        "realservers": {"type": "dict"},
        "scheduler": {"type": "str", "choices": ["rr", "random", "sh"], "default": "rr"},
        "slots": {"type": "int", "default": 256},
        "table": {"type": "str", "default": "cloud58_fullnat"},
        "state": {"type": "str", "choices": ["present", "absent"], "default": "present"},
    }


def main():
    module = AnsibleModule(argument_spec=argspec(), supports_check_mode=True)
    nft_path = module.get_bin_path("nft", required=True)

    def nft(args, data=None):
        return module.run_command([nft_path, *args], data=data)

    try:
        result = run_fullnat(module.params, module.check_mode, module._diff, nft)
    except LvsError as e:
        module.fail_json(msg=str(e))
    module.exit_json(**result)


if __name__ == "__main__":
    main()
