"""Find key material where it must never be: playbook output, logs, rendered files.

Three detectors, each reported with its place (``file:line`` or ``<name>:line``):

* detect-secrets (pinned in requirements.txt) with the plugins that fit this project's
  output: private keys, JSON web tokens, credentials in URLs; its entropy plugins are left
  out, since rendered manifests are full of digests, and so is its keyword plugin, which
  reports YAML keys such as ``secretName:`` (the real secrets are searched for instead);
* PEM private keys hidden in base64 (a kubeconfig's ``client-key-data``), which
  detect-secrets does not decode;
* the real secrets of a run (``known``): key bodies, encryption keys, tokens the caller
  read from their files, found as written or base64-encoded.
"""

from __future__ import annotations

import base64
import binascii
import re
import tempfile
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from detect_secrets.core.secrets_collection import SecretsCollection
from detect_secrets.settings import transient_settings

PLUGINS = [
    {"name": "PrivateKeyDetector"},
    {"name": "JwtTokenDetector"},
    {"name": "BasicAuthDetector"},
]
_BASE64_RUN = re.compile(r"[A-Za-z0-9+/]{40,}={0,2}")
# Shorter pieces of a secret than this are not searched: they could match by chance.
_KNOWN_MIN = 16


@dataclass(frozen=True, order=True)
class Finding:
    where: str
    line: int
    kind: str

    def __str__(self) -> str:
        return f"{self.where}:{self.line}: {self.kind}"


def scan_text(text: str, name: str, known: Iterable[str] = ()) -> list[Finding]:
    """Every finding in ``text`` (reported as ``name``)."""
    with tempfile.NamedTemporaryFile("w", suffix=".txt", encoding="utf-8") as handle:
        handle.write(text)
        handle.flush()
        found = _detect_secrets(Path(handle.name), name)
    return sorted(set(found + _hidden_keys(text, name) + _known(text, name, known)))


def scan_paths(paths: Iterable[Path], known: Iterable[str] = (), root: Path | None = None) -> list[Finding]:
    """Every finding in the text files under ``paths`` (files or directories)."""
    known = list(known)
    findings: list[Finding] = []
    for top in paths:
        files = [top] if top.is_file() else sorted(p for p in top.rglob("*") if p.is_file())
        for path in files:
            try:
                with path.open("rb") as handle:
                    if b"\0" in handle.read(8192):
                        continue  # a binary (a program, a database) is not output a person reads
                text = path.read_text(encoding="utf-8")
            except (UnicodeDecodeError, OSError):
                continue
            name = str(path.relative_to(root)) if root and path.is_relative_to(root) else str(path)
            findings += scan_text(text, name, known)
    return sorted(findings)


def _detect_secrets(path: Path, name: str) -> list[Finding]:
    with transient_settings({"plugins_used": PLUGINS}):
        collection = SecretsCollection()
        collection.scan_file(str(path))
    return [Finding(name, secret.line_number, secret.type) for _, secret in collection]


def _hidden_keys(text: str, name: str) -> list[Finding]:
    found = []
    for number, line in enumerate(text.splitlines(), 1):
        for run in _BASE64_RUN.findall(line):
            try:
                decoded = base64.b64decode(run + "=" * (-len(run) % 4))
            except (binascii.Error, ValueError):
                continue
            if b"PRIVATE KEY" in decoded:
                found.append(Finding(name, number, "Private Key in base64"))
    return found


def _known(text: str, name: str, known: Iterable[str]) -> list[Finding]:
    found = []
    lines = text.splitlines()
    for raw in known:
        secret = raw.strip()
        if len(secret) < _KNOWN_MIN:
            continue
        forms = {secret, base64.b64encode(secret.encode()).decode()[:-4]}
        for number, line in enumerate(lines, 1):
            if any(form in line for form in forms):
                found.append(Finding(name, number, "a secret of this run"))
    return found


def key_bodies(pem_texts: Iterable[str]) -> list[str]:
    """What of each PEM private key is secret, as it stands in the PEM's lines.

    A key's PEM also carries public parts (an EC key ends with its public point, an RSA key
    starts with its modulus), which certificates print legitimately. Only the characters that
    encode the private value alone (EC and RSA ``d``, an Ed25519 seed) are kept, cut at the
    PEM's line breaks, each piece long enough to be searched on its own.
    """
    pieces = []
    for text in pem_texts:
        for block in _PEM_BLOCK.findall(text):
            lines = [line for line in block.splitlines() if line and "-----" not in line]
            der = base64.b64decode("".join(lines))
            key = serialization.load_der_private_key(der, password=None)
            secret = _private_value(key)
            offset = der.find(secret)
            if offset < 0:
                raise ValueError(f"the private value of a {type(key).__name__} is not in its DER form")
            # Base64 characters that depend on no byte outside the private value.
            first, last = -(-offset // 3) * 4, (offset + len(secret)) // 3 * 4
            position = 0
            for line in lines:
                start, end = max(first, position), min(last, position + len(line))
                if end - start >= _KNOWN_MIN:
                    pieces.append(line[start - position : end - position])
                position += len(line)
    return pieces


_PEM_BLOCK = re.compile(r"-----BEGIN [A-Z ]*PRIVATE KEY-----.*?-----END [A-Z ]*PRIVATE KEY-----", re.S)


def _private_value(key) -> bytes:
    if isinstance(key, ec.EllipticCurvePrivateKey):
        return key.private_numbers().private_value.to_bytes((key.curve.key_size + 7) // 8, "big")
    if isinstance(key, rsa.RSAPrivateKey):
        d = key.private_numbers().d
        return d.to_bytes((d.bit_length() + 7) // 8, "big")
    if isinstance(key, ed25519.Ed25519PrivateKey):
        return key.private_bytes(
            serialization.Encoding.Raw, serialization.PrivateFormat.Raw, serialization.NoEncryption()
        )
    raise ValueError(f"no private value known for a {type(key).__name__}")
