"""The Consul PKI (module_utils/consul/pki.py, pure) and its issue by the controller's
certificate store: one CA, a certificate per host of the plan with the names the Consul role
verifies, keys 0600, a second run keeping every file and no cluster file written."""

from __future__ import annotations

import os

import pytest
from cryptography import x509
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from ansible_collections.cloud58.platform.plugins.module_utils.consul import ConsulError, consul_pki_plan
from ansible_collections.cloud58.platform.plugins.module_utils.controlplane.pki_store import ensure_pki
from ansible_collections.cloud58.platform.plugins.module_utils.monitoring import scrape

PLAN = {
    "hosts": {
        "bj1-c1": {"datacenter": "bj1", "address": "10.1.0.11", "roles": ["master", "consul_server"]},
        "bj1-lvs1": {"datacenter": "bj1", "address": "10.1.0.31", "roles": ["lvs"]},
        "sh1-w1": {"datacenter": "sh1", "address": "10.2.0.21", "roles": ["minion"]},
    }
}


def test_plan_names_servers_and_agents_and_the_files_each_host_receives():
    plan = consul_pki_plan(PLAN)
    assert plan["cas"] == [{"name": "ca", "common_name": "cloud58-consul-ca"}]
    assert [(c["name"], c["common_name"], c["dns_names"], c["ip_addresses"]) for c in plan["certs"]] == [
        ("hosts/bj1-c1", "server.bj1.consul", ["server.bj1.consul", "localhost"], ["127.0.0.1"]),
        ("hosts/bj1-lvs1", "client.bj1.consul", ["client.bj1.consul", "localhost"], ["127.0.0.1"]),
        ("hosts/sh1-w1", "client.sh1.consul", ["client.sh1.consul", "localhost"], ["127.0.0.1"]),
        ("prometheus", "cloud58-prometheus", [], []),
        ("consul-sync", "cloud58-consul-sync", [], []),
    ]
    assert {c["ca"] for c in plan["certs"]} == {"ca"}
    assert [tuple(c["usages"]) for c in plan["certs"]] == [("client", "server")] * 3 + [("client",)] * 2
    assert plan["host_files"]["sh1-w1"] == [
        {"src": "ca.crt", "dest": "ca.crt", "secret": False},
        {"src": "hosts/sh1-w1.crt", "dest": "agent.crt", "secret": False},
        {"src": "hosts/sh1-w1.key", "dest": "agent.key", "secret": True},
    ]
    assert [f["dest"] for f in plan["host_files"]["bj1-c1"]] == ["ca.crt", "server.crt", "server.key"]
    assert plan["signing_keys"] == []


def test_plan_takes_the_domain():
    assert consul_pki_plan(PLAN, "dc.example")["certs"][0]["dns_names"] == [
        "server.bj1.dc.example",
        "localhost",
    ]


def test_plan_refuses_what_is_not_a_plan():
    with pytest.raises(ConsulError) as e:
        consul_pki_plan({"clusters": {}})
    assert str(e.value) == "expected a topology plan with a hosts mapping, got dict"


def test_store_issues_the_ca_and_every_host_then_keeps_them(tmp_path):
    directory = str(tmp_path / "consul")
    first = ensure_pki(directory, consul_pki_plan(PLAN), cluster_files=False)
    assert first["changed"] is True
    assert [(a["name"], a["action"]) for a in first["actions"]] == [
        ("ca", "issued"),
        ("hosts/bj1-c1", "issued"),
        ("hosts/bj1-lvs1", "issued"),
        ("hosts/sh1-w1", "issued"),
        ("prometheus", "issued"),
        ("consul-sync", "issued"),
    ]
    files = sorted(
        (
            os.path.relpath(os.path.join(root, f), directory),
            oct(os.stat(os.path.join(root, f)).st_mode & 0o777),
        )
        for root, _dirs, names in os.walk(directory)
        for f in names
    )
    assert files == [
        ("ca.crt", "0o644"),
        ("ca.key", "0o600"),
        ("consul-sync.crt", "0o644"),
        ("consul-sync.key", "0o600"),
        ("hosts/bj1-c1.crt", "0o644"),
        ("hosts/bj1-c1.key", "0o600"),
        ("hosts/bj1-lvs1.crt", "0o644"),
        ("hosts/bj1-lvs1.key", "0o600"),
        ("hosts/sh1-w1.crt", "0o644"),
        ("hosts/sh1-w1.key", "0o600"),
        ("prometheus.crt", "0o644"),
        ("prometheus.key", "0o600"),
    ]
    cert = x509.load_pem_x509_certificate((tmp_path / "consul/hosts/bj1-c1.crt").read_bytes())
    ca = x509.load_pem_x509_certificate((tmp_path / "consul/ca.crt").read_bytes())
    assert cert.issuer == ca.subject
    assert cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == "server.bj1.consul"
    san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert san.get_values_for_type(x509.DNSName) == ["server.bj1.consul", "localhost"]
    assert [str(ip) for ip in san.get_values_for_type(x509.IPAddress)] == ["127.0.0.1"]
    usages = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert set(usages) == {ExtendedKeyUsageOID.CLIENT_AUTH, ExtendedKeyUsageOID.SERVER_AUTH}
    before = {name: (tmp_path / "consul" / name).read_bytes() for name, _mode in files}
    second = ensure_pki(directory, consul_pki_plan(PLAN), cluster_files=False)
    assert second["changed"] is False
    assert {a["action"] for a in second["actions"]} == {"kept"}
    assert {name: (tmp_path / "consul" / name).read_bytes() for name in before} == before


def test_prometheus_certificate_is_the_one_the_scrape_configuration_names(tmp_path):
    """The consul jobs' client files (monitoring/scrape.py, sources relative to the Consul PKI's
    directory) are files this PKI issues, and Prometheus' certificate is for client use only."""
    directory = tmp_path / "consul"
    ensure_pki(str(directory), consul_pki_plan(PLAN), cluster_files=False)
    sources = scrape.CLIENT_FILE_SOURCES["consul"]
    assert all((directory / source).is_file() for source in sources.values())
    cert = x509.load_pem_x509_certificate((directory / sources["cert_file"]).read_bytes())
    usages = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert list(usages) == [ExtendedKeyUsageOID.CLIENT_AUTH]
    assert (
        cert.issuer == x509.load_pem_x509_certificate((directory / sources["ca_file"]).read_bytes()).subject
    )
