# -*- coding: utf-8 -*-
# Copyright: cloud58 platform team
# Apache License 2.0
# Expected messages are exact; the longest are split into adjacent literals (ansible-test pep8: 160 columns).
# ruff: noqa: E501
"""The preflight's corpus of operator mistakes (issue 11): each one is a copy of the lab
inventory with one mistake, and the exact message the preflight gives for it.

Two ways through, to keep the run short:
* the topology mistakes are planned in-process (``load_inventory`` + ``build_plan``, the same
  checks ``playbooks/validate.yml`` runs through the module ``topology_plan``;
  ``test_topology_plan.py`` proves the two paths give the same plan);
* the mistakes of role variables, of the inventory files and those Ansible itself must refuse
  run ``ansible-playbook -i <copy> playbooks/validate.yml`` for real, one run each.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys

import pytest

from ansible_collections.cloud58.platform.plugins.module_utils.topology import (
    PlanError,
    build_plan,
    load_inventory,
)

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), *([".."] * 8)))
PLAYBOOK = os.path.join(REPO, "playbooks", "validate.yml")
H = "hosts.yml"
D = "group_vars/all/datacenters.yml"
K = "group_vars/all/clusters.yml"
B = "group_vars/all/bgp.yml"
NEW = None  # an edit that writes a new file


def _broken_copy(tmp_path, edits):
    inventory = tmp_path / "inventory"
    shutil.copytree(os.path.join(REPO, "inventories", "lab"), inventory)
    for path, old, new in edits:
        target = inventory / path
        if old is NEW:
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(new)
            continue
        text = target.read_text()
        assert text.count(old) == 1, f"{path}: the edit must match once"
        target.write_text(text.replace(old, new))
    return inventory


# ---- the topology: planned in-process ------------------------------------------------------

PLANNER_MISTAKES = [
    pytest.param(
        [
            (
                H,
                "lab1-w2: {rack: lab1-r2, address: 198.18.0.85",
                "lab1-w2: {rack: lab1-r2, address: 198.18.0.5",
            )
        ],
        [
            "datacenter 'lab1', rack 'lab1-r2', host 'lab1-w2': address = '198.18.0.5': outside the rack's "
            "node subnet 198.18.0.64/26 [host-outside-rack]"
        ],
        id="host-outside-rack",
    ),
    pytest.param(
        [(H, "lab2-m3: {rack: lab2-r1,", "lab2-m3: {rack: lab2-r7,")],
        [
            "host 'lab2-m3': rack = 'lab2-r7': no such rack in this inventory; did you mean 'lab2-r1'? [unknown-rack]"
        ],
        id="unknown-rack",
    ),
    pytest.param(
        [
            (
                H,
                "lab1-m3: {rack: lab1-r1, address: 198.18.0.12}",
                "lab1-m3: {rack: lab1-r1, address: 198.18.0.11}",
            )
        ],
        [
            "datacenter 'lab1', rack 'lab1-r1', host 'lab1-m3': address = '198.18.0.11': already the "
            "address of datacenter 'lab1', rack 'lab1-r1', host 'lab1-m1' address [duplicate-address]"
        ],
        id="duplicate-address",
    ),
    pytest.param(
        [
            (
                H,
                "lab1-w1: {rack: lab1-r1, address: 198.18.0.21, labels: {function: ingress}}",
                "lab1-w1: {rack: lab1-r1, address: 198.18.0.21, labels: {function: ingress}}\n        lab1_w3: {rack: lab1-r1, address: 198.18.0.22}",
            )
        ],
        [
            "datacenter 'lab1', rack 'lab1-r1', host 'lab1_w3': name = 'lab1_w3': names are lowercase DNS "
            "labels: a-z, 0-9 and '-', at most 63 characters [invalid-name]"
        ],
        id="invalid-name-host",
    ),
    pytest.param(
        [
            (
                H,
                "lab1-w1: {rack: lab1-r1, address: 198.18.0.21, labels: {function: ingress}}",
                "lab1-w1: {rack: lab1-r1, address: 198.18.0.21, labels: {function: ingress}}\n        lab1-lvs1:",
            )
        ],
        [
            "datacenter 'lab1', rack 'lab1-r1', host 'lab1-lvs1': groups = ['lvs', 'minions']: an LVS "
            "director runs no Kubernetes or etcd workload; remove it from minions [role-conflict]"
        ],
        id="role-conflict",
    ),
    pytest.param(
        [
            (
                H,
                "lab1-w1: {rack: lab1-r1, address: 198.18.0.21, labels: {function: ingress}}",
                "lab1-w1: {rack: lab1-r1, address: 198.18.0.21, labels: {function: in gress}}",
            )
        ],
        [
            "datacenter 'lab1', rack 'lab1-r1', host 'lab1-w1': labels.function = 'in gress': not a valid "
            "label value: up to 63 of A-Z a-z 0-9 - _ . starting and ending alphanumeric [invalid-label]"
        ],
        id="invalid-label",
    ),
    pytest.param(
        [
            (
                H,
                "lab1-w1: {rack: lab1-r1, address: 198.18.0.21, labels: {function: ingress}}",
                "lab1-w1: {rack: lab1-r1, address: 198.18.0.21, labels: {function: ingress, rack: lab1-r2}}",
            )
        ],
        [
            "datacenter 'lab1', rack 'lab1-r1', host 'lab1-w1': labels.rack = 'lab1-r2': disagrees with the "
            "host's rack 'lab1-r1' (the planner sets this label; drop it) [label-conflict]"
        ],
        id="label-conflict",
    ),
    pytest.param(
        [
            (
                H,
                "lab1-w1: {rack: lab1-r1, address: 198.18.0.21, labels: {function: ingress}}",
                "lab1-w1: {rack: lab1-r1, adress: 198.18.0.21, labels: {function: ingress}}",
            )
        ],
        [
            "datacenter 'lab1', rack 'lab1-r1', host 'lab1-w1': address = null: required field of a host is missing [missing-field]",
            "datacenter 'lab1', rack 'lab1-r1', host 'lab1-w1': adress = '198.18.0.21': unknown field of a "
            "host; did you mean 'address'? [unknown-field]",
        ],
        id="unknown-field-host",
    ),
    pytest.param(
        [(H, "    lvs:\n", "    minons:\n      hosts:\n        lab1-w1:\n    lvs:\n")],
        [
            "inventory: group minons = ['lab1-w1']: not a role group; did you mean 'minions'? (role groups: "
            "masters, etcd_events, minions, lvs, consul_servers) [unknown-group]"
        ],
        id="unknown-group",
    ),
    pytest.param(
        [
            (
                H,
                "lab1-w1: {rack: lab1-r1, address: 198.18.0.21, labels: {function: ingress}}",
                "lab1-w1: {rack: lab1-r1, address: 198.18.0.300, labels: {function: ingress}}",
            )
        ],
        [
            "datacenter 'lab1', rack 'lab1-r1', host 'lab1-w1': address = '198.18.0.300': not an IPv4 address [malformed-address]"
        ],
        id="malformed-address",
    ),
    pytest.param(
        [
            (
                H,
                "lab1-w1: {rack: lab1-r1, address: 198.18.0.21, labels: {function: ingress}}",
                "lab1-w1: {rack: lab1-r1, address: 198.18.0.63, labels: {function: ingress}}",
            )
        ],
        [
            "datacenter 'lab1', rack 'lab1-r1', host 'lab1-w1': address = '198.18.0.63': is the broadcast "
            "address of the rack's node subnet 198.18.0.0/26 [reserved-address]"
        ],
        id="reserved-address",
    ),
    pytest.param(
        [
            (
                H,
                "lab1-w1: {rack: lab1-r1, address: 198.18.0.21, labels: {function: ingress}}",
                'lab1-w1: {rack: lab1-r1, address: "{{ w1_address }}", labels: {function: ingress}}',
            )
        ],
        [
            "datacenter 'lab1', rack 'lab1-r1', host 'lab1-w1': address = '{{ w1_address }}': the planner "
            "needs a literal value, not a Jinja expression [templated-value]"
        ],
        id="templated-value",
    ),
    pytest.param(
        [
            (
                H,
                "lab1-w1: {rack: lab1-r1, address: 198.18.0.21, labels: {function: ingress}}",
                "lab1-w1: {rack: lab1-r1, address: 198.18.0.21, labels: {function: ingress}, cluster: lab1-k9s}",
            )
        ],
        [
            "datacenter 'lab1', rack 'lab1-r1', host 'lab1-w1': cluster = 'lab1-k9s': no such cluster in "
            "datacenter 'lab1'; did you mean 'lab1-k8s'? (known: lab1-k8s) [unknown-cluster]"
        ],
        id="unknown-cluster",
    ),
    pytest.param(
        [
            (
                H,
                "    etcd_events:\n      hosts:\n        lab1-m1:\n        lab1-m2:\n        lab1-m3:\n",
                "    etcd_events:\n      hosts:\n        lab1-m1:\n        lab1-m2:\n",
            )
        ],
        [
            "datacenter 'lab1', cluster 'lab1-k8s': etcd_events = ['lab1-m1', 'lab1-m2']: the events etcd "
            "needs an odd number of members, found 2 [even-etcd-members]"
        ],
        id="even-etcd-members",
    ),
    pytest.param(
        [
            (
                H,
                "    consul_servers:\n      hosts:\n        lab1-m1:\n        lab1-m2:\n        lab1-m3:\n",
                "    consul_servers:\n      hosts:\n        lab1-m1:\n        lab1-m2:\n",
            )
        ],
        [
            "datacenter 'lab1': consul_servers = ['lab1-m1', 'lab1-m2']: Consul needs an odd number of "
            "servers (1, 3 or 5) in each datacenter, found 2 [consul-server-count]"
        ],
        id="consul-server-count",
    ),
    pytest.param(
        [(D, "{name: lab1-ingress, address: 198.18.2.10,", "{name: lab1-ingress, address: 198.18.3.10,")],
        [
            "datacenter 'lab1': lvs.vips[0].address = '198.18.3.10': VIP 'lab1-ingress' is outside networks.vip_pool 198.18.2.0/27 [vip-outside-pool]"
        ],
        id="vip-outside-pool",
    ),
    pytest.param(
        [(D, "{name: lab1-core1, address: 198.18.1.30}", "{name: lab1-core1, address: 198.18.1.40}")],
        [
            "datacenter 'lab1': bgp.core_routers[0].address = '198.18.1.40': core router 'lab1-core1' is "
            "outside networks.fabric 198.18.1.0/27 [router-outside-network]"
        ],
        id="router-outside-network",
    ),
    pytest.param(
        [(D, "          - {name: lab1-r1-tor2, address: 198.18.0.2, asn: 65121}\n", "")],
        [
            "datacenter 'lab1', rack 'lab1-r1': tors = ['lab1-r1-tor1']: a rack needs exactly two ToR routers, found 1 [tor-count]"
        ],
        id="tor-count",
    ),
    pytest.param(
        [(D, "node_asn: 65112", "node_asn: 65111")],
        [
            "datacenter 'lab1', rack 'lab1-r2': node_asn = 65111: AS 65111 is already used by datacenter "
            "'lab1', rack 'lab1-r1' node_asn [duplicate-asn]"
        ],
        id="duplicate-asn",
    ),
    pytest.param(
        [(D, "core_asn: 65100", "core_asn: 23456")],
        [
            "datacenter 'lab1': bgp.core_asn = 23456: not a usable AS number: reserved: AS 23456 is AS_TRANS (RFC 6793) [invalid-asn]"
        ],
        id="invalid-asn",
    ),
    pytest.param(
        [(D, "node_asn: 65111", "node_asn: 65121")],
        [
            "datacenter 'lab1', rack 'lab1-r1': tors[0].asn = 65121: ToR 'lab1-r1-tor1' has the rack's "
            "node_asn; in bgp.mode ebgp ToRs need an AS of their own (or use bgp.mode route_reflector) "
            "[asn-scheme]",
            "datacenter 'lab1', rack 'lab1-r1': tors[1].asn = 65121: ToR 'lab1-r1-tor2' has the rack's "
            "node_asn; in bgp.mode ebgp ToRs need an AS of their own (or use bgp.mode route_reflector) "
            "[asn-scheme]",
        ],
        id="asn-scheme",
    ),
    pytest.param(
        [(D, "vip_pool: 198.18.2.0/27", "vip_pool: 198.18.2.1/27")],
        [
            "datacenter 'lab1': networks.vip_pool = '198.18.2.1/27': has bits set after the prefix; did you mean 198.18.2.0/27? [cidr-host-bits]"
        ],
        id="cidr-host-bits",
    ),
    pytest.param(
        [(D, "local_address_pool: 198.18.2.32/27", "local_address_pool: 198.18.2.32/33")],
        [
            "datacenter 'lab1': networks.local_address_pool = '198.18.2.32/33': not an IPv4 CIDR [malformed-cidr]"
        ],
        id="malformed-cidr",
    ),
    pytest.param(
        [(D, "local_address_pool: 198.18.2.32/27", "local_address_pool: 198.18.2.0/27")],
        [
            "datacenter 'lab1': networks.vip_pool = '198.18.2.0/27': overlaps datacenter 'lab1' "
            "networks.local_address_pool 198.18.2.0/27 [subnet-overlap]"
        ],
        id="subnet-overlap",
    ),
    pytest.param(
        [(D, "mode: ebgp", "mode: ibgp")],
        [
            "datacenter 'lab1': bgp.mode = 'ibgp': must be one of ebgp, route_reflector; did you mean 'ebgp'? [invalid-choice]"
        ],
        id="invalid-choice",
    ),
    pytest.param(
        [(D, "      nodes: 198.18.0.0/24", "      nodez: 198.18.0.0/24")],
        [
            "datacenter 'lab1': networks.nodes = null: required field of a datacenter networks is missing [missing-field]",
            "datacenter 'lab1': networks.nodez = '198.18.0.0/24': unknown field of a datacenter networks; did you mean 'nodes'? [unknown-field]",
        ],
        id="unknown-field",
    ),
    pytest.param(
        [(D, "{name: lab1-r2-tor2, address: 198.18.0.66", "{name: lab1-r2-tor1, address: 198.18.0.66")],
        [
            "datacenter 'lab1', rack 'lab1-r2': tors[1].name = 'lab1-r2-tor1': router name also used by "
            "datacenter 'lab1', rack 'lab1-r2' tors[0].name [duplicate-router]"
        ],
        id="duplicate-router",
    ),
    pytest.param(
        [
            (
                D,
                "        - {name: lab1-ingress, address: 198.18.2.10, ports: [80, 443]}\n",
                "        - {name: lab1-ingress, address: 198.18.2.10, ports: [80, 443]}\n        - {name: "
                "lab1-api, address: 198.18.2.10, ports: [6443]}\n",
            )
        ],
        [
            "datacenter 'lab1': lvs.vips[1].address = '198.18.2.10': VIP 'lab1-api' has the address of VIP "
            "'lab1-ingress' (datacenter 'lab1' lvs.vips[0].address) [duplicate-vip]"
        ],
        id="duplicate-vip",
    ),
    pytest.param(
        [(D, "  lab1:\n    region: lab\n", "  lab1:\n")],
        ["datacenter 'lab1': region = null: required field of a datacenter is missing [missing-field]"],
        id="missing-field",
    ),
    pytest.param(
        [
            (
                K,
                "    max_pods: 32\n    lab_overrides:\n      events_etcd_on_masters: true\n\n  lab2-k8s:",
                "    max_pods: 100\n    lab_overrides:\n      events_etcd_on_masters: true\n\n  lab2-k8s:",
            )
        ],
        [
            "datacenter 'lab1', cluster 'lab1-k8s': pod_block_size = 26: a /26 block holds 64 addresses, "
            "fewer than max_pods 100; use /25 or less [pod-block-too-small]"
        ],
        id="pod-block-too-small",
    ),
    pytest.param(
        [(K, "service_cidr: 198.18.8.0/24", "service_cidr: 198.18.8.0/29")],
        [
            "datacenter 'lab1', cluster 'lab1-k8s': service_cidr = '198.18.8.0/29': Kubernetes accepts a "
            "service CIDR from a /12 to a /28 [service-cidr-size]"
        ],
        id="service-cidr-size",
    ),
    pytest.param(
        [(K, "    datacenter: lab2\n", "    datacenter: lab3\n")],
        [
            "cluster 'lab2-k8s': datacenter = 'lab3': no such datacenter in this inventory; did you mean "
            "'lab1'? (known: lab1, lab2) [unknown-datacenter]"
        ],
        id="unknown-datacenter",
    ),
    pytest.param(
        [(K, "context: lab2-k8s", "context: lab1-k8s")],
        [
            "datacenter 'lab2', cluster 'lab2-k8s': context = 'lab1-k8s': also the context of cluster "
            "'lab1-k8s'; reconcile would write one cluster's objects into the other [duplicate-context]"
        ],
        id="duplicate-context",
    ),
    pytest.param(
        [(K, "dns_name: api.lab2-k8s.lab.cloud58.test", "dns_name: api.lab1-k8s.lab.cloud58.test")],
        [
            "datacenter 'lab2', cluster 'lab2-k8s': api.dns_name = 'api.lab1-k8s.lab.cloud58.test': also "
            "the api.dns_name of cluster 'lab1-k8s' [duplicate-api-endpoint]"
        ],
        id="duplicate-api-endpoint",
    ),
    pytest.param(
        [(K, "dns_name: api.lab2-k8s.lab.cloud58.test", "dns_name: api_lab2.lab.cloud58.test")],
        [
            "datacenter 'lab2', cluster 'lab2-k8s': api.dns_name = 'api_lab2.lab.cloud58.test': not a lowercase DNS name [invalid-name]"
        ],
        id="invalid-name-dns",
    ),
    pytest.param(
        [(K, "pod_cidr: 198.18.16.0/21", "pod_cidr: 198.18.16.0/26")],
        [
            "datacenter 'lab1', cluster 'lab1-k8s': pod_cidr = '198.18.16.0/26': no room for rack 'lab1-r1' "
            "(3 nodes need a /23 with 50% headroom); the 2 racks need 768 addresses, pod_cidr holds 64: "
            "widen pod_cidr or lower pool_headroom_percent [pool-exhausted]"
        ],
        id="pool-exhausted",
    ),
    pytest.param(
        [
            (
                K,
                "    max_pods: 32\n    lab_overrides:\n      events_etcd_on_masters: true\n\n  lab2-k8s:",
                "    max_pods: many\n    lab_overrides:\n      events_etcd_on_masters: true\n\n  lab2-k8s:",
            )
        ],
        [
            "datacenter 'lab1', cluster 'lab1-k8s': max_pods = 'many': expected an integer, got a string [wrong-type]"
        ],
        id="wrong-type",
    ),
    pytest.param(
        [(B, "cloud58_bgp_options:\n", "cloud58_bgp_options:\n  maximum_paths: 200\n")],
        ["inventory: cloud58_bgp_options.maximum_paths = 200: outside 1..128 [out-of-range]"],
        id="out-of-range",
    ),
]


@pytest.mark.parametrize(("edits", "expected"), PLANNER_MISTAKES)
def test_the_planner_names_each_topology_mistake(tmp_path, edits, expected):
    inventory = _broken_copy(tmp_path, edits)
    with pytest.raises(PlanError) as info:
        build_plan(load_inventory(str(inventory)))
    assert [str(problem) for problem in info.value.problems] == expected


# ---- role variables, inventory files, Ansible: through ansible-playbook -----------------------

W1 = "lab1-w1: {rack: lab1-r1, address: 198.18.0.21, labels: {function: ingress}}"

PLAYBOOK_MISTAKES = [
    pytest.param(
        [("host_vars/lab1-w1.yml", NEW, "---\nbase_journald_rate_limit_burst: lots\n")],
        [],
        [
            "the inventory's files and role variables have 1 problem:",
            "  - {inventory}/host_vars/lab1-w1.yml:2, host 'lab1-w1': base_journald_rate_limit_burst = "
            "'lots': expected int (role 'base'): \"'lots'\" cannot be converted to an int [wrong-type]",
        ],
        id="role-variable-wrong-type",
    ),
    pytest.param(
        [("group_vars/masters.yml", NEW, "---\napi_endpoint_install_package: maybe\n")],
        [],
        [
            "the inventory's files and role variables have 1 problem:",
            "  - {inventory}/group_vars/masters.yml:2, hosts 'lab1-m1', 'lab1-m2', 'lab1-m3' and 3 more: "
            "api_endpoint_install_package = 'maybe': expected bool (role 'api_endpoint'): The value 'maybe' "
            "is not a valid boolean [wrong-type]",
        ],
        id="role-variable-not-a-bool",
    ),
    pytest.param(
        [("group_vars/minions/runtime.yml", NEW, "---\ncontainer_runtime_cgroup_driver: sysd\n")],
        [],
        [
            "the inventory's files and role variables have 1 problem:",
            "  - {inventory}/group_vars/minions/runtime.yml:2, hosts 'lab1-w1', 'lab1-w2', 'lab2-w1' and 1 "
            "more: container_runtime_cgroup_driver = 'sysd': expected one of systemd, cgroupfs (role "
            "'container_runtime'); did you mean 'systemd'? [invalid-choice]",
        ],
        id="role-variable-not-a-choice",
    ),
    pytest.param(
        [("host_vars/lab1-w1.yml", NEW, "---\nkubelet_max_pod: 50\n")],
        [],
        [
            "the inventory's files and role variables have 1 problem:",
            "  - {inventory}/host_vars/lab1-w1.yml:2, host 'lab1-w1': kubelet_max_pod = 50: role 'kubelet' "
            "declares no such variable; did you mean 'kubelet_max_pods'? [unknown-variable]",
        ],
        id="role-variable-unknown-with-did-you-mean",
    ),
    pytest.param(
        [("group_vars/all/kubelet.yml", NEW, "---\nkubelet_max_pods: 64\n")],
        [],
        [
            "the inventory's files and role variables have 1 problem:",
            "  - {inventory}/group_vars/all/kubelet.yml:2, hosts 'lab1-m1', 'lab1-m2', 'lab1-m3' and 7 "
            "more: kubelet_max_pods = 64: the playbook sets it for role 'kubelet' from the plan, so this "
            "value would never be used [set-by-playbook]",
        ],
        id="role-variable-the-playbook-sets-from-the-plan",
    ),
    pytest.param(
        [("group_vars/all/routers.yml", NEW, "---\ntor_router_optionz: {maximum_paths: 8}\n")],
        [],
        [
            "the inventory's files and role variables have 1 problem:",
            "  - {inventory}/group_vars/all/routers.yml:2, host 'localhost': tor_router_optionz = "
            "{maximum_paths: 8}: role 'tor_router' declares no such variable; did you mean "
            "'tor_router_options'? [unknown-variable]",
        ],
        id="role-variable-of-the-controller-play",
    ),
    pytest.param(
        [
            (
                "more.yml",
                NEW,
                "---\nall:\n  children:\n    minions:\n      hosts:\n        lab1-w1: {labels: {function: online}}\n",
            )
        ],
        [],
        [
            "the inventory's files and role variables have 1 problem:",
            "  - host 'lab1-w1': inventory files = '{inventory}/hosts.yml', '{inventory}/more.yml': the "
            "host is defined in 2 files; Ansible merges its groups and variables without a word: define it "
            "in one [duplicate-host]",
        ],
        id="host-in-two-inventory-files",
    ),
    pytest.param(
        [
            (
                H,
                "lab1-w2: {rack: lab1-r2, address: 198.18.0.85",
                "lab1-w2: {rack: lab1-r2, address: 198.18.0.5",
            ),
            ("host_vars/lab1-w1.yml", NEW, "---\nkubelet_cgroup_driver: sysd\n"),
        ],
        [],
        [
            "the inventory's files and role variables have 1 problem:",
            "  - {inventory}/host_vars/lab1-w1.yml:2, host 'lab1-w1': kubelet_cgroup_driver = 'sysd': "
            "expected one of systemd, cgroupfs (role 'kubelet'); did you mean 'systemd'? [invalid-choice]",
            "the inventory has 1 problem:",
            "  - datacenter 'lab1', rack 'lab1-r2', host 'lab1-w2': address = '198.18.0.5': outside the "
            "rack's node subnet 198.18.0.64/26 [host-outside-rack]",
        ],
        id="topology-and-role-variables-at-once",
    ),
    pytest.param(
        [(H, W1, "lab1-w1: {rack: lab1-r1, rack: lab1-r2, address: 198.18.0.21}")],
        [],
        [
            "[WARNING]: Failed to parse inventory with "
            "'ansible_collections.cloud58.platform.plugins.inventory.yaml' plugin: "
            "{inventory}/hosts.yml:27: YAML parsing failed: Found duplicate mapping key 'rack'.",
            "[WARNING]: Failed to parse inventory with "
            "'ansible_collections.ansible.builtin.plugins.inventory.ini' plugin: Failed to parse inventory: "
            "Invalid host pattern '---' supplied, '---' is normally a sign this is a YAML file.",
            "[ERROR]: Completely failed to parse inventory source {inventory}/hosts.yml",
        ],
        id="yaml-duplicate-key-in-hosts",
    ),
    pytest.param(
        [(D, "      nodes: 198.18.0.0/24", "      nodes: 198.18.0.0/24\n      nodes: 198.18.1.0/24")],
        [],
        [
            "[ERROR]: {inventory}/group_vars/all/datacenters.yml:10: YAML parsing failed: Found duplicate mapping key 'nodes'.",
        ],
        id="yaml-duplicate-key-in-group-vars-all",
    ),
    pytest.param(
        [("group_vars/all/kubelet.yml", NEW, "---\nkubelet_extra_args: [--v=2\nkubelet_max_pods: 64\n")],
        [],
        [
            "[ERROR]: {inventory}/group_vars/all/kubelet.yml:3: YAML parsing failed: While parsing a flow sequence did not find expected ',' or ']'.",
        ],
        id="yaml-syntax-error-in-group-vars-all",
    ),
    pytest.param(
        [
            (
                "group_vars/minions/runtime.yml",
                NEW,
                "---\ncontainer_runtime_log_level: info\ncontainer_runtime_log_level: debug\n",
            )
        ],
        [],
        [
            "Task failed: Finalization of task args for 'cloud58.platform.role_vars_check' failed: Error "
            "while resolving value for 'hosts': The filter plugin 'cloud58.platform.role_host_vars' failed: "
            "variables of host 'lab1-w1': {inventory}/group_vars/minions/runtime.yml:3: YAML parsing "
            "failed: Found duplicate mapping key 'container_runtime_log_level'.",
        ],
        id="yaml-duplicate-key-in-group-vars-of-a-group",
    ),
    pytest.param(
        [("host_vars/lab1-w1.yml", NEW, "---\nbase_timezone: UTC\nbase_timezone: Asia/Shanghai\n")],
        [],
        [
            "Task failed: Finalization of task args for 'cloud58.platform.role_vars_check' failed: Error "
            "while resolving value for 'hosts': The filter plugin 'cloud58.platform.role_host_vars' failed: "
            "variables of host 'lab1-w1': {inventory}/host_vars/lab1-w1.yml:3: YAML parsing failed: Found "
            "duplicate mapping key 'base_timezone'.",
        ],
        id="yaml-duplicate-key-in-host-vars",
    ),
    pytest.param(
        [("host_vars/lab1-w1.yml", NEW, "---\nbase_motd_extra_lines: [hello\nbase_timezone: UTC\n")],
        [],
        [
            "Task failed: Finalization of task args for 'cloud58.platform.role_vars_check' failed: Error "
            "while resolving value for 'hosts': The filter plugin 'cloud58.platform.role_host_vars' failed: "
            "variables of host 'lab1-w1': {inventory}/host_vars/lab1-w1.yml:3: YAML parsing failed: While "
            "parsing a flow sequence did not find expected ',' or ']'.",
        ],
        id="yaml-syntax-error-in-host-vars",
    ),
    pytest.param(
        [(H, "    lvs:\n      hosts:\n", "    lvs:\n      hosts: [\n")],
        [],
        [
            "[WARNING]: Failed to parse inventory with "
            "'ansible_collections.cloud58.platform.plugins.inventory.yaml' plugin: "
            "{inventory}/hosts.yml:34: YAML parsing failed: Colons in unquoted values must be followed by a "
            "non-space character.",
            "[WARNING]: Failed to parse inventory with "
            "'ansible_collections.ansible.builtin.plugins.inventory.ini' plugin: Failed to parse inventory: "
            "Invalid host pattern '---' supplied, '---' is normally a sign this is a YAML file.",
            "[ERROR]: Completely failed to parse inventory source {inventory}/hosts.yml",
        ],
        id="yaml-syntax-error-in-hosts",
    ),
    pytest.param(
        [
            (
                H,
                "    consul_servers:\n",
                "    consul_sync:\n      hosts:\n        lab1-lvs1:\n    consul_servers:\n",
            )
        ],
        [],
        [
            "Task failed: Finalization of task args for 'ansible.builtin.set_fact' failed: Error while "
            "resolving value for 'validate__consul_sync_hosts': The filter plugin "
            "'cloud58.platform.consul_sync_hosts' failed: consul_sync_hosts: group consul_sync: 'lab1-lvs1' "
            "is no node of a cluster of the plan (clusters: lab1-k8s, lab2-k8s)",
        ],
        id="consul-sync-group-host-in-no-cluster",
    ),
    pytest.param(
        [],
        ["--limit", "lab1-w9"],
        [
            "[WARNING]: Could not match supplied host pattern, ignoring: lab1-w9",
            "[ERROR]: Specified inventory, host pattern and/or --limit leaves us with no hosts to target.",
        ],
        id="limit-names-no-host",
    ),
    pytest.param(
        [],
        ["--limit", "lab1-w1,lab1-w9,minoins"],
        [
            "the inventory's files and role variables have 2 problems:",
            "  - --limit: pattern = 'lab1-w9': no host or group of the inventory has this name; Ansible "
            "would only warn and run the other hosts; did you mean 'lab1-w1'? [unknown-limit]",
            "  - --limit: pattern = 'minoins': no host or group of the inventory has this name; Ansible "
            "would only warn and run the other hosts; did you mean 'minions'? [unknown-limit]",
        ],
        id="limit-names-an-unknown-host-beside-a-known-one",
    ),
]


def _validate(inventory, args):
    env = dict(
        os.environ,
        ANSIBLE_CONFIG=os.path.join(REPO, "ansible.cfg"),
        ANSIBLE_NOCOLOR="1",
        ANSIBLE_STDOUT_CALLBACK="ansible.posix.json",
    )
    tool = os.path.join(os.path.dirname(sys.executable), "ansible-playbook")
    return subprocess.run(
        [tool, "-i", str(inventory), PLAYBOOK, *args], capture_output=True, text=True, env=env, check=False
    )


def _what_the_operator_reads(run):
    """The failure message of the preflight, one line each; or, when Ansible stopped before
    the preflight ran, Ansible's own error and warning lines."""
    start = ("\n" + run.stdout).find("\n{\n")
    if start >= 0:
        report = json.JSONDecoder().raw_decode(run.stdout[start:])[0]
        for play in report["plays"]:
            for task in play["tasks"]:
                # the preflight's tasks run once, on the first host the play (and --limit) leaves
                result = next(iter(task["hosts"].values()), {})
                if result.get("failed"):
                    return result["msg"].splitlines()
    return [line for line in run.stderr.splitlines() if line.startswith(("[ERROR]", "[WARNING]"))]


@pytest.mark.slow
@pytest.mark.parametrize(("edits", "args", "expected"), PLAYBOOK_MISTAKES)
def test_validate_yml_names_each_mistake(tmp_path, edits, args, expected):
    inventory = _broken_copy(tmp_path, edits)
    run = _validate(inventory, args)
    assert run.returncode != 0
    assert "Traceback" not in run.stdout + run.stderr
    assert _what_the_operator_reads(run) == [line.replace("{inventory}", str(inventory)) for line in expected]


def test_the_corpus_holds_at_least_40_kinds_of_mistake():
    ids = [case.id for case in PLANNER_MISTAKES + PLAYBOOK_MISTAKES]
    assert len(set(ids)) == len(ids) >= 40


@pytest.mark.slow
def test_validate_yml_does_not_show_a_roles_secret_at_vvv(tmp_path):
    """The preflight hands every host's role variables to role_vars_check, whose arguments
    Ansible prints at -vvv: the values of options a role marks no_log (Consul's gossip key and
    management token) are masked, the others are shown."""
    inventory = _broken_copy(tmp_path, [])
    secrets = tmp_path / "secrets.json"
    secrets.write_text(
        json.dumps(
            {
                "consul_encrypt_key": "c2VjcmV0LWdvc3NpcC1rZXktb2YtMzItYnl0ZXMhISE=",
                "consul_acl_management_token": "6f1b8ad4-5c4e-4b1a-9d0e-3a1f2b3c4d5e",
                "consul_dns_port": 8653,
            }
        )
    )
    run = subprocess.run(
        [
            os.path.join(os.path.dirname(sys.executable), "ansible-playbook"),
            "-i",
            str(inventory),
            PLAYBOOK,
            "-e",
            f"@{secrets}",
            "-vvv",
        ],
        capture_output=True,
        text=True,
        env=dict(os.environ, ANSIBLE_CONFIG=os.path.join(REPO, "ansible.cfg"), ANSIBLE_NOCOLOR="1"),
        check=False,
    )
    assert run.returncode == 0, run.stdout[-3000:]
    out = run.stdout + run.stderr
    assert "c2VjcmV0LWdvc3NpcC1rZXktb2YtMzItYnl0ZXMhISE=" not in out
    assert "6f1b8ad4-5c4e-4b1a-9d0e-3a1f2b3c4d5e" not in out
    # The masked values are there in their place, and a variable that is no secret is shown.
    assert "value: '********'" in out
    assert "value: 8653" in out
