# -*- coding: utf-8 -*-
# Copyright: cloud58 platform team
# Apache License 2.0
"""Every kind of inventory problem: one change to a valid inventory, the exact messages.

Each case starts from the valid two-datacenter inventory of ``topology_factory``, breaks
one thing and asserts the complete list of problems (so a case also proves that one
mistake is reported once, with datacenter / rack / host / field, the value and the other
party of a conflict).
"""

from __future__ import annotations

import re

import pytest
from topology_factory import add_to_group, base, plan, remove_host, split

from ansible_collections.cloud58.platform.plugins.module_utils.topology import ERROR_KINDS, PlanError

# kinds proved in other files (they need files on disk)
KINDS_TESTED_ELSEWHERE = {"unreadable-inventory"}


def dc(d, name="dc1"):
    return d["datacenters"][name]


def rack(d, name="dc1-r1"):
    return d["datacenters"][name.split("-")[0]]["racks"][name]


def cl(d, name="dc1-k8s"):
    return d["clusters"][name]


def h(d, name):
    return d["hosts"][name]


def _new_rack(subnet, asn, tor_asn, first_tor):
    prefix = subnet.rsplit(".", 1)[0]
    return {
        "node_subnet": subnet,
        "node_asn": asn,
        "tors": [
            {"name": "dc1-r3-tor1", "address": f"{prefix}.{first_tor}", "asn": tor_asn},
            {"name": "dc1-r3-tor2", "address": f"{prefix}.{first_tor + 1}", "asn": tor_asn},
        ],
    }


def _missing_field_rack_subnet(d):
    del rack(d)["node_subnet"]


def _missing_field_host_address(d):
    del h(d, "dc1-w1")["address"]


def _missing_field_no_datacenters(d):
    d["datacenters"] = None


def _missing_field_no_racks(d):
    dc(d, "dc2")["racks"] = {}
    for name in [x for x in d["hosts"] if x.startswith("dc2")]:
        remove_host(d, name)
    del d["clusters"]["dc2-k8s"]


def _unknown_field_rack(d):
    rack(d)["node_asm"] = 65011


def _unknown_field_host_typo(d):
    h(d, "dc1-w1")["adress"] = "198.18.0.22"


def _wrong_type_max_pods(d):
    cl(d)["max_pods"] = "32"


def _wrong_type_datacenters(d):
    d["datacenters"] = ["dc1"]


def _wrong_type_address(d):
    h(d, "dc1-w1")["address"] = 3232235521


def _malformed_cidr(d):
    cl(d)["pod_cidr"] = "198.18.16.0/33"


def _malformed_cidr_no_prefix(d):
    dc(d)["networks"]["vip_pool"] = "198.18.2.0"


def _cidr_host_bits(d):
    cl(d)["service_cidr"] = "198.18.8.1/24"


def _malformed_address(d):
    h(d, "dc1-w1")["address"] = "198.18.0.300"


def _invalid_asn_as_trans(d):
    rack(d)["node_asn"] = 23456


def _invalid_asn_too_big(d):
    dc(d)["bgp"]["core_asn"] = 4294967296


def _invalid_asn_documentation(d):
    rack(d)["tors"][0]["asn"] = 64500
    rack(d)["tors"][1]["asn"] = 64500


def _invalid_name_rack(d):
    dc(d)["racks"]["Rack_3"] = dict(rack(d, "dc1-r1"))


def _invalid_name_dns(d):
    cl(d)["api"]["dns_name"] = "API.dc1.test"


def _invalid_name_host(d):
    # the host name becomes the node name, an etcd member and a certificate SAN
    d["hosts"]["dc1_w3"] = {"rack": "dc1-r1", "address": "198.18.0.23"}
    d["groups"]["minions"].append("dc1_w3")


def _out_of_range_block(d):
    cl(d)["pod_block_size"] = 19


def _out_of_range_port(d):
    cl(d)["api"]["port"] = 70000


def _invalid_choice(d):
    dc(d)["bgp"]["mode"] = "ebpg"


def _unknown_group(d):
    add_to_group(d, "minons", "dc1-w1")


def _unknown_rack(d):
    h(d, "dc1-w1")["rack"] = "dc1-r3"


def _unknown_datacenter(d):
    cl(d)["datacenter"] = "dc3"


def _unknown_cluster(d):
    h(d, "dc1-w1")["cluster"] = "dc1-k9s"


def _ambiguous_cluster(d):
    d["clusters"]["dc1-k8s-b"] = dict(
        cl(d),
        context="dc1-k8s-b",
        api={"vip": "198.18.2.2", "dns_name": "api-b.dc1.test"},
        pod_cidr="198.18.32.0/21",
        service_cidr="198.18.9.0/24",
    )


def _no_cluster(d):
    del d["clusters"]["dc1-k8s"]


def _duplicate_host(d):
    a, b = split(d)
    b["hosts"]["dc1-w1"] = {"rack": "dc2-r1", "address": "198.19.0.22"}
    b["groups"]["minions"].append("dc1-w1")
    return [a, b]


def _duplicate_datacenter(d):
    a, b = split(d)
    b["datacenters"]["dc1"] = a["datacenters"]["dc1"]
    return [a, b]


def _duplicate_cluster(d):
    a, b = split(d)
    b["clusters"]["dc1-k8s"] = dict(a["clusters"]["dc1-k8s"])
    return [a, b]


def _duplicate_address_hosts(d):
    h(d, "dc1-w2")["address"] = "198.18.0.75"


def _duplicate_address_tor(d):
    h(d, "dc1-w1")["address"] = "198.18.0.1"


def _duplicate_asn_racks(d):
    rack(d, "dc2-r1")["node_asn"] = 65111


def _duplicate_asn_core(d):
    dc(d, "dc2")["bgp"]["core_asn"] = 65100


def _duplicate_rack(d):
    dc(d, "dc2")["racks"]["dc1-r1"] = dict(rack(d, "dc2-r1"))


def _duplicate_router(d):
    rack(d, "dc2-r1")["tors"][0]["name"] = "dc1-r1-tor1"


def _duplicate_vip_name(d):
    dc(d)["lvs"]["vips"].append({"name": "dc1-web", "address": "198.18.2.11"})


def _duplicate_vip_address(d):
    dc(d)["lvs"]["vips"][0]["address"] = "198.18.2.1"


def _duplicate_consul_datacenter(d):
    dc(d, "dc2")["consul_datacenter"] = "dc1"


def _duplicate_context(d):
    cl(d, "dc2-k8s")["context"] = "dc1-k8s"


def _duplicate_api_endpoint(d):
    cl(d, "dc2-k8s")["api"]["dns_name"] = "api.dc1.test"


def _even_etcd_members_masters(d):
    remove_host(d, "dc1-m3")
    cl(d)["lab_overrides"] = {"allow_fewer_than_3_masters": True}


def _even_etcd_members_events(d):
    remove_host(d, "dc1-e3")


def _too_few_masters(d):
    remove_host(d, "dc1-m2")
    remove_host(d, "dc1-m3")


def _too_few_masters_none(d):
    for x in ("dc1-m1", "dc1-m2", "dc1-m3"):
        remove_host(d, x)


def _no_events_etcd(d):
    for x in ("dc1-e1", "dc1-e2", "dc1-e3"):
        remove_host(d, x)


def _role_conflict_master_minion(d):
    remove_host(d, "dc1-m3")
    add_to_group(d, "masters", "dc1-w1")


def _role_conflict_lvs(d):
    add_to_group(d, "minions", "dc1-lvs1")


def _role_conflict_events_on_masters(d):
    for x in ("dc1-e1", "dc1-e2", "dc1-e3"):
        remove_host(d, x)
    for x in ("dc1-m1", "dc1-m2", "dc1-m3"):
        add_to_group(d, "etcd_events", x)


def _no_directors(d):
    remove_host(d, "dc1-lvs1")
    remove_host(d, "dc1-lvs2")


def _directors_per_vip(d):
    dc(d)["lvs"]["directors_per_vip"] = 3


def _consul_server_count(d):
    d["hosts"]["dc1-c2"] = {"rack": "dc1-r2", "address": "198.18.0.105"}
    add_to_group(d, "consul_servers", "dc1-c2")


def _label_conflict(d):
    h(d, "dc1-w1")["labels"] = {"rack": "dc1-r2"}


def _invalid_label_value(d):
    h(d, "dc1-w1")["labels"] = {"function": "web server"}


def _invalid_label_key(d):
    h(d, "dc1-w1")["labels"] = {"bad key!": "x"}


def _invalid_label_type(d):
    h(d, "dc1-w1")["labels"] = {"tier": 1}


def _host_outside_rack(d):
    h(d, "dc1-w1")["address"] = "198.18.0.70"


def _reserved_address_network(d):
    h(d, "dc1-w1")["address"] = "198.18.0.0"


def _reserved_address_broadcast(d):
    h(d, "dc1-w1")["address"] = "198.18.0.63"


def _router_outside_network_tor(d):
    rack(d)["tors"][1]["address"] = "198.18.0.100"


def _router_outside_network_core(d):
    dc(d)["bgp"]["core_routers"][0]["address"] = "198.18.3.30"


def _subnet_outside_network_rack(d):
    dc(d)["racks"]["dc1-r3"] = _new_rack("198.18.5.0/26", 65013, 65023, 1)


def _subnet_outside_network_block(d):
    cl(d)["pod_block_size"] = 20


def _subnet_overlap_racks(d):
    dc(d)["racks"]["dc1-r3"] = _new_rack("198.18.0.32/27", 65013, 65023, 33)


def _subnet_overlap_pods_services(d):
    cl(d)["service_cidr"] = "198.18.16.0/24"


def _subnet_overlap_across_datacenters(d):
    cl(d, "dc2-k8s")["pod_cidr"] = "198.18.16.0/21"


def _subnet_overlap_pods_nodes(d):
    cl(d)["pod_cidr"] = "198.18.0.0/21"


def _pod_block_too_small(d):
    cl(d)["max_pods"] = 65


def _pool_exhausted(d):
    cl(d)["pod_cidr"] = "198.18.16.0/24"


def _service_cidr_size_big(d):
    cl(d)["service_cidr"] = "10.0.0.0/11"


def _service_cidr_size_small(d):
    cl(d)["service_cidr"] = "198.18.8.0/29"


def _local_address_pool_too_small(d):
    dc(d)["lvs"]["local_addresses_per_director"] = 32


def _fabric_exhausted(d):
    dc(d)["networks"]["fabric"] = "198.18.1.0/29"
    dc(d)["bgp"]["core_routers"][0]["address"] = "198.18.1.6"


def _templated_value(d):
    rack(d)["node_subnet"] = "{{ rack1_subnet }}"


def _no_hosts_inventory(d):
    d["groups"] = {"all": [], "ungrouped": []}
    d["hosts"] = {}


def _no_hosts_datacenter(d):
    d["datacenters"]["dc3"] = {
        "region": "r3",
        "networks": {
            "nodes": "198.20.0.0/24",
            "fabric": "198.20.1.0/27",
            "vip_pool": "198.20.2.0/27",
            "local_address_pool": "198.20.2.32/27",
        },
        "bgp": {"core_asn": 65300, "core_routers": [{"name": "dc3-core1", "address": "198.20.1.30"}]},
        "racks": {
            "dc3-r1": {
                "node_subnet": "198.20.0.0/26",
                "node_asn": 65311,
                "tors": [
                    {"name": "dc3-r1-tor1", "address": "198.20.0.1", "asn": 65321},
                    {"name": "dc3-r1-tor2", "address": "198.20.0.2", "asn": 65321},
                ],
            }
        },
    }


def _asn_scheme_ebgp(d):
    rack(d)["tors"][0]["asn"] = 65111


def _asn_scheme_route_reflector(d):
    dc(d)["bgp"]["mode"] = "route_reflector"
    for name in ("dc1-r1", "dc1-r2"):
        for tor in rack(d, name)["tors"]:
            tor["asn"] = rack(d, name)["node_asn"]
    rack(d, "dc1-r2")["tors"][1]["asn"] = 65999


def _tor_count(d):
    rack(d)["tors"].pop()


def _vip_outside_pool(d):
    dc(d)["lvs"]["vips"][0]["address"] = "198.18.3.10"


def _vip_outside_pool_api(d):
    cl(d)["api"]["vip"] = "198.18.3.1"


def _bgp_options(**options):
    def mutate(d):
        d["bgp_options"] = options

    return mutate


def _bgp_options_not_a_mapping(d):
    d["bgp_options"] = ["hold: 9"]


CASES = [
    pytest.param(
        _missing_field_rack_subnet,
        [
            "datacenter 'dc1', rack 'dc1-r1': node_subnet = null: required field of a rack is "
            "missing [missing-field]",
        ],
        id="missing-field-rack-subnet",
    ),
    pytest.param(
        _missing_field_host_address,
        [
            "datacenter 'dc1', rack 'dc1-r1', host 'dc1-w1': address = null: required field of a "
            "host is missing [missing-field]",
        ],
        id="missing-field-host-address",
    ),
    pytest.param(
        _missing_field_no_datacenters,
        [
            "inventory: cloud58_datacenters = null: no datacenter is defined (set it in "
            "group_vars/all) [missing-field]",
        ],
        id="missing-field-no-datacenters",
    ),
    pytest.param(
        _missing_field_no_racks,
        [
            "datacenter 'dc2': racks = {}: a datacenter needs at least one rack [missing-field]",
        ],
        id="missing-field-no-racks",
    ),
    pytest.param(
        _unknown_field_rack,
        [
            "datacenter 'dc1', rack 'dc1-r1': node_asm = 65011: unknown field of a rack; did you "
            "mean 'node_asn'? [unknown-field]",
        ],
        id="unknown-field-rack",
    ),
    pytest.param(
        _unknown_field_host_typo,
        [
            "datacenter 'dc1', rack 'dc1-r1', host 'dc1-w1': adress = '198.18.0.22': unknown field "
            "of a host; did you mean 'address'? [unknown-field]",
        ],
        id="unknown-field-host-typo",
    ),
    pytest.param(
        _wrong_type_max_pods,
        [
            "datacenter 'dc1', cluster 'dc1-k8s': max_pods = '32': expected an integer, got a string "
            "[wrong-type]",
        ],
        id="wrong-type-max-pods",
    ),
    pytest.param(
        _wrong_type_datacenters,
        [
            "inventory: cloud58_datacenters = ['dc1']: expected a mapping of datacenter name to "
            "datacenter, got a list [wrong-type]",
        ],
        id="wrong-type-datacenters",
    ),
    pytest.param(
        _wrong_type_address,
        [
            "datacenter 'dc1', rack 'dc1-r1', host 'dc1-w1': address = 3232235521: expected an IPv4 "
            "address, got an integer [wrong-type]",
        ],
        id="wrong-type-address",
    ),
    pytest.param(
        _malformed_cidr,
        [
            "datacenter 'dc1', cluster 'dc1-k8s': pod_cidr = '198.18.16.0/33': not an IPv4 CIDR "
            "[malformed-cidr]",
        ],
        id="malformed-cidr",
    ),
    pytest.param(
        _malformed_cidr_no_prefix,
        [
            "datacenter 'dc1': networks.vip_pool = '198.18.2.0': not an IPv4 CIDR: the prefix length "
            "(/N) is missing [malformed-cidr]",
        ],
        id="malformed-cidr-no-prefix",
    ),
    pytest.param(
        _cidr_host_bits,
        [
            "datacenter 'dc1', cluster 'dc1-k8s': service_cidr = '198.18.8.1/24': has bits set after "
            "the prefix; did you mean 198.18.8.0/24? [cidr-host-bits]",
        ],
        id="cidr-host-bits",
    ),
    pytest.param(
        _malformed_address,
        [
            "datacenter 'dc1', rack 'dc1-r1', host 'dc1-w1': address = '198.18.0.300': not an IPv4 "
            "address [malformed-address]",
        ],
        id="malformed-address",
    ),
    pytest.param(
        _invalid_asn_as_trans,
        [
            "datacenter 'dc1', rack 'dc1-r1': node_asn = 23456: not a usable AS number: reserved: AS "
            "23456 is AS_TRANS (RFC 6793) [invalid-asn]",
        ],
        id="invalid-asn-as-trans",
    ),
    pytest.param(
        _invalid_asn_too_big,
        [
            "datacenter 'dc1': bgp.core_asn = 4294967296: not a usable AS number: AS numbers run "
            "from 1 to 4294967294 [invalid-asn]",
        ],
        id="invalid-asn-too-big",
    ),
    pytest.param(
        _invalid_asn_documentation,
        [
            "datacenter 'dc1', rack 'dc1-r1': tors[0].asn = 64500: not a usable AS number: reserved: "
            "64496-64511 are reserved for documentation (RFC 5398) [invalid-asn]",
            "datacenter 'dc1', rack 'dc1-r1': tors[1].asn = 64500: not a usable AS number: reserved: "
            "64496-64511 are reserved for documentation (RFC 5398) [invalid-asn]",
        ],
        id="invalid-asn-documentation",
    ),
    pytest.param(
        _invalid_name_rack,
        [
            "datacenter 'dc1': racks key = 'Rack_3': names are lowercase DNS labels: a-z, 0-9 and "
            "'-', at most 63 characters [invalid-name]",
        ],
        id="invalid-name-rack",
    ),
    pytest.param(
        _invalid_name_dns,
        [
            "datacenter 'dc1', cluster 'dc1-k8s': api.dns_name = 'API.dc1.test': not a lowercase DNS "
            "name [invalid-name]",
        ],
        id="invalid-name-dns",
    ),
    pytest.param(
        _invalid_name_host,
        [
            "datacenter 'dc1', rack 'dc1-r1', host 'dc1_w3': name = 'dc1_w3': names are lowercase DNS "
            "labels: a-z, 0-9 and '-', at most 63 characters [invalid-name]",
        ],
        id="invalid-name-host",
    ),
    pytest.param(
        _out_of_range_block,
        [
            "datacenter 'dc1', cluster 'dc1-k8s': pod_block_size = 19: must be between 20 and 32 "
            "[out-of-range]",
        ],
        id="out-of-range-block",
    ),
    pytest.param(
        _out_of_range_port,
        [
            "datacenter 'dc1', cluster 'dc1-k8s': api.port = 70000: must be between 1 and 65535 "
            "[out-of-range]",
        ],
        id="out-of-range-port",
    ),
    pytest.param(
        _invalid_choice,
        [
            "datacenter 'dc1': bgp.mode = 'ebpg': must be one of ebgp, route_reflector; did you mean "
            "'ebgp'? [invalid-choice]",
        ],
        id="invalid-choice",
    ),
    pytest.param(
        _unknown_group,
        [
            "inventory: group minons = ['dc1-w1']: not a role group; did you mean 'minions'? (role "
            "groups: masters, etcd_events, minions, lvs, consul_servers) [unknown-group]",
        ],
        id="unknown-group",
    ),
    pytest.param(
        _unknown_rack,
        [
            "host 'dc1-w1': rack = 'dc1-r3': no such rack in this inventory; did you mean 'dc1-r1'? "
            "[unknown-rack]",
        ],
        id="unknown-rack",
    ),
    pytest.param(
        _unknown_datacenter,
        [
            "cluster 'dc1-k8s': datacenter = 'dc3': no such datacenter in this inventory; did you "
            "mean 'dc1'? (known: dc1, dc2) [unknown-datacenter]",
        ],
        id="unknown-datacenter",
    ),
    pytest.param(
        _unknown_cluster,
        [
            "datacenter 'dc1', rack 'dc1-r1', host 'dc1-w1': cluster = 'dc1-k9s': no such cluster in "
            "datacenter 'dc1'; did you mean 'dc1-k8s'? (known: dc1-k8s) [unknown-cluster]",
        ],
        id="unknown-cluster",
    ),
    pytest.param(
        _ambiguous_cluster,
        [
            "datacenter 'dc1': cluster = ['dc1-e1', 'dc1-e2', 'dc1-e3', 'dc1-m1', 'dc1-m2', "
            "'dc1-m3', 'dc1-w1', 'dc1-w2']: the datacenter has several clusters (dc1-k8s, "
            "dc1-k8s-b); these hosts must set their cluster [ambiguous-cluster]",
        ],
        id="ambiguous-cluster",
    ),
    pytest.param(
        _no_cluster,
        [
            "datacenter 'dc1': cloud58_clusters = ['dc1-e1', 'dc1-e2', 'dc1-e3', 'dc1-m1', 'dc1-m2', "
            "'dc1-m3', 'dc1-w1', 'dc1-w2']: these hosts are in masters, minions or etcd_events but "
            "no cluster of cloud58_clusters is in datacenter 'dc1' [no-cluster]",
        ],
        id="no-cluster",
    ),
    pytest.param(
        _duplicate_host,
        [
            "host 'dc1-w1': name = 'dc1-w1': in inventory 'inv1' and in inventory 'inv2' [duplicate-host]",
        ],
        id="duplicate-host",
    ),
    pytest.param(
        _duplicate_datacenter,
        [
            "datacenter 'dc1': name = 'dc1': defined in inventory 'inv1' and in inventory 'inv2' "
            "[duplicate-datacenter]",
        ],
        id="duplicate-datacenter",
    ),
    pytest.param(
        _duplicate_cluster,
        [
            "cluster 'dc1-k8s': name = 'dc1-k8s': defined in inventory 'inv1' and in inventory "
            "'inv2' [duplicate-cluster]",
        ],
        id="duplicate-cluster",
    ),
    pytest.param(
        _duplicate_address_hosts,
        [
            "datacenter 'dc1', rack 'dc1-r2', host 'dc1-w2': address = '198.18.0.75': already the "
            "address of datacenter 'dc1', rack 'dc1-r2', host 'dc1-m2' address [duplicate-address]",
        ],
        id="duplicate-address-hosts",
    ),
    pytest.param(
        _duplicate_address_tor,
        [
            "datacenter 'dc1', rack 'dc1-r1', host 'dc1-w1': address = '198.18.0.1': already the "
            "address of datacenter 'dc1', rack 'dc1-r1' tors[0].address (ToR 'dc1-r1-tor1') "
            "[duplicate-address]",
        ],
        id="duplicate-address-tor",
    ),
    pytest.param(
        _duplicate_asn_racks,
        [
            "datacenter 'dc2', rack 'dc2-r1': node_asn = 65111: AS 65111 is already used by "
            "datacenter 'dc1', rack 'dc1-r1' node_asn [duplicate-asn]",
        ],
        id="duplicate-asn-racks",
    ),
    pytest.param(
        _duplicate_asn_core,
        [
            "datacenter 'dc2': bgp.core_asn = 65100: AS 65100 is already used by datacenter 'dc1' "
            "bgp.core_asn [duplicate-asn]",
        ],
        id="duplicate-asn-core",
    ),
    pytest.param(
        _duplicate_rack,
        [
            "datacenter 'dc2', rack 'dc1-r1': name = 'dc1-r1': rack names are unique in the fabric; "
            "also defined in datacenter 'dc1' [duplicate-rack]",
        ],
        id="duplicate-rack",
    ),
    pytest.param(
        _duplicate_router,
        [
            "datacenter 'dc2', rack 'dc2-r1': tors[0].name = 'dc1-r1-tor1': router name also used by "
            "datacenter 'dc1', rack 'dc1-r1' tors[0].name [duplicate-router]",
        ],
        id="duplicate-router",
    ),
    pytest.param(
        _duplicate_vip_name,
        [
            "datacenter 'dc1': lvs.vips[1].name = 'dc1-web': VIP name also used by datacenter 'dc1' "
            "lvs.vips[0].name [duplicate-vip]",
        ],
        id="duplicate-vip-name",
    ),
    pytest.param(
        _duplicate_vip_address,
        [
            "datacenter 'dc1', cluster 'dc1-k8s': api.vip = '198.18.2.1': VIP 'dc1-k8s-api' has the "
            "address of VIP 'dc1-web' (datacenter 'dc1' lvs.vips[0].address) [duplicate-vip]",
        ],
        id="duplicate-vip-address",
    ),
    pytest.param(
        _duplicate_consul_datacenter,
        [
            "datacenter 'dc2': consul_datacenter = 'dc1': also the Consul datacenter of datacenter "
            "'dc1' [duplicate-consul-datacenter]",
        ],
        id="duplicate-consul-datacenter",
    ),
    pytest.param(
        _duplicate_context,
        [
            "datacenter 'dc2', cluster 'dc2-k8s': context = 'dc1-k8s': also the context of cluster "
            "'dc1-k8s'; reconcile would write one cluster's objects into the other "
            "[duplicate-context]",
        ],
        id="duplicate-context",
    ),
    pytest.param(
        _duplicate_api_endpoint,
        [
            "datacenter 'dc2', cluster 'dc2-k8s': api.dns_name = 'api.dc1.test': also the "
            "api.dns_name of cluster 'dc1-k8s' [duplicate-api-endpoint]",
        ],
        id="duplicate-api-endpoint",
    ),
    pytest.param(
        _even_etcd_members_masters,
        [
            "datacenter 'dc1', cluster 'dc1-k8s': masters = ['dc1-m1', 'dc1-m2']: etcd runs on the "
            "masters and needs an odd number of members, found 2 [even-etcd-members]",
        ],
        id="even-etcd-members-masters",
    ),
    pytest.param(
        _even_etcd_members_events,
        [
            "datacenter 'dc1', cluster 'dc1-k8s': etcd_events = ['dc1-e1', 'dc1-e2']: the events "
            "etcd needs an odd number of members, found 2 [even-etcd-members]",
        ],
        id="even-etcd-members-events",
    ),
    pytest.param(
        _too_few_masters,
        [
            "datacenter 'dc1', cluster 'dc1-k8s': masters = ['dc1-m1']: 1 master; a cluster needs 3 "
            "(or lab_overrides.allow_fewer_than_3_masters) [too-few-masters]",
        ],
        id="too-few-masters",
    ),
    pytest.param(
        _too_few_masters_none,
        [
            "datacenter 'dc1', cluster 'dc1-k8s': masters = []: the cluster has no master (group "
            "masters) [too-few-masters]",
        ],
        id="too-few-masters-none",
    ),
    pytest.param(
        _no_events_etcd,
        [
            "datacenter 'dc1', cluster 'dc1-k8s': etcd_events = []: no host of group etcd_events is "
            "in this cluster (put the masters there too with lab_overrides.events_etcd_on_masters in "
            "a lab) [no-events-etcd]",
        ],
        id="no-events-etcd",
    ),
    pytest.param(
        _role_conflict_master_minion,
        [
            "datacenter 'dc1', rack 'dc1-r1', host 'dc1-w1': groups = ['masters', 'minions']: a host "
            "is a master or a minion, not both [role-conflict]",
        ],
        id="role-conflict-master-minion",
    ),
    pytest.param(
        _role_conflict_lvs,
        [
            "datacenter 'dc1', rack 'dc1-r1', host 'dc1-lvs1': groups = ['lvs', 'minions']: an LVS "
            "director runs no Kubernetes or etcd workload; remove it from minions [role-conflict]",
        ],
        id="role-conflict-lvs",
    ),
    pytest.param(
        _role_conflict_events_on_masters,
        [
            "datacenter 'dc1', cluster 'dc1-k8s': etcd_events = ['dc1-m1', 'dc1-m2', 'dc1-m3']: "
            "masters are also events-etcd members; give the events etcd its own hosts (or "
            "lab_overrides.events_etcd_on_masters in a lab) [role-conflict]",
        ],
        id="role-conflict-events-on-masters",
    ),
    pytest.param(
        _no_directors,
        [
            "datacenter 'dc1': lvs = ['dc1-k8s-api', 'dc1-web']: the datacenter has VIPs but no host "
            "of group lvs is in its racks [no-directors]",
        ],
        id="no-directors",
    ),
    pytest.param(
        _directors_per_vip,
        [
            "datacenter 'dc1': lvs.directors_per_vip = 3: only 2 directors in the datacenter "
            "(dc1-lvs1, dc1-lvs2) [directors-per-vip]",
        ],
        id="directors-per-vip",
    ),
    pytest.param(
        _consul_server_count,
        [
            "datacenter 'dc1': consul_servers = ['dc1-c1', 'dc1-c2']: Consul needs an odd number of "
            "servers (1, 3 or 5) in each datacenter, found 2 [consul-server-count]",
        ],
        id="consul-server-count",
    ),
    pytest.param(
        _label_conflict,
        [
            "datacenter 'dc1', rack 'dc1-r1', host 'dc1-w1': labels.rack = 'dc1-r2': disagrees with "
            "the host's rack 'dc1-r1' (the planner sets this label; drop it) [label-conflict]",
        ],
        id="label-conflict",
    ),
    pytest.param(
        _invalid_label_value,
        [
            "datacenter 'dc1', rack 'dc1-r1', host 'dc1-w1': labels.function = 'web server': not a "
            "valid label value: up to 63 of A-Z a-z 0-9 - _ . starting and ending alphanumeric "
            "[invalid-label]",
        ],
        id="invalid-label-value",
    ),
    pytest.param(
        _invalid_label_key,
        [
            "datacenter 'dc1', rack 'dc1-r1', host 'dc1-w1': labels.bad key! = 'bad key!': not a "
            "valid label key: [prefix/]name, name up to 63 of A-Z a-z 0-9 - _ . starting and ending "
            "alphanumeric [invalid-label]",
        ],
        id="invalid-label-key",
    ),
    pytest.param(
        _invalid_label_type,
        [
            "datacenter 'dc1', rack 'dc1-r1', host 'dc1-w1': labels.tier = 1: label values are "
            "strings, got an integer [invalid-label]",
        ],
        id="invalid-label-type",
    ),
    pytest.param(
        _host_outside_rack,
        [
            "datacenter 'dc1', rack 'dc1-r1', host 'dc1-w1': address = '198.18.0.70': outside the "
            "rack's node subnet 198.18.0.0/26 [host-outside-rack]",
        ],
        id="host-outside-rack",
    ),
    pytest.param(
        _reserved_address_network,
        [
            "datacenter 'dc1', rack 'dc1-r1', host 'dc1-w1': address = '198.18.0.0': is the network "
            "address of the rack's node subnet 198.18.0.0/26 [reserved-address]",
        ],
        id="reserved-address-network",
    ),
    pytest.param(
        _reserved_address_broadcast,
        [
            "datacenter 'dc1', rack 'dc1-r1', host 'dc1-w1': address = '198.18.0.63': is the "
            "broadcast address of the rack's node subnet 198.18.0.0/26 [reserved-address]",
        ],
        id="reserved-address-broadcast",
    ),
    pytest.param(
        _router_outside_network_tor,
        [
            "datacenter 'dc1', rack 'dc1-r1': tors[1].address = '198.18.0.100': ToR 'dc1-r1-tor2' is "
            "outside the rack's node subnet 198.18.0.0/26 [router-outside-network]",
        ],
        id="router-outside-network-tor",
    ),
    pytest.param(
        _router_outside_network_core,
        [
            "datacenter 'dc1': bgp.core_routers[0].address = '198.18.3.30': core router 'dc1-core1' "
            "is outside networks.fabric 198.18.1.0/27 [router-outside-network]",
        ],
        id="router-outside-network-core",
    ),
    pytest.param(
        _subnet_outside_network_rack,
        [
            "datacenter 'dc1', rack 'dc1-r3': node_subnet = '198.18.5.0/26': outside the "
            "datacenter's networks.nodes 198.18.0.0/24 [subnet-outside-network]",
        ],
        id="subnet-outside-network-rack",
    ),
    pytest.param(
        _subnet_outside_network_block,
        [
            "datacenter 'dc1', cluster 'dc1-k8s': pod_block_size = 20: a /20 pod block does not fit "
            "in pod_cidr 198.18.16.0/21 [subnet-outside-network]",
        ],
        id="subnet-outside-network-block",
    ),
    pytest.param(
        _subnet_overlap_racks,
        [
            "datacenter 'dc1', rack 'dc1-r3': node_subnet = '198.18.0.32/27': overlaps datacenter "
            "'dc1', rack 'dc1-r1' node_subnet 198.18.0.0/26 [subnet-overlap]",
        ],
        id="subnet-overlap-racks",
    ),
    pytest.param(
        _subnet_overlap_pods_services,
        [
            "datacenter 'dc1', cluster 'dc1-k8s': service_cidr = '198.18.16.0/24': overlaps "
            "datacenter 'dc1', cluster 'dc1-k8s' pod_cidr 198.18.16.0/21 [subnet-overlap]",
        ],
        id="subnet-overlap-pods-services",
    ),
    pytest.param(
        _subnet_overlap_across_datacenters,
        [
            "datacenter 'dc2', cluster 'dc2-k8s': pod_cidr = '198.18.16.0/21': overlaps datacenter "
            "'dc1', cluster 'dc1-k8s' pod_cidr 198.18.16.0/21 [subnet-overlap]",
        ],
        id="subnet-overlap-across-datacenters",
    ),
    pytest.param(
        _subnet_overlap_pods_nodes,
        [
            "datacenter 'dc1': networks.fabric = '198.18.1.0/27': overlaps datacenter 'dc1', cluster "
            "'dc1-k8s' pod_cidr 198.18.0.0/21 [subnet-overlap]",
            "datacenter 'dc1': networks.local_address_pool = '198.18.2.32/27': overlaps datacenter "
            "'dc1', cluster 'dc1-k8s' pod_cidr 198.18.0.0/21 [subnet-overlap]",
            "datacenter 'dc1': networks.nodes = '198.18.0.0/24': overlaps datacenter 'dc1', cluster "
            "'dc1-k8s' pod_cidr 198.18.0.0/21 [subnet-overlap]",
            "datacenter 'dc1': networks.vip_pool = '198.18.2.0/27': overlaps datacenter 'dc1', "
            "cluster 'dc1-k8s' pod_cidr 198.18.0.0/21 [subnet-overlap]",
        ],
        id="subnet-overlap-pods-nodes",
    ),
    pytest.param(
        _pod_block_too_small,
        [
            "datacenter 'dc1', cluster 'dc1-k8s': pod_block_size = 26: a /26 block holds 64 "
            "addresses, fewer than max_pods 65; use /25 or less [pod-block-too-small]",
        ],
        id="pod-block-too-small",
    ),
    pytest.param(
        _pool_exhausted,
        [
            "datacenter 'dc1', cluster 'dc1-k8s': pod_cidr = '198.18.16.0/24': no room for rack "
            "'dc1-r1' (3 nodes need a /23 with 50% headroom); the 2 racks need 768 addresses, "
            "pod_cidr holds 256: widen pod_cidr or lower pool_headroom_percent [pool-exhausted]",
        ],
        id="pool-exhausted",
    ),
    pytest.param(
        _service_cidr_size_big,
        [
            "datacenter 'dc1', cluster 'dc1-k8s': service_cidr = '10.0.0.0/11': Kubernetes accepts a "
            "service CIDR from a /12 to a /28 [service-cidr-size]",
        ],
        id="service-cidr-size-big",
    ),
    pytest.param(
        _service_cidr_size_small,
        [
            "datacenter 'dc1', cluster 'dc1-k8s': service_cidr = '198.18.8.0/29': Kubernetes accepts "
            "a service CIDR from a /12 to a /28 [service-cidr-size]",
        ],
        id="service-cidr-size-small",
    ),
    pytest.param(
        _local_address_pool_too_small,
        [
            "datacenter 'dc1': networks.local_address_pool = '198.18.2.32/27': holds 32 addresses; 2 "
            "directors x 32 local addresses (ranges aligned to 32) need 64 "
            "[local-address-pool-too-small]",
        ],
        id="local-address-pool-too-small",
    ),
    pytest.param(
        _fabric_exhausted,
        [
            "datacenter 'dc1': networks.fabric = '198.18.1.0/29': holds 3 /31 links besides the core "
            "router addresses; 4 ToRs x 1 core need 4 [fabric-exhausted]",
        ],
        id="fabric-exhausted",
    ),
    pytest.param(
        _templated_value,
        [
            "datacenter 'dc1', rack 'dc1-r1': node_subnet = '{{ rack1_subnet }}': the planner needs "
            "a literal value, not a Jinja expression [templated-value]",
        ],
        id="templated-value",
    ),
    pytest.param(
        _no_hosts_inventory,
        [
            "inventory: groups = ['all', 'ungrouped']: no host is in any role group (masters, "
            "etcd_events, minions, lvs, consul_servers) [no-hosts]",
        ],
        id="no-hosts-inventory",
    ),
    pytest.param(
        _no_hosts_datacenter,
        [
            "datacenter 'dc3': hosts = []: no host of any role group is in one of this datacenter's "
            "racks [no-hosts]",
        ],
        id="no-hosts-datacenter",
    ),
    pytest.param(
        _asn_scheme_ebgp,
        [
            "datacenter 'dc1', rack 'dc1-r1': tors[0].asn = 65111: ToR 'dc1-r1-tor1' has the rack's "
            "node_asn; in bgp.mode ebgp ToRs need an AS of their own (or use bgp.mode "
            "route_reflector) [asn-scheme]",
        ],
        id="asn-scheme-ebgp",
    ),
    pytest.param(
        _asn_scheme_route_reflector,
        [
            "datacenter 'dc1', rack 'dc1-r2': tors[1].asn = 65999: ToR 'dc1-r2-tor2' must share the "
            "rack's node_asn 65112 in bgp.mode route_reflector [asn-scheme]",
        ],
        id="asn-scheme-route-reflector",
    ),
    pytest.param(
        _tor_count,
        [
            "datacenter 'dc1', rack 'dc1-r1': tors = ['dc1-r1-tor1']: a rack needs exactly two ToR "
            "routers, found 1 [tor-count]",
        ],
        id="tor-count",
    ),
    pytest.param(
        _vip_outside_pool,
        [
            "datacenter 'dc1': lvs.vips[0].address = '198.18.3.10': VIP 'dc1-web' is outside "
            "networks.vip_pool 198.18.2.0/27 [vip-outside-pool]",
        ],
        id="vip-outside-pool",
    ),
    pytest.param(
        _vip_outside_pool_api,
        [
            "datacenter 'dc1', cluster 'dc1-k8s': api.vip = '198.18.3.1': VIP 'dc1-k8s-api' is "
            "outside networks.vip_pool 198.18.2.0/27 [vip-outside-pool]",
        ],
        id="vip-outside-pool-api",
    ),
    # cloud58_bgp_options: each bad key a problem of its own, of the kind any other field gets
    pytest.param(
        _bgp_options(maximum_path=4, hold=9),
        [
            "inventory: cloud58_bgp_options.maximum_path = 4: unknown BGP option; did you mean "
            "'maximum_paths'? [unknown-field]",
        ],
        id="unknown-field-bgp-option",
    ),
    pytest.param(
        _bgp_options(hold="9", bfd="yes"),
        [
            "inventory: cloud58_bgp_options.bfd = 'yes': expected true or false [wrong-type]",
            "inventory: cloud58_bgp_options.hold = '9': expected an integer [wrong-type]",
        ],
        id="wrong-type-bgp-option",
    ),
    pytest.param(
        _bgp_options_not_a_mapping,
        [
            "inventory: cloud58_bgp_options = ['hold: 9']: expected a mapping of BGP option to value, "
            "got a list [wrong-type]",
        ],
        id="wrong-type-bgp-options",
    ),
    pytest.param(
        _bgp_options(keepalive=4),
        ["inventory: cloud58_bgp_options.keepalive = 4: more than a third of hold 9 [out-of-range]"],
        id="out-of-range-bgp-keepalive",
    ),
    pytest.param(
        _bgp_options(maximum_paths=0),
        ["inventory: cloud58_bgp_options.maximum_paths = 0: outside 1..128 [out-of-range]"],
        id="out-of-range-bgp-option",
    ),
    pytest.param(
        _bgp_options(node_neighbors="all"),
        [
            "inventory: cloud58_bgp_options.node_neighbors = 'all': not one of per_node, listen_range "
            "[invalid-choice]",
        ],
        id="invalid-choice-bgp-option",
    ),
    pytest.param(
        _bgp_options(service_loadbalancer_ips=["198.18.2.16/28", "198.18.2.0/33"]),
        [
            "inventory: cloud58_bgp_options.service_loadbalancer_ips[1] = '198.18.2.0/33': not a CIDR "
            "[malformed-cidr]",
        ],
        id="malformed-cidr-bgp-option",
    ),
    pytest.param(
        _bgp_options(
            client_prefixes=[
                "203.0.113.0/24",
                "198.18.16.0/24",
                "0.0.0.0/0",
                "198.18.2.8/29",
                "2001:db8::/32",
            ]
        ),
        [
            "inventory: cloud58_bgp_options.client_prefixes[1] = '198.18.16.0/24': inside datacenter "
            "'dc1', cluster 'dc1-k8s' pod_cidr 198.18.16.0/21; clients behind the core routers are "
            "outside the datacenters [subnet-overlap]",
            "inventory: cloud58_bgp_options.client_prefixes[3] = '198.18.2.8/29': inside datacenter "
            "'dc1' networks.vip_pool 198.18.2.0/27; clients behind the core routers are outside the "
            "datacenters [subnet-overlap]",
            "inventory: cloud58_bgp_options.client_prefixes[4] = '2001:db8::/32': not an IPv4 prefix; the "
            "fabric's prefix filters are IPv4 [malformed-cidr]",
        ],
        id="client-prefix-inside-a-datacenter-or-ipv6",
    ),
    pytest.param(
        _bgp_options(fixed_ip_reservations={"dc1-k8z": {"legacy": ["198.18.16.5"]}}),
        [
            "inventory: cloud58_bgp_options.fixed_ip_reservations key = 'dc1-k8z': no such cluster in "
            "this inventory; did you mean 'dc1-k8s'? (known: dc1-k8s, dc2-k8s) [unknown-cluster]",
        ],
        id="unknown-cluster-bgp-reservation",
    ),
    pytest.param(
        _bgp_options(fixed_ip_reservations={"dc1-k8s": {"legacy": ["198.18.16.5", "198.18.30.0/30"]}}),
        [
            "datacenter 'dc1', cluster 'dc1-k8s': cloud58_bgp_options.fixed_ip_reservations.dc1-k8s.legacy = "
            "'198.18.30.0/30': in no pod pool of the cluster (198.18.16.0/23, 198.18.18.0/24) "
            "[reservation-outside-pool]",
        ],
        id="reservation-outside-pool",
    ),
    pytest.param(
        _bgp_options(
            fixed_ip_reservations={"dc1-k8s": {"Legacy_DB": "198.18.16.5", "web": ["198.18.16.1/24"]}}
        ),
        [
            "datacenter 'dc1', cluster 'dc1-k8s': cloud58_bgp_options.fixed_ip_reservations.dc1-k8s key = "
            "'Legacy_DB': names are lowercase DNS labels: a-z, 0-9 and '-', at most 63 characters "
            "[invalid-name]",
            "datacenter 'dc1', cluster 'dc1-k8s': cloud58_bgp_options.fixed_ip_reservations.dc1-k8s."
            "Legacy_DB = '198.18.16.5': expected a non-empty list of addresses or CIDRs [wrong-type]",
            "datacenter 'dc1', cluster 'dc1-k8s': cloud58_bgp_options.fixed_ip_reservations.dc1-k8s.web = "
            "'198.18.16.1/24': not an IPv4 address or CIDR (with no host bits set) [malformed-cidr]",
        ],
        id="reservation-name-shape-and-cidr",
    ),
    pytest.param(
        _bgp_options(calico_max_restart_time="{{ restart }}"),
        [
            "inventory: cloud58_bgp_options.calico_max_restart_time = '{{ restart }}': the planner needs a "
            "literal value, not a Jinja expression [templated-value]",
        ],
        id="templated-value-bgp-option",
    ),
]


@pytest.mark.parametrize(("mutate", "expected"), CASES)
def test_problem_messages(mutate, expected):
    data = base()
    changed = mutate(data)
    with pytest.raises(PlanError) as info:
        plan(data if changed is None else changed)
    assert [str(p) for p in info.value.problems] == expected


def test_every_kind_of_problem_has_a_case():
    kinds = set()
    for case in CASES:
        for text in case.values[1]:
            kinds.add(re.search(r"\[([a-z0-9-]+)\]$", text).group(1))
    assert kinds | KINDS_TESTED_ELSEWHERE == set(ERROR_KINDS)
    assert len(ERROR_KINDS) >= 30


def test_the_base_inventory_is_valid():
    result = plan(base())
    assert sorted(result["datacenters"]) == ["dc1", "dc2"]
    assert len(result["hosts"]) == 22


def test_all_problems_of_a_run_are_reported_together_sorted_by_place():
    data = base()
    h(data, "dc2-w1")["address"] = "198.19.0.70"
    rack(data, "dc1-r2")["tors"].pop()
    cl(data)["max_pods"] = 65
    with pytest.raises(PlanError) as info:
        plan(data)
    assert info.value.kinds() == ["host-outside-rack", "pod-block-too-small", "tor-count"]
    assert [p.where for p in info.value.problems] == [
        "datacenter 'dc1', cluster 'dc1-k8s'",
        "datacenter 'dc1', rack 'dc1-r2'",
        "datacenter 'dc2', rack 'dc2-r1', host 'dc2-w1'",
    ]
    lines = str(info.value).splitlines()
    assert lines[0] == "the inventory has 3 problems:"
    assert lines[1:] == [f"  - {p}" for p in info.value.problems]


def test_a_problem_exports_its_parts():
    data = base()
    h(data, "dc1-w1")["address"] = "198.18.0.70"
    with pytest.raises(PlanError) as info:
        plan(data)
    assert info.value.problems[0].as_dict() == {
        "kind": "host-outside-rack",
        "where": "datacenter 'dc1', rack 'dc1-r1', host 'dc1-w1'",
        "field": "address",
        "value": "'198.18.0.70'",
        "message": "outside the rack's node subnet 198.18.0.0/26",
        "text": "datacenter 'dc1', rack 'dc1-r1', host 'dc1-w1': address = '198.18.0.70': "
        "outside the rack's node subnet 198.18.0.0/26 [host-outside-rack]",
    }


def test_long_values_are_cut_in_messages():
    data = base()
    rack(data)["node_asm"] = list(range(100))
    with pytest.raises(PlanError) as info:
        plan(data)
    value = info.value.problems[0].value
    assert len(value) == 120
    assert value.endswith("...")
