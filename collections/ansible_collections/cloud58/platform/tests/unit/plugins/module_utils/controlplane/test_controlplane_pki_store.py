"""ensure_pki on a directory: issues what is missing, keeps what exists, renews what expires
(same key, same CA), refuses what it cannot repair, never returns key material."""

from __future__ import annotations

import datetime
import ipaddress
import os
import stat
from pathlib import Path

import pytest
import yaml
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from ansible_collections.cloud58.platform.plugins.module_utils.controlplane.pki_plan import pki_plan
from ansible_collections.cloud58.platform.plugins.module_utils.controlplane.pki_store import ensure_pki
from ansible_collections.cloud58.platform.plugins.module_utils.controlplane.settings import settings_from
from ansible_collections.cloud58.platform.plugins.module_utils.pki.x509 import PkiError, signed_by
from ansible_collections.cloud58.platform.plugins.module_utils.topology import build_plan, load_inventory

REPO = Path(__file__).resolve().parents[9]
CLUSTER = build_plan(load_inventory(str(REPO / "inventories/lab"))).as_dict()["clusters"]["lab1-k8s"]
PLAN = pki_plan(CLUSTER, settings_from({}))
SERVER = "https://api.lab1-k8s.lab.cloud58.test:6443"
NOW = datetime.datetime(2030, 1, 1, tzinfo=datetime.UTC)


def _ensure(directory, plan=None, **kwargs):
    plan = PLAN if plan is None else plan
    kwargs.setdefault("now", NOW)
    return ensure_pki(str(directory), plan, context="lab1-k8s", server=SERVER, **kwargs)


def _actions(result):
    out = {}
    for a in result["actions"]:
        out.setdefault(a["action"], []).append(a["name"])
    return out


def _cert(directory, name):
    return x509.load_pem_x509_certificate((directory / f"{name}.crt").read_bytes())


def _key_bytes(directory, name):
    return (directory / f"{name}.key").read_bytes()


@pytest.fixture(scope="module")
def issued(tmp_path_factory):
    directory = tmp_path_factory.mktemp("pki")
    return directory, _ensure(directory)


def test_first_run_issues_everything(issued):
    result = issued[1]
    assert result["changed"] is True
    assert _actions(result) == {
        "issued": ["ca", "etcd/ca", "front-proxy-ca"]
        + [c["name"] for c in PLAN["certs"]]
        + ["sa.key", "sa.pub", "encryption-config.yaml", "admin.kubeconfig"]
    }
    assert result["expiry"]["ca"] == "2039-12-30T00:00:00Z"
    assert result["expiry"]["apiserver"] == "2031-01-01T00:00:00Z"


def test_files_and_modes(issued):
    directory = issued[0]
    modes = {
        str(p.relative_to(directory)): stat.S_IMODE(p.stat().st_mode) for p in sorted(directory.rglob("*"))
    }
    assert modes["etcd"] == 0o700
    assert {name for name, mode in modes.items() if mode == 0o600} == {
        *(f"{n}.key" for n in ["ca", "etcd/ca", "front-proxy-ca", "sa"] + [c["name"] for c in PLAN["certs"]]),
        "encryption-config.yaml",
        "admin.kubeconfig",
    }
    assert {name for name, mode in modes.items() if mode == 0o644} == {
        *(f"{n}.crt" for n in ["ca", "etcd/ca", "front-proxy-ca"] + [c["name"] for c in PLAN["certs"]]),
        "sa.pub",
    }
    assert not [n for n in modes if os.path.basename(n).startswith(".tmp-")]


def test_apiserver_certificate_is_signed_and_carries_the_plan(issued):
    directory = issued[0]
    cert, ca = _cert(directory, "apiserver"), _cert(directory, "ca")
    assert signed_by(cert, ca)
    assert not signed_by(cert, _cert(directory, "etcd/ca"))
    san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert san.get_values_for_type(x509.DNSName) == PLAN["certs"][0]["dns_names"]
    assert [str(ip) for ip in san.get_values_for_type(x509.IPAddress)] == PLAN["certs"][0]["ip_addresses"]
    assert ipaddress.ip_address("198.18.2.1") in san.get_values_for_type(x509.IPAddress)
    assert cert.subject.rfc4514_string() == "CN=kube-apiserver"
    assert ca.extensions.get_extension_for_class(x509.BasicConstraints).value.ca is True
    admin = _cert(directory, "admin")
    assert admin.subject.rfc4514_string() == "CN=cloud58-admin,O=system:masters"


def test_encryption_config_sa_and_kubeconfig(issued):
    directory = issued[0]
    config = yaml.safe_load((directory / "encryption-config.yaml").read_text())
    secret = config["resources"][0]["providers"][0]["secretbox"]["keys"][0]["secret"]
    assert len(__import__("base64").b64decode(secret)) == 32
    key = serialization.load_pem_private_key(_key_bytes(directory, "sa"), None)
    assert (directory / "sa.pub").read_bytes() == key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    kubeconfig = yaml.safe_load((directory / "admin.kubeconfig").read_text())
    assert kubeconfig["current-context"] == "lab1-k8s"
    assert kubeconfig["clusters"][0]["cluster"]["server"] == SERVER


def test_results_never_carry_key_material(issued):
    directory, result = issued
    text = repr(result)
    assert "PRIVATE KEY" not in text
    for key in directory.rglob("*.key"):
        body = "".join(key.read_text().splitlines()[1:-1])
        assert body[:40] not in text


@pytest.fixture
def pki(tmp_path):
    _ensure(tmp_path)
    return tmp_path


def test_rerun_keeps_every_byte(pki):
    before = {p: p.read_bytes() for p in pki.rglob("*") if p.is_file()}
    result = _ensure(pki)
    assert result["changed"] is False
    assert set(_actions(result)) == {"kept"}
    assert {p: p.read_bytes() for p in pki.rglob("*") if p.is_file()} == before


def test_check_mode_on_an_empty_directory_writes_nothing(tmp_path):
    target = tmp_path / "new"
    result = _ensure(target, check_mode=True)
    assert result["changed"] is True
    assert len(_actions(result)["issued"]) == 3 + len(PLAN["certs"]) + 4
    assert not target.exists()


def test_renewal_reissues_expiring_certificates_with_the_same_keys(tmp_path):
    _ensure(tmp_path, cert_days=40)
    keys = {c["name"]: _key_bytes(tmp_path, c["name"]) for c in PLAN["certs"]}
    ca_before = (tmp_path / "ca.crt").read_bytes()
    old_apiserver = _cert(tmp_path, "apiserver")
    # Converge (no renewal window) leaves them; the renewal run with 30 days renews them 15 days later.
    assert _ensure(tmp_path, now=NOW + datetime.timedelta(days=15))["changed"] is False
    result = _ensure(tmp_path, renew_before_days=30, now=NOW + datetime.timedelta(days=15))
    assert _actions(result) == {
        "kept": ["ca", "etcd/ca", "front-proxy-ca", "sa.key", "encryption-config.yaml"],
        "renewed": [c["name"] for c in PLAN["certs"]],
        "updated": ["admin.kubeconfig"],
    }
    assert result["actions"][3]["reason"] == "expired or expiring at 2030-02-10T00:00:00Z"
    assert {c["name"]: _key_bytes(tmp_path, c["name"]) for c in PLAN["certs"]} == keys
    assert (tmp_path / "ca.crt").read_bytes() == ca_before
    new_apiserver = _cert(tmp_path, "apiserver")
    assert new_apiserver.serial_number != old_apiserver.serial_number
    assert new_apiserver.not_valid_after_utc == datetime.datetime(2031, 1, 16, tzinfo=datetime.UTC)
    assert signed_by(new_apiserver, _cert(tmp_path, "ca"))


def test_ca_renewal_keeps_earlier_certificates_valid(tmp_path):
    _ensure(tmp_path, ca_days=100, cert_days=60)
    old_leaf = _cert(tmp_path, "scheduler")
    ca_key = _key_bytes(tmp_path, "ca")
    result = _ensure(
        tmp_path, ca_days=100, cert_days=60, renew_before_days=50, now=NOW + datetime.timedelta(days=55)
    )
    assert "ca" in _actions(result)["renewed"]
    assert _key_bytes(tmp_path, "ca") == ca_key
    assert signed_by(old_leaf, _cert(tmp_path, "ca"))


def test_a_new_san_reissues_only_the_apiserver_certificate(pki):
    key = _key_bytes(pki, "apiserver")
    plan = pki_plan(CLUSTER, settings_from({"extra_sans": ["api.example.org", "198.18.2.30"]}))
    result = _ensure(pki, plan)
    changed = [a for a in result["actions"] if a["action"] != "kept"]
    assert changed == [
        {
            "name": "apiserver",
            "action": "reissued",
            "reason": "DNS names +api.example.org; IP addresses +198.18.2.30",
        }
    ]
    assert _key_bytes(pki, "apiserver") == key


def test_a_certificate_from_another_ca_is_reissued(pki, tmp_path_factory):
    other = tmp_path_factory.mktemp("other")
    _ensure(other)
    for ext in ("crt", "key"):
        (pki / f"scheduler.{ext}").write_bytes((other / f"scheduler.{ext}").read_bytes())
    result = _ensure(pki)
    assert [a for a in result["actions"] if a["action"] != "kept"] == [
        {"name": "scheduler", "action": "reissued", "reason": "not signed by the current ca"}
    ]
    assert signed_by(_cert(pki, "scheduler"), _cert(pki, "ca"))


def test_a_missing_certificate_is_issued_for_the_existing_key(pki):
    key = _key_bytes(pki, "etcd/lab1-m2-peer")
    (pki / "etcd/lab1-m2-peer.crt").unlink()
    result = _ensure(pki)
    assert [a for a in result["actions"] if a["action"] != "kept"] == [
        {"name": "etcd/lab1-m2-peer", "action": "issued"}
    ]
    assert _key_bytes(pki, "etcd/lab1-m2-peer") == key


def test_a_readable_key_is_locked_down(pki):
    os.chmod(pki / "front-proxy-client.key", 0o644)
    result = _ensure(pki)
    assert [a for a in result["actions"] if a["action"] != "kept"] == [
        {"name": "front-proxy-client.key", "action": "mode", "reason": "was readable by others; now 0600"}
    ]
    assert stat.S_IMODE((pki / "front-proxy-client.key").stat().st_mode) == 0o600


@pytest.mark.parametrize(
    ("damage", "message"),
    [
        (lambda d: (d / "ca.key").unlink(), r"ca\.crt exists without its key ca\.key: the CA cannot sign"),
        (lambda d: (d / "admin.key").unlink(), r"admin\.crt exists without its key admin\.key"),
        (
            lambda d: (d / "admin.key").write_bytes((d / "scheduler.key").read_bytes()),
            r"admin\.crt does not belong to admin\.key",
        ),
        (
            lambda d: (d / "sa.key").write_text("garbage"),
            r"sa\.key: not a readable unencrypted PEM private key",
        ),
    ],
    ids=["ca-key-lost", "leaf-key-lost", "key-swapped", "key-garbled"],
)
def test_damage_that_would_lose_a_key_is_refused(pki, damage, message):
    damage(pki)
    before = {p: p.read_bytes() for p in pki.rglob("*") if p.is_file()}
    with pytest.raises(PkiError, match=message):
        _ensure(pki)
    assert {p: p.read_bytes() for p in pki.rglob("*") if p.is_file()} == before


def test_rsa_keys(tmp_path):
    result = _ensure(tmp_path, key_type="rsa-2048")
    assert result["changed"] is True
    key = serialization.load_pem_private_key(_key_bytes(tmp_path, "apiserver"), None)
    assert key.key_size == 2048
    assert signed_by(_cert(tmp_path, "apiserver"), _cert(tmp_path, "ca"))


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [({"key_type": "dsa"}, "unknown key type 'dsa'"), ({"renew_before_days": 400}, "renew_before_days 400")],
)
def test_bad_parameters(tmp_path, kwargs, message):
    with pytest.raises(PkiError, match=message):
        _ensure(tmp_path, **kwargs)
