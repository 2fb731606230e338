"""The lab's throwaway certificates (cloud58_lab.pki), made by the collection's x509 code."""

from __future__ import annotations

import pytest

from ansible_collections.cloud58.platform.plugins.module_utils.pki import x509
from cloud58_lab.pki import CertificateAuthority, signing_key_pair


@pytest.fixture(scope="module")
def ca():
    return CertificateAuthority("cloud58-lab-c1-ca")


def test_the_ca_is_self_signed_and_its_key_matches(ca):
    cert = x509.load_cert(ca.pair.cert_pem, "ca.crt")
    key = x509.load_key(ca.pair.key_pem, "ca.key")
    assert x509.cert_identity(cert)["common_name"] == "cloud58-lab-c1-ca"
    assert (x509.signed_by(cert, cert), x509.same_public_key(cert, key)) == (True, True)
    assert (cert.not_valid_after_utc - cert.not_valid_before_utc).days == 365


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        pytest.param(
            {
                "common_name": "kube-apiserver",
                "dns_names": ("localhost", "kubernetes"),
                "ip_addresses": ("127.0.0.1", "10.96.0.1"),
                "server": True,
            },
            {
                "common_name": "kube-apiserver",
                "organizations": [],
                "dns_names": ["localhost", "kubernetes"],
                "ip_addresses": ["127.0.0.1", "10.96.0.1"],
                "usages": ["server"],
            },
            id="serving",
        ),
        pytest.param(
            {"common_name": "cloud58-admin", "organizations": ("system:masters",), "client": True},
            {
                "common_name": "cloud58-admin",
                "organizations": ["system:masters"],
                "dns_names": [],
                "ip_addresses": [],
                "usages": ["client"],
            },
            id="client",
        ),
        pytest.param(
            {"common_name": "etcd-peer", "ip_addresses": ("127.0.0.1",), "server": True, "client": True},
            {
                "common_name": "etcd-peer",
                "organizations": [],
                "dns_names": [],
                "ip_addresses": ["127.0.0.1"],
                "usages": ["client", "server"],
            },
            id="both",
        ),
    ],
)
def test_issued_certificates_carry_what_was_asked_and_are_signed_by_the_ca(ca, args, expected):
    common_name = args.pop("common_name")
    pair = ca.issue(common_name, **args)
    cert = x509.load_cert(pair.cert_pem, "leaf.crt")
    ca_cert = x509.load_cert(ca.pair.cert_pem, "ca.crt")
    assert x509.cert_identity(cert) == expected
    assert x509.signed_by(cert, ca_cert) is True
    assert x509.same_public_key(cert, x509.load_key(pair.key_pem, "leaf.key")) is True


def test_a_certificate_without_usage_is_refused(ca):
    with pytest.raises(ValueError, match=r"^certificate 'nobody': ask for server and/or client usage$"):
        ca.issue("nobody")


def test_pairs_are_written_with_a_private_key_file(ca, tmp_path):
    cert, key = ca.pair.write(tmp_path / "pki", "ca")
    assert (cert.read_bytes(), key.read_bytes()) == (ca.pair.cert_pem, ca.pair.key_pem)
    assert (cert.name, key.name, key.stat().st_mode & 0o777) == ("ca.crt", "ca.key", 0o600)


def test_the_service_account_signing_pair_belongs_together():
    private, public = signing_key_pair()
    assert x509.public_pem(x509.load_key(private, "sa.key")) == public
    assert public.startswith(b"-----BEGIN PUBLIC KEY-----\n")


def test_a_ca_loaded_from_its_files_issues_certificates_it_signed(ca, tmp_path):
    ca.pair.write(tmp_path, "ca")
    loaded = CertificateAuthority.load(tmp_path)
    pair = loaded.issue("cloud58:lvs-sync", client=True)
    cert = x509.load_cert(pair.cert_pem, "leaf.crt")
    assert loaded.pair == ca.pair
    assert x509.signed_by(cert, x509.load_cert(ca.pair.cert_pem, "ca.crt")) is True
    assert (x509.cert_identity(cert)["common_name"], x509.cert_identity(cert)["usages"]) == (
        "cloud58:lvs-sync",
        ["client"],
    )
