# -*- coding: utf-8 -*-
# Copyright: cloud58 platform team
# Apache License 2.0
"""A PKI directory on the controller (a cluster's, or Consul's): read what exists, issue what
is missing.

Rules, per item of the PKI plan:

* nothing there: a new key and certificate ("issued");
* a key without a certificate: a certificate for that key ("issued");
* a certificate that expires within ``renew_before_days``, whose SANs, subject or usages
  differ from the plan, or that another CA signed: a new certificate for the same key from
  the same CA ("renewed" / "reissued", with the reason);
* a certificate without its key, or a certificate and key that do not belong together:
  refused (PkiError) — fixing it means a new key, which a person decides;
* anything else is kept, byte for byte.

CAs are renewed the same way (same key, same subject), so certificates they signed before
stay valid. Keys are written 0600 in 0700 directories, atomically; ``check_mode`` computes
the same result and writes nothing. Results name files and reasons, never key material.
"""

from __future__ import annotations

import base64
import datetime
import os
import secrets
import tempfile

from ..pki import x509 as px
from .configs import ENCRYPTION_KEY_BYTES, embedded_kubeconfig, encryption_config
from .pki_plan import ENCRYPTION_CONFIG
from .yamlout import dump

ADMIN_KUBECONFIG = "admin.kubeconfig"


class _Dir:
    """Reads and (unless in check mode) writes files of one PKI directory."""

    def __init__(self, root: str, check_mode: bool) -> None:
        self.root = root
        self.check_mode = check_mode
        self.pending: dict = {}  # what check mode would have written, so later steps see it

    def path(self, rel: str) -> str:
        return os.path.join(self.root, rel)

    def read(self, rel: str):
        if rel in self.pending:
            return self.pending[rel]
        try:
            with open(self.path(rel), "rb") as f:
                return f.read()
        except FileNotFoundError:
            return None
        except OSError as e:
            raise px.PkiError(f"{self.path(rel)}: cannot read: {e.strerror}") from e

    def write(self, rel: str, data: bytes, secret: bool) -> None:
        if self.check_mode:
            self.pending[rel] = data
            return
        path = self.path(rel)
        directory = os.path.dirname(path)
        os.makedirs(directory, mode=0o700, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=directory, prefix=".tmp-")
        try:
            os.fchmod(fd, 0o600 if secret else 0o644)
            with os.fdopen(fd, "wb") as f:
                f.write(data)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, path)
        except BaseException:
            if os.path.exists(tmp):
                os.unlink(tmp)
            raise

    def fix_mode(self, rel: str, secret: bool) -> bool:
        """Tighten a key file that is readable by others; True if it was (or would be) changed."""
        path = self.path(rel)
        if rel in self.pending or not os.path.exists(path):
            return False
        want = 0o600 if secret else 0o644
        if os.stat(path).st_mode & 0o777 == want:
            return False
        if not self.check_mode:
            os.chmod(path, want)
        return True


def _expiry(cert) -> str:
    return cert.not_valid_after_utc.strftime("%Y-%m-%dT%H:%M:%SZ")


class _Result:
    def __init__(self) -> None:
        self.actions: list = []
        self.expiry: dict = {}

    def add(self, name: str, action: str, reason: str = "") -> None:
        entry = {"name": name, "action": action}
        if reason:
            entry["reason"] = reason
        self.actions.append(entry)

    @property
    def changed(self) -> bool:
        return any(a["action"] != "kept" for a in self.actions)


def _ca(store: _Dir, spec: dict, *, key_type: str, days: int, renew_before, now, result: _Result):
    name = spec["name"]
    key_data, cert_data = store.read(f"{name}.key"), store.read(f"{name}.crt")
    if cert_data is not None and key_data is None:
        raise px.PkiError(
            f"{store.path(name + '.crt')} exists without its key {name}.key: the CA cannot sign. "
            "Restore the key, or remove the CA (and everything it signed) to start a new one"
        )
    key = px.load_key(key_data, store.path(f"{name}.key")) if key_data else px.generate_key(key_type)
    if key_data is None:
        store.write(f"{name}.key", px.key_pem(key), secret=True)
    if store.fix_mode(f"{name}.key", secret=True):
        result.add(f"{name}.key", "mode", "was readable by others; now 0600")
    if cert_data is None:
        cert = px.make_ca(key, spec["common_name"], days, now)
        store.write(f"{name}.crt", px.cert_pem(cert), secret=False)
        result.add(name, "issued")
    else:
        cert = px.load_cert(cert_data, store.path(f"{name}.crt"))
        if not px.same_public_key(cert, key):
            raise px.PkiError(f"{store.path(name + '.crt')} does not belong to {name}.key")
        if cert.not_valid_after_utc <= now + renew_before:
            old = _expiry(cert)
            cert = px.make_ca(key, spec["common_name"], days, now)
            store.write(f"{name}.crt", px.cert_pem(cert), secret=False)
            result.add(name, "renewed", f"expired or expiring at {old}")
        else:
            result.add(name, "kept")
    result.expiry[name] = _expiry(cert)
    return cert, key


def _leaf(store: _Dir, spec: dict, *, ca, key_type, days, renew_before, now, result: _Result):
    name = spec["name"]
    ca_cert, ca_key = ca
    key_data, cert_data = store.read(f"{name}.key"), store.read(f"{name}.crt")
    if cert_data is not None and key_data is None:
        raise px.PkiError(
            f"{store.path(name + '.crt')} exists without its key {name}.key; remove the certificate "
            "to issue a new key and certificate"
        )
    key = px.load_key(key_data, store.path(f"{name}.key")) if key_data else px.generate_key(key_type)
    if key_data is None:
        store.write(f"{name}.key", px.key_pem(key), secret=True)
    if store.fix_mode(f"{name}.key", secret=True):
        result.add(f"{name}.key", "mode", "was readable by others; now 0600")
    reason, action = "", "issued"
    if cert_data is not None:
        cert = px.load_cert(cert_data, store.path(f"{name}.crt"))
        if not px.same_public_key(cert, key):
            raise px.PkiError(
                f"{store.path(name + '.crt')} does not belong to {name}.key; remove both to issue new ones"
            )
        differences = px.identity_differences(cert, spec)
        if not px.signed_by(cert, ca_cert):
            reason, action = f"not signed by the current {spec['ca']}", "reissued"
        elif differences:
            reason, action = "; ".join(differences), "reissued"
        elif cert.not_valid_after_utc <= now + renew_before:
            reason, action = f"expired or expiring at {_expiry(cert)}", "renewed"
        else:
            result.add(name, "kept")
            result.expiry[name] = _expiry(cert)
            return
    cert = px.make_leaf(spec, key, ca_cert=ca_cert, ca_key=ca_key, days=days, now=now)
    store.write(f"{name}.crt", px.cert_pem(cert), secret=False)
    result.add(name, action, reason)
    result.expiry[name] = _expiry(cert)


def _signing_key(store: _Dir, name: str, key_type: str, result: _Result) -> None:
    key_data = store.read(f"{name}.key")
    if key_data is None:
        key = px.generate_key(key_type)
        store.write(f"{name}.key", px.key_pem(key), secret=True)
        result.add(f"{name}.key", "issued")
    else:
        key = px.load_key(key_data, store.path(f"{name}.key"))
        result.add(f"{name}.key", "kept")
    if store.fix_mode(f"{name}.key", secret=True):
        result.add(f"{name}.key", "mode", "was readable by others; now 0600")
    public = px.public_pem(key)
    if store.read(f"{name}.pub") != public:
        store.write(f"{name}.pub", public, secret=False)
        result.add(f"{name}.pub", "issued", "derived from the key")


def _encryption(store: _Dir, result: _Result) -> None:
    if store.read(ENCRYPTION_CONFIG) is not None:
        result.add(ENCRYPTION_CONFIG, "kept")
    else:
        key = base64.b64encode(secrets.token_bytes(ENCRYPTION_KEY_BYTES)).decode("ascii")
        store.write(ENCRYPTION_CONFIG, dump(encryption_config(key)).encode(), secret=True)
        result.add(ENCRYPTION_CONFIG, "issued")
    if store.fix_mode(ENCRYPTION_CONFIG, secret=True):
        result.add(ENCRYPTION_CONFIG, "mode", "was readable by others; now 0600")


def _admin_kubeconfig(store: _Dir, context: str, server: str, result: _Result) -> None:
    data = dump(
        embedded_kubeconfig(
            context,
            server,
            ca_pem=store.read("ca.crt"),
            cert_pem=store.read("admin.crt"),
            key_pem=store.read("admin.key"),
            user="cloud58-admin",
        )
    ).encode()
    before = store.read(ADMIN_KUBECONFIG)
    if before == data:
        result.add(ADMIN_KUBECONFIG, "kept")
    else:
        store.write(ADMIN_KUBECONFIG, data, secret=True)
        result.add(
            ADMIN_KUBECONFIG,
            "issued" if before is None else "updated",
            "" if before is None else "admin certificate changed",
        )


def ensure_pki(
    directory: str,
    plan: dict,
    *,
    context: str = "",
    server: str = "",
    key_type: str = "ecdsa-p256",
    ca_days: int = 3650,
    cert_days: int = 365,
    renew_before_days: int = 0,
    check_mode: bool = False,
    now=None,
    cluster_files: bool = True,
) -> dict:
    """Bring ``directory`` in line with ``plan`` (controlplane.pki_plan, or another plan of the
    same shape such as consul.consul_pki_plan); returns
    ``{"changed", "actions": [{"name", "action", "reason"}], "expiry": {name: date}}``.
    ``cluster_files``: also the encryption-at-rest configuration and the admin kubeconfig
    (``context``, ``server``) that a cluster's directory holds."""
    if key_type not in px.KEY_TYPES:
        raise px.PkiError(f"unknown key type {key_type!r} (known: {', '.join(px.KEY_TYPES)})")
    if not 0 <= renew_before_days < cert_days:
        raise px.PkiError(
            f"renew_before_days {renew_before_days} must be from 0 to below cert_days {cert_days}"
        )
    now = now or px.utcnow()
    renew_before = datetime.timedelta(days=renew_before_days)
    store = _Dir(directory, check_mode)
    if not check_mode:
        os.makedirs(directory, mode=0o700, exist_ok=True)
    result = _Result()
    cas = {
        spec["name"]: _ca(
            store, spec, key_type=key_type, days=ca_days, renew_before=renew_before, now=now, result=result
        )
        for spec in plan["cas"]
    }
    for spec in plan["certs"]:
        _leaf(
            store,
            spec,
            ca=cas[spec["ca"]],
            key_type=key_type,
            days=cert_days,
            renew_before=renew_before,
            now=now,
            result=result,
        )
    for name in plan["signing_keys"]:
        _signing_key(store, name, key_type, result)
    if cluster_files:
        _encryption(store, result)
        _admin_kubeconfig(store, context, server, result)
    return {"changed": result.changed, "actions": result.actions, "expiry": result.expiry}
