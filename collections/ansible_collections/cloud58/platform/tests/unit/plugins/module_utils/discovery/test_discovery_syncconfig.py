"""The configuration file of cloud58-consul-sync from the role consul_sync's variables."""

from __future__ import annotations

import pytest

from ansible_collections.cloud58.platform.plugins.filter.discovery import consul_sync_config
from ansible_collections.cloud58.platform.plugins.module_utils.discovery.catalog import DiscoveryError
from ansible_collections.cloud58.platform.plugins.module_utils.discovery.syncconfig import sync_config

TOKEN = "3f1c2d5e-secret-token"
KUBECONFIG = "apiVersion: v1\nkind: Config\nusers: [{name: u, user: {token: kube-secret}}]\n"
BASE = {
    "consul_sync_cluster": "c1",
    "consul_sync_datacenter": "bj1",
    "consul_sync_consul_address": "https://127.0.0.1:8501",
    "consul_sync_token": TOKEN,
    "consul_sync_kubeconfig": KUBECONFIG,
    "consul_sync_context": "",
    "consul_sync_ca_file": "/etc/cloud58/consul/ca.crt",
    "consul_sync_cert_file": "/etc/cloud58/consul/sync.crt",
    "consul_sync_key_file": "/etc/cloud58/consul/sync.key",
    "consul_sync_grace_s": 30,
    "consul_sync_debounce_ms": 20,
    "consul_sync_max_batch_ms": 200,
    "consul_sync_max_txn_per_s": 50,
    "consul_sync_retries": 5,
    "consul_sync_metrics_address": "127.0.0.1",
    "consul_sync_metrics_port": 9659,
    "consul_sync_config_dir": "/etc/cloud58/consul-sync/",
}


def test_the_variables_become_every_field_of_the_file():
    assert sync_config(BASE) == {
        "ca_file": "/etc/cloud58/consul/ca.crt",
        "cert_file": "/etc/cloud58/consul/sync.crt",
        "cluster": "c1",
        "consul_address": "https://127.0.0.1:8501",
        "context": None,
        "datacenter": "bj1",
        "debounce_ms": 20,
        "grace_s": 30,
        "key_file": "/etc/cloud58/consul/sync.key",
        "kubeconfig": "/etc/cloud58/consul-sync/consul-sync.kubeconfig",
        "max_batch_ms": 200,
        "max_txn_per_s": 50,
        "metrics_address": "127.0.0.1",
        "metrics_port": 9659,
        "retries": 5,
        "token_file": "/etc/cloud58/consul-sync/consul-sync.token",
    }


def test_plain_http_without_tls_a_context_and_no_metrics():
    variables = {
        **BASE,
        "consul_sync_consul_address": "http://127.0.0.1:8500",
        "consul_sync_ca_file": "",
        "consul_sync_cert_file": "",
        "consul_sync_key_file": "",
        "consul_sync_context": "c1",
        "consul_sync_metrics_port": None,
    }
    got = sync_config(variables)
    assert {k: got[k] for k in ("ca_file", "cert_file", "key_file", "context", "metrics_port")} == {
        "ca_file": None,
        "cert_file": None,
        "key_file": None,
        "context": "c1",
        "metrics_port": None,
    }


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"consul_sync_cluster": ""}, "consul_sync_cluster is missing or empty"),
        ({"consul_sync_datacenter": None}, "consul_sync_datacenter is missing or empty"),
        ({"consul_sync_consul_address": "  "}, "consul_sync_consul_address is missing or empty"),
        ({"consul_sync_token": ""}, "consul_sync_token is missing or empty"),
        ({"consul_sync_kubeconfig": "\n"}, "consul_sync_kubeconfig is missing or empty"),
        ({"consul_sync_token": 42}, "consul_sync_token is not a string (a int)"),
        (
            {"consul_sync_cluster": "C_1"},
            "consul_sync_cluster: 'C_1' is not a DNS label (a-z, 0-9, '-', at most 63)",
        ),
        (
            {"consul_sync_consul_address": "127.0.0.1:8500"},
            "consul_sync_consul_address: '127.0.0.1:8500' is not an http:// or https:// URL",
        ),
        ({"consul_sync_config_dir": "etc"}, "consul_sync_config_dir: 'etc' is not an absolute path"),
        ({"consul_sync_ca_file": "ca.crt"}, "consul_sync_ca_file: 'ca.crt' is not an absolute path"),
        ({"consul_sync_key_file": ""}, "consul_sync_cert_file and consul_sync_key_file go together"),
        (
            {"consul_sync_consul_address": "http://127.0.0.1:8500"},
            "consul_sync_ca_file, consul_sync_cert_file, consul_sync_key_file given but"
            " consul_sync_consul_address is not https://",
        ),
        ({"consul_sync_retries": 0}, "consul_sync_retries: 0 is not a number of at least 1"),
        ({"consul_sync_debounce_ms": 2.5}, "consul_sync_debounce_ms: 2.5 is not a whole number"),
        ({"consul_sync_grace_s": True}, "consul_sync_grace_s: True is not a number of at least 0"),
        ({"consul_sync_metrics_port": 70000}, "consul_sync_metrics_port: 70000 is above 65535"),
        ({"consul_sync_metrics_address": ""}, "consul_sync_metrics_address: '' is not an address"),
    ],
    ids=lambda v: next(iter(v)) if isinstance(v, dict) else None,
)
def test_a_bad_variable_fails_naming_it_never_a_secret(change, message):
    with pytest.raises(DiscoveryError) as e:
        sync_config({**BASE, **change})
    assert str(e.value) == message
    assert TOKEN not in str(e.value)
    assert "kube-secret" not in str(e.value)


def test_a_missing_variable_is_named():
    variables = {k: v for k, v in BASE.items() if k != "consul_sync_kubeconfig"}
    with pytest.raises(DiscoveryError, match=r"^consul_sync_kubeconfig is missing or empty$"):
        sync_config(variables)


def test_the_filter_names_itself_and_refuses_a_non_dict():
    from ansible.errors import AnsibleFilterError

    message = r"^consul_sync_config: consul_sync_token is missing or empty$"
    with pytest.raises(AnsibleFilterError, match=message):
        consul_sync_config({**BASE, "consul_sync_token": ""})
    with pytest.raises(AnsibleFilterError, match=r"^consul_sync_config: list is not a dict of variables$"):
        consul_sync_config([])
    assert consul_sync_config(BASE) == sync_config(BASE)
