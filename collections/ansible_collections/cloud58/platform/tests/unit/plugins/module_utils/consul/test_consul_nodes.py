"""A host's Consul configuration from the plan (module_utils/consul/nodes.py, pure): a server
with the WAN join of the other datacenters, a client agent of its datacenter, every
datacenter's server count checked whichever host asks, and the role's install variables and
secrets checked naming the variable (never a secret's value)."""

from __future__ import annotations

import base64
import copy
import uuid

import pytest

from ansible_collections.cloud58.platform.plugins.module_utils.consul import (
    DNS_POLICY,
    DNS_RULES,
    GATEWAY_POLICY,
    GATEWAY_RULES,
    PROMETHEUS_POLICY,
    PROMETHEUS_RULES,
    REPLICATION_POLICY,
    REPLICATION_RULES,
    ConsulError,
    agent_token,
    datacenter_servers,
    dns_token,
    gateway_token,
    install_problem,
    node_config,
    prometheus_token,
    replication_token,
    secrets_problem,
    server_config,
    sync_token,
    tls_names,
)


def _host(dc, address, *roles):
    return {"datacenter": dc, "address": address, "roles": list(roles)}


PLAN = {
    "hosts": {
        "bj1-c1": _host("bj1", "10.1.0.11", "consul_server"),
        "bj1-c2": _host("bj1", "10.1.0.12", "master", "consul_server"),
        "bj1-c3": _host("bj1", "10.1.0.13", "consul_server"),
        "bj1-w1": _host("bj1", "10.1.0.21", "minion"),
        "sh1-c1": _host("sh1", "10.2.0.11", "consul_server"),
        "sh1-c2": _host("sh1", "10.2.0.12", "consul_server"),
        "sh1-c3": _host("sh1", "10.2.0.13", "consul_server"),
        "sh1-w1": _host("sh1", "10.2.0.21", "minion"),
        "gz1-w1": _host("gz1", "10.3.0.21", "minion"),
    }
}
KEY = base64.b64encode(bytes(range(32))).decode()
TOKEN = "6f1b8ad4-5c4e-4b1a-9d0e-3a1f2b3c4d5e"
PEM_CERT = "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n"
PEM_KEY = "-----BEGIN PRIVATE KEY-----\nMIIE\n-----END PRIVATE KEY-----\n"
SHA = "a" * 64


def test_datacenter_servers_are_the_hosts_with_the_server_role():
    assert datacenter_servers(PLAN, "sh1") == {
        "sh1-c1": "10.2.0.11",
        "sh1-c2": "10.2.0.12",
        "sh1-c3": "10.2.0.13",
    }
    assert datacenter_servers(PLAN, "gz1") == {}


def test_a_server_is_the_server_config_plus_the_wan_join_of_the_other_datacenters():
    servers = datacenter_servers(PLAN, "sh1")
    assert node_config(PLAN, "sh1-c2") == {
        **server_config("sh1-c2", servers, "sh1"),
        "primary_datacenter": "bj1",
        "retry_join_wan": ["10.1.0.11", "10.1.0.12", "10.1.0.13"],
        # a secondary datacenter's server replicates the primary's tokens
        "acl": {
            "enabled": True,
            "default_policy": "deny",
            "enable_token_persistence": False,
            "enable_token_replication": True,
        },
    }
    primary = node_config(PLAN, "bj1-c1")
    assert primary["retry_join_wan"] == ["10.2.0.11", "10.2.0.12", "10.2.0.13"]
    assert primary["acl"] == {"enabled": True, "default_policy": "deny", "enable_token_persistence": False}
    # with sh1 the primary, the roles swap; an agent never replicates
    assert "enable_token_replication" not in node_config(PLAN, "sh1-c2", primary_datacenter="sh1")["acl"]
    assert node_config(PLAN, "bj1-c1", primary_datacenter="sh1")["acl"]["enable_token_replication"] is True
    assert "enable_token_replication" not in node_config(PLAN, "sh1-w1")["acl"]


def test_an_agent_exactly():
    assert node_config(PLAN, "bj1-w1", {"domain": "cloud58", "tls_dir": "/etc/c/tls/"}) == {
        "node_name": "bj1-w1",
        "datacenter": "bj1",
        "domain": "cloud58",
        "primary_datacenter": "bj1",
        "server": False,
        "data_dir": "/var/lib/consul",
        "bind_addr": "10.1.0.21",
        "advertise_addr": "10.1.0.21",
        "client_addr": "127.0.0.1",
        "retry_join": ["10.1.0.11", "10.1.0.12", "10.1.0.13"],
        "addresses": {"https": "0.0.0.0"},
        "ports": {"http": -1, "https": 8501, "dns": 8600, "grpc": -1, "grpc_tls": -1},
        "encrypt_verify_incoming": True,
        "encrypt_verify_outgoing": True,
        "tls": {
            "defaults": {
                "ca_file": "/etc/c/tls/ca.crt",
                "cert_file": "/etc/c/tls/agent.crt",
                "key_file": "/etc/c/tls/agent.key",
                "verify_incoming": True,
                "verify_outgoing": True,
            },
            "internal_rpc": {"verify_server_hostname": True},
        },
        "acl": {"enabled": True, "default_policy": "deny", "enable_token_persistence": False},
        "telemetry": {"prometheus_retention_time": "60s", "disable_hostname": True},
        "disable_update_check": True,
        "log_level": "info",
    }


def test_primary_datacenter_given_and_the_same_input_gives_the_same_config():
    assert node_config(PLAN, "bj1-c3", primary_datacenter="sh1")["primary_datacenter"] == "sh1"
    assert node_config(copy.deepcopy(PLAN), "sh1-w1") == node_config(PLAN, "sh1-w1")


def test_tls_names():
    assert tls_names(PLAN, "bj1-c2") == ["server.bj1.consul", "localhost"]
    assert tls_names(PLAN, "sh1-w1", "cloud58") == ["client.sh1.cloud58", "localhost"]


def _without_server(name):
    plan = copy.deepcopy(PLAN)
    plan["hosts"][name]["roles"].remove("consul_server")
    return plan


def _with_server(name, dc, address):
    plan = copy.deepcopy(PLAN)
    plan["hosts"][name] = _host(dc, address, "consul_server")
    return plan


@pytest.mark.parametrize(
    ("plan", "host", "primary", "message"),
    [
        pytest.param(
            _without_server("sh1-c3"),
            "bj1-w1",
            None,
            "datacenter 'sh1': 2 consul servers (sh1-c1, sh1-c2); expected 3 or 5 "
            "(an even count tolerates no more failures than the odd count below it)",
            id="two-servers-in-another-datacenter",
        ),
        pytest.param(
            _with_server("bj1-c4", "bj1", "10.1.0.14"),
            "bj1-c1",
            None,
            "datacenter 'bj1': 4 consul servers (bj1-c1, bj1-c2, bj1-c3, bj1-c4); expected 3 or 5 "
            "(an even count tolerates no more failures than the odd count below it)",
            id="four-servers",
        ),
        pytest.param(
            PLAN,
            "gz1-w1",
            None,
            "host 'gz1-w1': datacenter 'gz1' has no consul servers in the plan",
            id="no-servers",
        ),
        pytest.param(
            PLAN, "bj1-w9", None, "host 'bj1-w9' is not in the plan (did you mean 'bj1-w1'?)", id="unknown"
        ),
        pytest.param(
            PLAN,
            "bj1-w1",
            "gz1",
            "consul primary datacenter 'gz1' has no consul servers; datacenters with servers: bj1, sh1",
            id="primary-without-servers",
        ),
        pytest.param(
            _with_server("sh1-c3", "sh1", "10.1.0.11"),
            "bj1-w1",
            None,
            "datacenter 'sh1': consul server 'sh1-c3': address 10.1.0.11 is taken by 'bj1-c1' "
            "of datacenter 'bj1'",
            id="address-twice",
        ),
        pytest.param(
            "lab1", "bj1-w1", None, "expected a topology plan with a hosts mapping, got str", id="no-plan"
        ),
    ],
)
def test_bad_plans_are_refused_naming_datacenter_and_hosts(plan, host, primary, message):
    with pytest.raises(ConsulError) as caught:
        node_config(plan, host, primary_datacenter=primary)
    assert str(caught.value) == message


@pytest.mark.parametrize(
    ("secrets", "message"),
    [
        pytest.param((KEY, TOKEN, {"consul_tls_cert": PEM_CERT, "consul_tls_key": PEM_KEY}), "", id="good"),
        pytest.param((KEY, None, None), "", id="agent-without-token"),
        pytest.param(
            ("c2VjcmV0", None, None),
            "consul_encrypt_key: expected 32 bytes in base64 (consul keygen); the value is not shown",
            id="key-too-short",
        ),
        pytest.param(
            ("not base64 at all!", None, None),
            "consul_encrypt_key: expected 32 bytes in base64 (consul keygen); the value is not shown",
            id="key-not-base64",
        ),
        pytest.param(
            (None, None, None),
            "consul_encrypt_key: expected 32 bytes in base64 (consul keygen); the value is not shown",
            id="key-missing",
        ),
        pytest.param(
            (KEY, "", None),
            "consul_acl_management_token: expected a UUID (uuidgen); the value is not shown",
            id="server-token-empty",
        ),
        pytest.param(
            (KEY, None, {"consul_tls_key": PEM_CERT}),
            "consul_tls_key: expected a PEM private key; the value is not shown",
            id="certificate-as-key",
        ),
        pytest.param(
            (KEY, None, {"consul_tls_ca_cert": "ca.crt"}),
            "consul_tls_ca_cert: expected a PEM certificate; the value is not shown",
            id="file-name-as-ca",
        ),
    ],
)
def test_secrets_are_checked_naming_the_variable_never_the_value(secrets, message):
    problem = secrets_problem(*secrets)
    assert problem == message
    for value in (secrets[0], secrets[1]):
        if value and message:
            assert value not in problem


@pytest.mark.parametrize(
    ("version", "url", "sha256", "message"),
    [
        pytest.param("1.14.11", "https://mirror.example/consul/1.14.11/consul", SHA, "", id="good"),
        pytest.param(
            "1.14",
            "http://m/consul",
            SHA,
            "consul_version: expected a version like 1.14.11, got '1.14'",
            id="short",
        ),
        pytest.param(
            "1.16.4",
            "http://m/consul",
            SHA,
            "consul_version: 1.16.4 is not a 1.14.x release; later Consul releases are under the "
            "Business Source Licence (upstream/consul/README.md)",
            id="busl",
        ),
        pytest.param(
            "1.14.11",
            "ftp://m/consul",
            SHA,
            "consul_url: expected the http(s) URL of the consul binary on your mirror, got 'ftp://m/consul'",
            id="ftp",
        ),
        pytest.param(
            "1.14.11",
            "http://m/consul",
            "A" * 64,
            f"consul_sha256: expected 64 lowercase hex digits (sha256sum consul), got '{'A' * 64}'",
            id="uppercase",
        ),
        pytest.param(
            "1.14.11",
            "http://m/consul",
            "",
            "consul_sha256: expected 64 lowercase hex digits (sha256sum consul), got ''",
            id="empty",
        ),
    ],
)
def test_install_variables_are_checked_naming_variable_and_value(version, url, sha256, message):
    assert install_problem(version, url, sha256) == message


def test_agent_tokens_are_uuids_derived_per_node_and_management_token():
    token = agent_token(TOKEN, "bj1", "bj1-w1")
    assert sorted(token) == ["AccessorID", "SecretID"]
    assert all(str(uuid.UUID(v)) == v and uuid.UUID(v).version == 4 for v in token.values())
    assert token == agent_token(TOKEN, "bj1", "bj1-w1")
    others = [
        agent_token(TOKEN, "bj1", "bj1-c1"),
        agent_token(TOKEN, "sh1", "bj1-w1"),
        agent_token("0f1b8ad4-5c4e-4b1a-9d0e-3a1f2b3c4d5e", "bj1", "bj1-w1"),
    ]
    values = {token["AccessorID"], token["SecretID"]} | {v for o in others for v in o.values()}
    assert len(values) == 8
    assert TOKEN not in values
    with pytest.raises(ConsulError) as caught:
        agent_token("not-a-uuid", "bj1", "bj1-w1")
    assert (
        str(caught.value) == "consul agent token: the management token is not a UUID; the value is not shown"
    )


# The IDs of TOKEN's named tokens as the role has created them since each was introduced: the
# derivation must not change, or a new release would create a second token of each kind in
# every running Consul and leave agents and programs holding the old secrets.
NAMED = {
    dns_token: ("fef41987-01b6-46ad-a3b7-e2ff06705501", "1426bcee-f665-4408-93e0-9bbda0d81342"),
    prometheus_token: ("cd52154c-ab15-4a0a-bd2d-0020b0c73c60", "6a40e90d-a126-4c28-9a1e-ab80b9115491"),
    gateway_token: ("24fe3968-cac4-4c30-b68b-81f94132a584", "1ee47f30-9bc5-4251-aadb-dfc069d277e8"),
    replication_token: ("8fb289fc-b8fa-4edc-a8af-5993af32d873", "2dc65fc6-cb44-4d90-a990-0d9b0a728ce2"),
}


@pytest.mark.parametrize("derive", list(NAMED), ids=lambda f: f.__name__)
def test_the_named_tokens_keep_their_ids(derive):
    accessor, secret = NAMED[derive]
    assert derive(TOKEN) == {"AccessorID": accessor, "SecretID": secret}


@pytest.mark.parametrize(
    ("derive", "bad", "named", "expected"),
    [
        pytest.param(
            dns_token,
            None,
            (DNS_POLICY, DNS_RULES),
            (
                "cloud58-dns",
                'node_prefix "" { policy = "read" }\n'
                'service_prefix "" { policy = "read" }\n'
                'query_prefix "" { policy = "read" }\n',
            ),
            id="dns",
        ),
        pytest.param(
            prometheus_token,
            "",
            (PROMETHEUS_POLICY, PROMETHEUS_RULES),
            ("cloud58-prometheus", 'agent_prefix "" { policy = "read" }\n'),
            id="prometheus",
        ),
        pytest.param(
            gateway_token,
            "x",
            (GATEWAY_POLICY, GATEWAY_RULES),
            (
                "cloud58-gateway-sync",
                'service_prefix "" { policy = "read" }\nnode_prefix "" { policy = "read" }\n',
            ),
            id="gateway",
        ),
        pytest.param(
            replication_token,
            "not-a-uuid",
            (REPLICATION_POLICY, REPLICATION_RULES),
            (
                "cloud58-replication",
                'acl = "write"\noperator = "write"\n'
                'service_prefix "" { policy = "read" intentions = "read" }\n',
            ),
            id="replication",
        ),
    ],
)
def test_each_named_token_is_derived_apart_with_its_policy(derive, bad, named, expected):
    token = derive(TOKEN)
    assert token == derive(TOKEN)
    assert all(str(uuid.UUID(v)) == v for v in token.values())
    others = [v for other in NAMED if other is not derive for v in other(TOKEN).values()]
    assert set(token.values()).isdisjoint([*others, *agent_token(TOKEN, "sh1", "sh1-c1").values()])
    assert token != derive("0f1b8ad4-5c4e-4b1a-9d0e-3a1f2b3c4d5e")
    assert named == expected
    kind = derive.__name__.removesuffix("_token")
    with pytest.raises(ConsulError) as caught:
        derive(bad)
    assert (
        str(caught.value)
        == f"consul {kind} token: the management token is not a UUID; the value is not shown"
    )


def test_the_sync_token_of_a_cluster_writes_its_node_and_services_only():
    token = sync_token(TOKEN, "bj1-k8s")
    assert token == sync_token(TOKEN, "bj1-k8s")
    assert all(str(uuid.UUID(token[k])) == token[k] for k in ("AccessorID", "SecretID"))
    assert token["Policy"] == "cloud58-consul-sync-bj1-k8s"
    assert token["Rules"] == (
        'node "k8s-bj1-k8s" { policy = "write" }\nservice_prefix "" { policy = "write" }\n'
    )
    other = sync_token(TOKEN, "sh1-k8s")
    ids = [token["AccessorID"], token["SecretID"]]
    assert set(ids).isdisjoint([other["AccessorID"], other["SecretID"]])
    assert set(ids).isdisjoint([*dns_token(TOKEN).values(), *prometheus_token(TOKEN).values()])
    assert sync_token("0f1b8ad4-5c4e-4b1a-9d0e-3a1f2b3c4d5e", "bj1-k8s")["SecretID"] != token["SecretID"]
    with pytest.raises(ConsulError) as caught:
        sync_token("", "bj1-k8s")
    assert str(caught.value) == (
        "consul sync token: the management token is not a UUID; the value is not shown"
    )
    with pytest.raises(ConsulError) as caught:
        sync_token(TOKEN, "BJ1 k8s")
    assert str(caught.value) == (
        "consul sync token: cluster: 'BJ1 k8s' is not a DNS label (a-z, 0-9, '-', at most 63)"
    )
