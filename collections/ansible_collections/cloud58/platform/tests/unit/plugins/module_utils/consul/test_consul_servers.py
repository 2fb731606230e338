"""The configuration of a Consul server (module_utils/consul/servers.py, pure): the exact dict,
determinism, and bad input refused naming the datacenter, host or setting. Three real servers
run these configurations in tests/network/test_consul_cluster.py."""

from __future__ import annotations

import pytest

from ansible_collections.cloud58.platform.plugins.module_utils.consul import (
    DEFAULT_SETTINGS,
    SERVER_COUNTS,
    ConsulError,
    server_config,
)

SERVERS = {"bj1-c2": "10.1.0.12", "bj1-c1": "10.1.0.11", "bj1-c3": "10.1.0.13"}


def test_a_server_of_three_exactly():
    assert server_config("bj1-c2", SERVERS, "bj1") == {
        "node_name": "bj1-c2",
        "datacenter": "bj1",
        "domain": "consul",
        "server": True,
        "bootstrap_expect": 3,
        "data_dir": "/var/lib/consul",
        "bind_addr": "10.1.0.12",
        "advertise_addr": "10.1.0.12",
        "client_addr": "127.0.0.1",
        "retry_join": ["10.1.0.11", "10.1.0.13"],
        "addresses": {"https": "0.0.0.0"},
        "ports": {"http": -1, "https": 8501, "dns": 8600, "grpc": -1, "grpc_tls": -1},
        "encrypt_verify_incoming": True,
        "encrypt_verify_outgoing": True,
        "tls": {
            "defaults": {
                "ca_file": "/etc/consul.d/tls/ca.crt",
                "cert_file": "/etc/consul.d/tls/server.crt",
                "key_file": "/etc/consul.d/tls/server.key",
                "verify_incoming": True,
                "verify_outgoing": True,
            },
            "internal_rpc": {"verify_server_hostname": True},
        },
        "acl": {"enabled": True, "default_policy": "deny", "enable_token_persistence": False},
        "performance": {"raft_multiplier": 1},
        "telemetry": {"prometheus_retention_time": "60s", "disable_hostname": True},
        "disable_update_check": True,
        "log_level": "info",
    }


def test_settings_reach_their_fields():
    settings = {
        "domain": "c58.example",
        "data_dir": "/srv/consul",
        "tls_dir": "/srv/tls/",
        "client_addr": "10.1.0.11",
        "https_address": "unix:///run/consul/https.sock",
        "https_port": 9501,
        "dns_port": 53,
        "raft_multiplier": 2,
        "log_level": "debug",
        "prometheus_retention_time": "5m",
    }
    config = server_config("bj1-c1", SERVERS, "bj1", settings)
    assert {
        key: config[key] for key in ("domain", "data_dir", "client_addr", "addresses", "ports", "performance")
    } == {
        "domain": "c58.example",
        "data_dir": "/srv/consul",
        "client_addr": "10.1.0.11",
        "addresses": {"https": "unix:///run/consul/https.sock"},
        "ports": {"http": -1, "https": 9501, "dns": 53, "grpc": -1, "grpc_tls": -1},
        "performance": {"raft_multiplier": 2},
    }
    assert config["tls"]["defaults"]["key_file"] == "/srv/tls/server.key"
    assert config["log_level"] == "debug"
    assert config["telemetry"] == {"prometheus_retention_time": "5m", "disable_hostname": True}
    assert config["retry_join"] == ["10.1.0.12", "10.1.0.13"]


def test_five_servers_and_the_same_input_gives_the_same_config():
    five = {**SERVERS, "bj1-c4": "10.1.0.14", "bj1-c5": "10.1.0.15"}
    config = server_config("bj1-c5", five, "bj1")
    assert (config["bootstrap_expect"], config["retry_join"]) == (
        5,
        ["10.1.0.11", "10.1.0.12", "10.1.0.13", "10.1.0.14"],
    )
    assert server_config("bj1-c5", dict(reversed(list(five.items()))), "bj1") == config
    assert SERVER_COUNTS == (3, 5)


def test_the_gossip_key_and_tokens_are_never_in_the_config():
    config = server_config("bj1-c1", SERVERS, "bj1")
    assert [key for key in config if key in ("encrypt", "primary_datacenter")] == []
    assert "tokens" not in config["acl"]


@pytest.mark.parametrize(
    ("name", "servers", "datacenter", "settings", "message"),
    [
        pytest.param(
            "bj1-c1",
            {"bj1-c1": "10.1.0.11", "bj1-c2": "10.1.0.12"},
            "bj1",
            None,
            "datacenter 'bj1': 2 consul servers (bj1-c1, bj1-c2); expected 3 or 5 "
            "(an even count tolerates no more failures than the odd count below it)",
            id="two-servers",
        ),
        pytest.param(
            "bj1-c1",
            {**SERVERS, "bj1-c4": "10.1.0.14"},
            "bj1",
            None,
            "datacenter 'bj1': 4 consul servers (bj1-c1, bj1-c2, bj1-c3, bj1-c4); expected 3 or 5 "
            "(an even count tolerates no more failures than the odd count below it)",
            id="four-servers",
        ),
        pytest.param(
            "bj1-c1",
            {},
            "bj1",
            None,
            "datacenter 'bj1': 0 consul servers (none); expected 3 or 5 "
            "(an even count tolerates no more failures than the odd count below it)",
            id="no-servers",
        ),
        pytest.param(
            "bj1-c9",
            SERVERS,
            "bj1",
            None,
            "host 'bj1-c9' is not a consul server of datacenter 'bj1' (did you mean 'bj1-c3'?); "
            "its servers: bj1-c1, bj1-c2, bj1-c3",
            id="not-a-server",
        ),
        pytest.param(
            "bj1-c1",
            {**SERVERS, "bj1-c3": "10.1.0.11"},
            "bj1",
            None,
            "datacenter 'bj1': consul server 'bj1-c3': address 10.1.0.11 is taken by 'bj1-c1'",
            id="address-twice",
        ),
        pytest.param(
            "bj1-c1",
            {**SERVERS, "bj1-c2": "10.1.0.300"},
            "bj1",
            None,
            "datacenter 'bj1': consul server 'bj1-c2': address '10.1.0.300' is not an IPv4 address",
            id="bad-address",
        ),
        pytest.param(
            "bj1-c1",
            {**SERVERS, "BJ1_c4": "10.1.0.14"},
            "bj1",
            None,
            "datacenter 'bj1': consul server 'BJ1_c4': the name is not a DNS label",
            id="bad-host-name",
        ),
        pytest.param(
            "bj1-c1",
            SERVERS,
            "BJ 1",
            None,
            "consul datacenter 'BJ 1': expected a DNS label like bj1",
            id="bad-datacenter",
        ),
        pytest.param(
            "bj1-c1",
            SERVERS,
            "bj1",
            {"raft_multipler": 1},
            "consul settings: unknown setting 'raft_multipler' (did you mean 'raft_multiplier'?)",
            id="unknown-setting",
        ),
        pytest.param(
            "bj1-c1",
            SERVERS,
            "bj1",
            {"https_address": "unix://run/https.sock"},
            "consul settings: https_address: expected an IPv4 address or unix:///absolute/path, "
            "got 'unix://run/https.sock'",
            id="relative-socket",
        ),
        pytest.param(
            "bj1-c1",
            SERVERS,
            "bj1",
            {"dns_port": 0},
            "consul settings: dns_port: expected a port 1-65535, got 0",
            id="bad-port",
        ),
        pytest.param(
            "bj1-c1",
            SERVERS,
            "bj1",
            {"raft_multiplier": True},
            "consul settings: raft_multiplier: expected an integer 1-10, got True",
            id="bool-is-not-an-integer",
        ),
        pytest.param(
            "bj1-c1",
            SERVERS,
            "bj1",
            {"log_level": "verbose"},
            "consul settings: log_level: expected one of trace, debug, info, warn, error, got 'verbose'",
            id="bad-log-level",
        ),
        pytest.param(
            "bj1-c1",
            SERVERS,
            "bj1",
            {"prometheus_retention_time": "0s"},
            "consul settings: prometheus_retention_time: expected a duration above 0 like 60s, 5m, got '0s'",
            id="retention-zero",
        ),
    ],
)
def test_bad_input_is_refused_naming_what_is_wrong(name, servers, datacenter, settings, message):
    with pytest.raises(ConsulError) as e:
        server_config(name, servers, datacenter, settings)
    assert str(e.value) == message


def test_every_setting_has_a_default_that_passes_its_own_check():
    assert server_config("bj1-c1", SERVERS, "bj1", dict(DEFAULT_SETTINGS)) == server_config(
        "bj1-c1", SERVERS, "bj1"
    )
