# -*- coding: utf-8 -*-
# Copyright: cloud58 platform team
# Apache License 2.0
"""Thin helpers over ``cryptography``: keys, CA and leaf certificates, and checks of them."""

from __future__ import annotations

import datetime
import ipaddress

try:
    from cryptography import x509
    from cryptography.exceptions import InvalidSignature
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    HAS_CRYPTOGRAPHY = True
    CRYPTOGRAPHY_IMPORT_ERROR = None
except ImportError as exc:  # pragma: no cover - exercised only without cryptography
    HAS_CRYPTOGRAPHY = False
    CRYPTOGRAPHY_IMPORT_ERROR = exc

KEY_TYPES = ("ecdsa-p256", "rsa-2048", "rsa-3072")
# A minute of slack for clocks of hosts that start using a certificate at once.
BACKDATE = datetime.timedelta(minutes=5)


def issue_argspec() -> dict:
    """The argument spec of the options every certificate-issuing module has (documented
    once in the doc fragment cloud58.platform.pki)."""
    return {
        "key_type": {"type": "str", "choices": list(KEY_TYPES), "default": "ecdsa-p256"},
        "ca_days": {"type": "int", "default": 3650},
        "cert_days": {"type": "int", "default": 365},
        "renew_before_days": {"type": "int", "default": 0},
    }


class PkiError(Exception):
    """A PKI directory holds something that cannot be used or repaired without losing a key."""


def utcnow():
    return datetime.datetime.now(datetime.timezone.utc)  # noqa: UP017 - modules may run on Python < 3.11


def generate_key(key_type: str):
    if key_type == "ecdsa-p256":
        return ec.generate_private_key(ec.SECP256R1())
    if key_type.startswith("rsa-"):
        return rsa.generate_private_key(public_exponent=65537, key_size=int(key_type[4:]))
    raise PkiError(f"unknown key type {key_type!r} (known: {', '.join(KEY_TYPES)})")


def key_pem(key) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def public_pem(key) -> bytes:
    return key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def load_key(data: bytes, where: str):
    try:
        return serialization.load_pem_private_key(data, password=None)
    except (ValueError, TypeError) as e:
        # The message of cryptography never contains the key; ours names only the file.
        raise PkiError(f"{where}: not a readable unencrypted PEM private key") from e


def load_cert(data: bytes, where: str):
    try:
        return x509.load_pem_x509_certificate(data)
    except ValueError as e:
        raise PkiError(f"{where}: not a readable PEM certificate") from e


def cert_pem(cert) -> bytes:
    return cert.public_bytes(serialization.Encoding.PEM)


def same_public_key(cert, key) -> bool:
    return public_pem_of(cert.public_key()) == public_pem_of(key.public_key())


def public_pem_of(public_key) -> bytes:
    return public_key.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def _name(common_name, organizations=()):
    attrs = [x509.NameAttribute(NameOID.ORGANIZATION_NAME, org) for org in organizations]
    attrs.append(x509.NameAttribute(NameOID.COMMON_NAME, common_name))
    return x509.Name(attrs)


def _key_usage(ca: bool, rsa_key: bool):
    return x509.KeyUsage(
        digital_signature=True,
        content_commitment=False,
        key_encipherment=rsa_key and not ca,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=ca,
        crl_sign=ca,
        encipher_only=False,
        decipher_only=False,
    )


def _is_rsa(key) -> bool:
    return isinstance(key, rsa.RSAPrivateKey)


def make_ca(key, common_name: str, days: int, now=None):
    """A self-signed CA certificate for ``key``; renewing = calling again with the same key."""
    now = now or utcnow()
    name = _name(common_name)
    return (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - BACKDATE)
        .not_valid_after(now + datetime.timedelta(days=days))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(_key_usage(True, _is_rsa(key)), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )


_USAGE_OIDS = {"server": "SERVER_AUTH", "client": "CLIENT_AUTH"}


def make_leaf(spec: dict, key, *, ca_cert, ca_key, days: int, now=None):
    """A certificate for ``key`` as ``spec`` describes it (pki_plan.py), signed by the CA.

    It never outlives its CA."""
    now = now or utcnow()
    not_after = min(now + datetime.timedelta(days=days), ca_cert.not_valid_after_utc)
    usages = [getattr(ExtendedKeyUsageOID, _USAGE_OIDS[u]) for u in spec["usages"]]
    builder = (
        x509.CertificateBuilder()
        .subject_name(_name(spec["common_name"], spec["organizations"]))
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - BACKDATE)
        .not_valid_after(not_after)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(_key_usage(False, _is_rsa(key)), critical=True)
        .add_extension(x509.ExtendedKeyUsage(usages), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
    )
    sans = [x509.DNSName(n) for n in spec["dns_names"]]
    sans += [x509.IPAddress(ipaddress.ip_address(ip)) for ip in spec["ip_addresses"]]
    if sans:
        builder = builder.add_extension(x509.SubjectAlternativeName(sans), critical=False)
    return builder.sign(ca_key, hashes.SHA256())


def signed_by(cert, ca_cert) -> bool:
    if cert.issuer != ca_cert.subject:
        return False
    public = ca_cert.public_key()
    try:
        if isinstance(public, rsa.RSAPublicKey):
            public.verify(
                cert.signature, cert.tbs_certificate_bytes, padding.PKCS1v15(), cert.signature_hash_algorithm
            )
        else:
            public.verify(cert.signature, cert.tbs_certificate_bytes, ec.ECDSA(cert.signature_hash_algorithm))
    except InvalidSignature:
        return False
    return True


def cert_identity(cert) -> dict:
    """Subject, SANs and usages of a certificate, in pki_plan's terms."""
    cn = [a.value for a in cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)]
    orgs = [a.value for a in cert.subject.get_attributes_for_oid(NameOID.ORGANIZATION_NAME)]
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        dns = san.get_values_for_type(x509.DNSName)
        ips = [str(ip) for ip in san.get_values_for_type(x509.IPAddress)]
    except x509.ExtensionNotFound:
        dns, ips = [], []
    try:
        eku = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
        usages = sorted(u for u, oid in _USAGE_OIDS.items() if getattr(ExtendedKeyUsageOID, oid) in eku)
    except x509.ExtensionNotFound:
        usages = []
    return {
        "common_name": cn[0] if cn else "",
        "organizations": orgs,
        "dns_names": dns,
        "ip_addresses": ips,
        "usages": usages,
    }


def identity_differences(cert, spec: dict) -> list:
    """How a certificate differs from its spec (empty: it matches)."""
    have = cert_identity(cert)
    out = []
    if have["common_name"] != spec["common_name"]:
        out.append(f"common name {have['common_name']!r} -> {spec['common_name']!r}")
    if sorted(have["organizations"]) != sorted(spec["organizations"]):
        out.append(f"organizations {have['organizations']} -> {spec['organizations']}")
    for field, label in (("dns_names", "DNS names"), ("ip_addresses", "IP addresses")):
        added = sorted(set(spec[field]) - set(have[field]))
        removed = sorted(set(have[field]) - set(spec[field]))
        if added or removed:
            parts = [f"+{x}" for x in added] + [f"-{x}" for x in removed]
            out.append(f"{label} {' '.join(parts)}")
    if have["usages"] != sorted(spec["usages"]):
        out.append(f"usages {have['usages']} -> {sorted(spec['usages'])}")
    return out
