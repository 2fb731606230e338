# -*- coding: utf-8 -*-
# Copyright: cloud58 platform team
# Apache License 2.0
"""The consul filters: thin adapters over module_utils/consul, one AnsibleFilterError per bad input."""

from __future__ import annotations

from pathlib import Path

import pytest
from ansible.errors import AnsibleFilterError

from ansible_collections.cloud58.platform.plugins.filter.consul import FilterModule
from ansible_collections.cloud58.platform.plugins.module_utils.consul import (
    DNS_RULES,
    agent_token,
    dns_token,
    gateway_token,
    node_config,
    prometheus_token,
    replication_token,
    sync_token,
)
from ansible_collections.cloud58.platform.plugins.module_utils.topology import build_plan, load_inventory

REPO = Path(__file__).resolve().parents[8]
FILTERS = FilterModule().filters()


@pytest.fixture(scope="module")
def plan():
    return build_plan(load_inventory(str(REPO / "inventories/lab"))).as_dict()


def test_filters_are_registered():
    assert sorted(FILTERS) == [
        "consul_agent_token",
        "consul_dns_token",
        "consul_gateway_token",
        "consul_node_config",
        "consul_problem",
        "consul_prometheus_token",
        "consul_replication_token",
        "consul_stale_agent_tokens",
        "consul_stale_sync_policies",
        "consul_sync_token",
        "consul_tls_names",
    ]


def test_the_lab_servers_and_an_agent(plan):
    lab2 = FILTERS["consul_node_config"](plan, "lab2-m1", {"log_level": "debug"}, "")
    assert lab2 == node_config(plan, "lab2-m1", {"log_level": "debug"})
    assert (lab2["server"], lab2["bootstrap_expect"], lab2["primary_datacenter"]) == (True, 3, "lab1")
    assert lab2["retry_join_wan"] == [plan["hosts"][h]["address"] for h in ("lab1-m1", "lab1-m2", "lab1-m3")]
    agent = FILTERS["consul_node_config"](plan, "lab1-w1")
    assert (agent["server"], agent["retry_join"]) == (
        False,
        [plan["hosts"][h]["address"] for h in ("lab1-m1", "lab1-m2", "lab1-m3")],
    )
    assert FILTERS["consul_tls_names"](plan, "lab2-m3") == ["server.lab2.consul", "localhost"]


def test_errors_are_ansible_filter_errors(plan):
    with pytest.raises(AnsibleFilterError) as caught:
        FILTERS["consul_node_config"](plan, "lab1-x")
    assert str(caught.value).startswith("consul_node_config: host 'lab1-x' is not in the plan")
    with pytest.raises(AnsibleFilterError) as caught:
        FILTERS["consul_tls_names"](plan, "lab1-x")
    assert str(caught.value) == "consul_tls_names: host 'lab1-x' is not in the plan (did you mean 'lab1-w2'?)"
    with pytest.raises(AnsibleFilterError) as caught:
        FILTERS["consul_problem"]("tls")
    assert str(caught.value) == "consul_problem: expected 'install' or 'secrets', got 'tls'"


def test_problem_dispatches_to_install_and_secrets():
    assert (
        FILTERS["consul_problem"]("install", version="1.14.11", url="http://m/consul", sha256="0" * 64) == ""
    )
    assert FILTERS["consul_problem"]("install", version="1.14.11", url="http://m/consul", sha256="x") == (
        "consul_sha256: expected 64 lowercase hex digits (sha256sum consul), got 'x'"
    )
    assert FILTERS["consul_problem"]("secrets", encrypt_key="x") == (
        "consul_encrypt_key: expected 32 bytes in base64 (consul keygen); the value is not shown"
    )


def test_agent_token_is_the_derivation_and_refuses_a_bad_token_without_showing_it():
    token = "6f1b8ad4-5c4e-4b1a-9d0e-3a1f2b3c4d5e"
    assert FILTERS["consul_agent_token"](token, "lab1", "lab1-w1") == agent_token(token, "lab1", "lab1-w1")
    with pytest.raises(AnsibleFilterError) as caught:
        FILTERS["consul_agent_token"]("hunter2", "lab1", "lab1-w1")
    assert str(caught.value) == (
        "consul_agent_token: consul agent token: the management token is not a UUID; the value is not shown"
    )


def test_dns_token_carries_its_policy():
    token = "6f1b8ad4-5c4e-4b1a-9d0e-3a1f2b3c4d5e"
    assert FILTERS["consul_dns_token"](token) == {
        **dns_token(token),
        "Policy": "cloud58-dns",
        "Rules": DNS_RULES,
    }
    with pytest.raises(AnsibleFilterError) as caught:
        FILTERS["consul_dns_token"]("")
    assert (
        str(caught.value)
        == "consul_dns_token: consul dns token: the management token is not a UUID; the value is not shown"
    )


def test_prometheus_token_carries_its_policy():
    token = "6f1b8ad4-5c4e-4b1a-9d0e-3a1f2b3c4d5e"
    assert FILTERS["consul_prometheus_token"](token) == {
        **prometheus_token(token),
        "Policy": "cloud58-prometheus",
        "Rules": 'agent_prefix "" { policy = "read" }\n',
    }
    with pytest.raises(AnsibleFilterError) as caught:
        FILTERS["consul_prometheus_token"]("x")
    assert str(caught.value) == (
        "consul_prometheus_token: consul prometheus token: the management token is not a UUID; "
        "the value is not shown"
    )


def test_sync_token_is_the_clusters():
    token = "6f1b8ad4-5c4e-4b1a-9d0e-3a1f2b3c4d5e"
    assert FILTERS["consul_sync_token"](token, "lab1-k8s") == sync_token(token, "lab1-k8s")
    assert FILTERS["consul_sync_token"](token, "lab1-k8s")["Policy"] == "cloud58-consul-sync-lab1-k8s"
    with pytest.raises(AnsibleFilterError) as caught:
        FILTERS["consul_sync_token"](token, "")
    assert str(caught.value) == (
        "consul_sync_token: consul sync token: cluster: '' is not a DNS label (a-z, 0-9, '-', at most 63)"
    )


def test_sync_token_with_a_datacenter_carries_the_policy_description():
    token = "6f1b8ad4-5c4e-4b1a-9d0e-3a1f2b3c4d5e"
    assert FILTERS["consul_sync_token"](token, "lab1-k8s", "lab1") == {
        **sync_token(token, "lab1-k8s"),
        "PolicyDescription": "cloud58-consul-sync of cluster lab1-k8s in datacenter lab1: its node "
        "k8s-lab1-k8s and services (role cloud58.platform.consul)",
    }


def _policy(name, description, ident="0"):
    return {"ID": ident, "Name": name, "Description": description, "Datacenters": None}


def _recorded(cluster, datacenter):
    return (
        f"cloud58-consul-sync of cluster {cluster} in datacenter {datacenter}: its node k8s-{cluster} "
        "and services (role cloud58.platform.consul)"
    )


def test_stale_sync_policies_are_those_of_this_plans_datacenters_whose_cluster_left(plan):
    policies = [
        _policy("global-management", "Builtin Policy", "00000000-0000-0000-0000-000000000001"),
        _policy("cloud58-consul-sync-lab1-k8s", _recorded("lab1-k8s", "lab1"), "a1"),  # in the plan
        _policy("cloud58-consul-sync-lab1-old", _recorded("lab1-old", "lab1"), "a2"),  # left the plan
        _policy("cloud58-consul-sync-lab2-gone", _recorded("lab2-gone", "lab2"), "a3"),  # left the plan
        _policy("cloud58-consul-sync-bj1-k8s", _recorded("bj1-k8s", "bj1"), "a4"),  # another inventory's
        # written before the datacenter was recorded: never touched
        _policy(
            "cloud58-consul-sync-lab1-older",
            "cloud58-consul-sync of cluster lab1-older: its node k8s-lab1-older and services",
            "a5",
        ),
        # a description that names another cluster than the policy: not ours
        _policy("cloud58-consul-sync-lab1-x", _recorded("lab1-y", "lab1"), "a6"),
        _policy("cloud58-dns", "DNS lookups of cloud58 (role cloud58.platform.consul)", "a7"),
    ]
    assert FILTERS["consul_stale_sync_policies"](policies, plan) == [
        {"ID": "a2", "Name": "cloud58-consul-sync-lab1-old", "cluster": "lab1-old", "datacenter": "lab1"},
        {"ID": "a3", "Name": "cloud58-consul-sync-lab2-gone", "cluster": "lab2-gone", "datacenter": "lab2"},
    ]


def test_stale_sync_policies_refuse_an_answer_that_is_not_a_list(plan):
    with pytest.raises(AnsibleFilterError) as caught:
        FILTERS["consul_stale_sync_policies"]({"ID": "x"}, plan)
    assert str(caught.value) == (
        "consul_stale_sync_policies: stale sync policies: Consul's policy list is not a list: dict"
    )


MANAGEMENT = "6f1b8ad4-5c4e-4b1a-9d0e-3a1f2b3c4d5e"


def _agent(node: str, datacenter: str, description: str | None = None, accessor: str | None = None) -> dict:
    """A token of /v1/acl/tokens as the consul role creates a node's agent token."""
    return {
        "AccessorID": accessor or agent_token(MANAGEMENT, datacenter, node)["AccessorID"],
        "Description": f"cloud58 agent token of {node}" if description is None else description,
        "NodeIdentities": [{"NodeName": node, "Datacenter": datacenter}],
    }


def test_the_described_agent_token_carries_the_roles_description():
    assert FILTERS["consul_agent_token"](MANAGEMENT, "lab1", "lab1-w1", described=True) == {
        **agent_token(MANAGEMENT, "lab1", "lab1-w1"),
        "Description": "cloud58 agent token of lab1-w1",
    }


def test_stale_agent_tokens_are_those_of_this_plans_datacenters_whose_host_left(plan):
    tokens = [
        {"AccessorID": "00000000-0000-0000-0000-000000000002", "Description": "Anonymous Token"},
        _agent("lab1-w1", "lab1"),  # in the plan
        _agent("lab2-m1", "lab2"),  # in the plan
        _agent("lab1-w9", "lab1"),  # left the plan
        _agent("lab2-w7", "lab2"),  # left the plan
        _agent("bj1-w1", "bj1"),  # another inventory's datacenter
        _agent("lab1-w8", "lab1", description="made by hand for lab1-w8"),
        _agent("lab1-w6", "lab1", accessor="0f1b8ad4-5c4e-4b1a-9d0e-3a1f2b3c4d5e"),  # not derived
        _agent("lab1-w5", "lab1", description="cloud58 agent token of lab1-w4"),  # names another node
        {**_agent("lab1-w3", "lab1"), "NodeIdentities": []},
        # lab1-w1's name in lab2: no host of lab2
        _agent("lab1-w1", "lab2"),
    ]
    assert FILTERS["consul_stale_agent_tokens"](tokens, plan, MANAGEMENT) == [
        {
            "AccessorID": agent_token(MANAGEMENT, "lab1", "lab1-w9")["AccessorID"],
            "node": "lab1-w9",
            "datacenter": "lab1",
        },
        {
            "AccessorID": agent_token(MANAGEMENT, "lab2", "lab1-w1")["AccessorID"],
            "node": "lab1-w1",
            "datacenter": "lab2",
        },
        {
            "AccessorID": agent_token(MANAGEMENT, "lab2", "lab2-w7")["AccessorID"],
            "node": "lab2-w7",
            "datacenter": "lab2",
        },
    ]


@pytest.mark.parametrize(
    ("tokens", "message"),
    [
        (
            {"AccessorID": "x"},
            "consul_stale_agent_tokens: stale agent tokens: Consul's token list is not a list: dict",
        ),
        (
            [_agent("lab1-w9", "lab1")],
            "consul_stale_agent_tokens: consul agent token: the management token is not a UUID; "
            "the value is not shown",
        ),
    ],
    ids=["not a list", "bad management token"],
)
def test_stale_agent_tokens_refuse_bad_input(plan, tokens, message):
    management = MANAGEMENT if isinstance(tokens, dict) else "not-a-uuid"
    with pytest.raises(AnsibleFilterError) as caught:
        FILTERS["consul_stale_agent_tokens"](tokens, plan, management)
    assert str(caught.value) == message


def test_replication_token_carries_its_policy():
    token = "6f1b8ad4-5c4e-4b1a-9d0e-3a1f2b3c4d5e"
    assert FILTERS["consul_replication_token"](token) == {
        **replication_token(token),
        "Policy": "cloud58-replication",
        "Rules": (
            'acl = "write"\noperator = "write"\nservice_prefix "" { policy = "read" intentions = "read" }\n'
        ),
    }
    with pytest.raises(AnsibleFilterError) as caught:
        FILTERS["consul_replication_token"](None)
    assert str(caught.value) == (
        "consul_replication_token: consul replication token: the management token is not a UUID; "
        "the value is not shown"
    )


def test_gateway_token_carries_its_policy():
    token = "6f1b8ad4-5c4e-4b1a-9d0e-3a1f2b3c4d5e"
    value = FILTERS["consul_gateway_token"](token)
    assert value == {
        **gateway_token(token),
        "Policy": "cloud58-gateway-sync",
        "Rules": 'service_prefix "" { policy = "read" }\nnode_prefix "" { policy = "read" }\n',
    }
    # its own IDs, none of another derived token's
    assert value["SecretID"] not in (dns_token(token)["SecretID"], prometheus_token(token)["SecretID"])
    with pytest.raises(AnsibleFilterError) as caught:
        FILTERS["consul_gateway_token"]("x")
    assert str(caught.value) == (
        "consul_gateway_token: consul gateway token: the management token is not a UUID; "
        "the value is not shown"
    )
