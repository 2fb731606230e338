"""The secret scanner finds key material in the forms it takes in output and files, and
stays quiet on what this project legitimately prints (certificates, digests, censored items)."""

from __future__ import annotations

import base64
import datetime

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from cryptography.x509.oid import NameOID

from cloud58_lab.secretscan import Finding, key_bodies, scan_paths, scan_text

KEY = ec.generate_private_key(ec.SECP256R1())
KEY_PEM = KEY.private_bytes(
    serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
).decode()
_NAME = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "kube-apiserver")])
_NOW = datetime.datetime.now(datetime.UTC)
CERT_PEM = (
    x509.CertificateBuilder()
    .subject_name(_NAME)
    .issuer_name(_NAME)
    .public_key(KEY.public_key())
    .serial_number(1)
    .not_valid_before(_NOW)
    .not_valid_after(_NOW + datetime.timedelta(days=1))
    .sign(KEY, hashes.SHA256())
    .public_bytes(serialization.Encoding.PEM)
    .decode()
)
ENCRYPTION_KEY = base64.b64encode(bytes(range(32))).decode()


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        pytest.param(
            f"TASK [copy]\nok: [m1] => {KEY_PEM}",
            [Finding("out", 2, "Private Key")],
            id="pem-private-key",
        ),
        pytest.param(
            "users:\n- name: admin\n  user:\n    client-key-data: "
            + base64.b64encode(KEY_PEM.encode()).decode()
            + "\n",
            [Finding("out", 4, "Private Key in base64")],
            id="kubeconfig-client-key-data",
        ),
        pytest.param(
            f"providers:\n- secretbox:\n    keys:\n    - name: key1\n      secret: {ENCRYPTION_KEY}\n",
            [Finding("out", 5, "a secret of this run")],
            id="encryption-config",
        ),
        pytest.param(
            "debug: " + base64.b64encode(ENCRYPTION_KEY.encode()).decode() + "\n",
            [Finding("out", 1, "a secret of this run")],
            id="known-secret-base64-encoded",
        ),
        pytest.param(
            "url: https://admin:s3cretPassw0rd@198.18.0.10:8443/\n",
            [Finding("out", 1, "Basic Auth Credentials")],
            id="credentials-in-url",
        ),
    ],
)
def test_secrets_are_found_where_they_stand(text, expected):
    assert scan_text(text, "out", known=[ENCRYPTION_KEY]) == expected


@pytest.mark.parametrize(
    "text",
    [
        pytest.param(CERT_PEM, id="certificate"),
        pytest.param(
            "annotations:\n  cloud58.io/hash: "
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855\n",
            id="digest",
        ),
        pytest.param(
            "ok: [lab1-m1] => (item=None)\n"
            '"censored": "the output has been hidden due to the fact that \'no_log: true\' was specified"\n',
            id="censored-item",
        ),
        pytest.param("secretName: etcd-client\n", id="secret-reference"),
    ],
)
def test_legitimate_output_is_not_reported(text):
    assert scan_text(text, "out", known=[ENCRYPTION_KEY, *key_bodies([KEY_PEM])]) == []


@pytest.mark.parametrize(
    "key",
    [
        pytest.param(ec.generate_private_key(ec.SECP256R1()), id="ecdsa-p256"),
        pytest.param(rsa.generate_private_key(public_exponent=65537, key_size=2048), id="rsa-2048"),
        pytest.param(ed25519.Ed25519PrivateKey.generate(), id="ed25519"),
    ],
)
def test_key_bodies_hold_the_private_value_and_nothing_public(key):
    pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()
    public = (
        key.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )
    pieces = key_bodies([pem])
    assert pieces
    assert all(piece in pem for piece in pieces)
    assert [p for p in pieces if p in public.replace("\n", "")] == []
    assert scan_text(public, "pub", known=pieces) == []
    assert scan_text(pem.replace("-----", ""), "leak", known=pieces) != []


def test_known_key_bodies_are_found_even_without_their_pem_header():
    body_line = key_bodies([KEY_PEM])[1]
    assert scan_text(f"x = '{body_line}'\n", "log", known=key_bodies([KEY_PEM])) == [
        Finding("log", 1, "a secret of this run")
    ]


def test_paths_are_reported_relative_to_the_root(tmp_path):
    (tmp_path / "build").mkdir()
    (tmp_path / "build" / "run.log").write_text(f"line\n{KEY_PEM}")
    (tmp_path / "clean.yaml").write_text("kind: ConfigMap\n")
    assert scan_paths([tmp_path], root=tmp_path) == [Finding("build/run.log", 2, "Private Key")]
