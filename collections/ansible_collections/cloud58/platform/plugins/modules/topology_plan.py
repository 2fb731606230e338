#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: cloud58 platform team
# Apache License 2.0 (see https://www.apache.org/licenses/LICENSE-2.0)

from __future__ import annotations

DOCUMENTATION = r"""
module: topology_plan
short_description: Validate cloud58 inventories and derive the topology plan
version_added: 0.1.0
author:
  - cloud58 platform team (@cloud58)
description:
  - Checks the datacenters, racks, ToR and core routers, clusters and hosts of an inventory
    (see C(docs/inventory.md)) and derives the plan every role, renderer and the lab read
    (per host roles, AS number and BGP peers, per-rack pod pools, etcd and events-etcd
    members, API endpoints, Consul servers, VIP to director assignment, LVS local
    addresses, router config inputs).
  - Every problem of the inventory is reported in one failure, each naming the datacenter,
    rack, host or cluster, the field, the offending value and the other party of a conflict.
  - Reads only its parameters. It contacts no host and changes nothing, so it always
    returns C(changed=false). Run it on the controller, in a play on C(localhost).
extends_documentation_fragment:
  - cloud58.platform.attributes
  - cloud58.platform.attributes.no_diff
options:
  datacenters:
    description:
      - The inventory's C(cloud58_datacenters) (group_vars/all), datacenter name to datacenter.
      - Left out, the plan fails with a missing-field problem.
    type: raw
  clusters:
    description:
      - The inventory's C(cloud58_clusters), cluster name to cluster.
    type: raw
    default: {}
  hosts:
    description:
      - Host name to the host's variables; only the topology fields (C(rack), C(address),
        C(labels), C(cluster)) are read.
      - Use C(hostvars | cloud58.platform.topology_host_vars(groups['all'])).
    type: dict
    required: true
  groups:
    description:
      - Ansible's C(groups) magic variable; the role groups are C(masters), C(etcd_events),
        C(minions), C(lvs) and C(consul_servers).
    type: dict
    required: true
  bgp_options:
    description:
      - The inventory's C(cloud58_bgp_options) (group_vars/all), BGP option to value, over the
        defaults of C(module_utils/bgp/options.py); shared by the router configs and the
        Calico objects. The plan carries the checked options per datacenter (C(bgp_options)).
      - A bad key or value is a planner problem naming C(cloud58_bgp_options.<key>).
    type: raw
    default: {}
requirements:
  - netaddr (on the controller)
seealso:
  - name: Inventory model
    description: Every field, default and error kind of the planner (docs/inventory.md in the repository).
    link: https://example.invalid/cloud58/platform/docs/inventory.md
"""

EXAMPLES = r"""
- name: Plan every datacenter of the inventory (contacts no host)
  cloud58.platform.topology_plan:
    datacenters: "{{ cloud58_datacenters | default(omit) }}"
    clusters: "{{ cloud58_clusters | default({}) }}"
    hosts: "{{ hostvars | cloud58.platform.topology_host_vars(groups['all']) }}"
    groups: "{{ groups }}"
    bgp_options: "{{ cloud58_bgp_options | default({}) }}"
  register: cloud58_topology

- name: Show the BGP peers of one node
  ansible.builtin.debug:
    msg: "{{ cloud58_topology.plan.hosts['bj1-node-001'].bgp.peers }}"
"""

RETURN = r"""
plan:
  description:
    - The plan. Top-level keys C(version), C(datacenters), C(clusters), C(hosts);
      the shape is described in docs/inventory.md.
  returned: success
  type: dict
  sample:
    version: 1
    datacenters: {lab1: {name: lab1, region: lab, racks: {}, routers: {}, lvs: {}, consul: {}}}
    clusters: {lab1-k8s: {name: lab1-k8s, context: lab1-k8s, api: {server: "https://api.lab1-k8s.lab.cloud58.test:6443"}}}
    hosts: {lab1-m1: {rack: lab1-r1, address: 198.18.0.11, roles: [master, etcd_events, consul_server]}}
summary:
  description: One line per datacenter (racks, hosts, clusters, directors, VIPs, Consul servers).
  returned: success
  type: list
  elements: str
  sample: ["lab1 (lab): 2 racks, 7 hosts, clusters lab1-k8s, 2 LVS directors, 2 VIPs, 3 Consul servers"]
kinds:
  description:
    - The kinds of problem found, when the inventory cannot be planned; C(msg) lists every
      problem, one a line.
  returned: failure
  type: list
  elements: str
  sample: [host-outside-rack, unknown-rack]
"""

# Ansible modules keep their imports below the documentation blocks.
from ansible.module_utils.basic import AnsibleModule, missing_required_lib  # noqa: E402

from ansible_collections.cloud58.platform.plugins.module_utils.topology import (  # noqa: E402
    HAS_NETADDR,
    PlanError,
    TopologyError,
    run_topology_plan,
)


def argspec():
    return {
        "datacenters": {"type": "raw"},
        "clusters": {"type": "raw", "default": {}},
        "hosts": {"type": "dict", "required": True},
        "groups": {"type": "dict", "required": True},
        "bgp_options": {"type": "raw", "default": {}},
    }


def main():
    module = AnsibleModule(argument_spec=argspec(), supports_check_mode=True)
    if not HAS_NETADDR:
        module.fail_json(msg=missing_required_lib("netaddr"), changed=False)
    try:
        result = run_topology_plan(module.params)
    except PlanError as exc:
        module.fail_json(msg=exc.text(), kinds=exc.kinds(), changed=False)
    except TopologyError as exc:
        module.fail_json(msg=str(exc), changed=False)
    module.exit_json(**result)


if __name__ == "__main__":
    main()
