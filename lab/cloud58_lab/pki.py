"""Certificates and keys for throwaway Kubernetes control planes.

Made at run time by the collection's x509 code (``module_utils/pki/x509.py``, the same that
``cloud58.platform.cluster_pki`` uses on real masters) with ECDSA P-256 keys (instant to
make, accepted by etcd, kube-apiserver and every Kubernetes client), and written as PEM
files; nothing here is ever committed.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ansible_collections.cloud58.platform.plugins.module_utils.pki import x509

KEY_TYPE = "ecdsa-p256"
# Long enough for a lab that stays up for weeks, short enough to never be mistaken for real.
VALIDITY_DAYS = 365


@dataclass(frozen=True)
class KeyPair:
    """A certificate and its private key, as PEM bytes."""

    cert_pem: bytes
    key_pem: bytes

    def write(self, directory: Path, stem: str) -> tuple[Path, Path]:
        """Write ``<stem>.crt`` and ``<stem>.key`` (mode 0600) into ``directory``."""
        directory.mkdir(parents=True, exist_ok=True)
        cert, key = directory / f"{stem}.crt", directory / f"{stem}.key"
        cert.write_bytes(self.cert_pem)
        key.touch(mode=0o600)
        key.write_bytes(self.key_pem)
        return cert, key


class CertificateAuthority:
    """A self-signed CA that issues serving and client certificates."""

    def __init__(self, common_name: str) -> None:
        self._key = x509.generate_key(KEY_TYPE)
        self._cert = x509.make_ca(self._key, common_name, VALIDITY_DAYS)
        self.pair = KeyPair(x509.cert_pem(self._cert), x509.key_pem(self._key))

    @classmethod
    def load(cls, directory: Path, stem: str = "ca") -> CertificateAuthority:
        """The CA whose ``<stem>.crt`` and ``<stem>.key`` are in ``directory`` (a running
        control plane's, to issue it more client certificates)."""
        ca = cls.__new__(cls)
        cert_pem = (directory / f"{stem}.crt").read_bytes()
        key_pem = (directory / f"{stem}.key").read_bytes()
        ca._cert = x509.load_cert(cert_pem, f"{stem}.crt")
        ca._key = x509.load_key(key_pem, f"{stem}.key")
        ca.pair = KeyPair(cert_pem, key_pem)
        return ca

    def issue(
        self,
        common_name: str,
        *,
        organizations: tuple[str, ...] = (),
        dns_names: tuple[str, ...] = (),
        ip_addresses: tuple[str, ...] = (),
        server: bool = False,
        client: bool = False,
    ) -> KeyPair:
        """Issue a leaf certificate for serving (with SANs) and/or client authentication."""
        if not (server or client):
            raise ValueError(f"certificate {common_name!r}: ask for server and/or client usage")
        spec = {
            "common_name": common_name,
            "organizations": list(organizations),
            "dns_names": list(dns_names),
            "ip_addresses": list(ip_addresses),
            "usages": ["server"] * server + ["client"] * client,
        }
        key = x509.generate_key(KEY_TYPE)
        cert = x509.make_leaf(spec, key, ca_cert=self._cert, ca_key=self._key, days=VALIDITY_DAYS)
        return KeyPair(x509.cert_pem(cert), x509.key_pem(key))


def signing_key_pair() -> tuple[bytes, bytes]:
    """A key pair for service-account tokens: (private PEM, public PEM)."""
    key = x509.generate_key(KEY_TYPE)
    return x509.key_pem(key), x509.public_pem(key)
