# -*- coding: utf-8 -*-
# Copyright: cloud58 platform team
# Apache License 2.0
"""Proving that a kubeconfig context points at the cluster its directory describes.

Each cluster holds an identity object created at provisioning: ConfigMap
``kube-system/cloud58-identity`` whose data names the cluster, its datacenter and a uid.
``cluster.yml`` records the values expected. Nothing is written to a cluster before the
two agree; an absent identity refuses too, unless the run bootstraps it explicitly.
"""

from __future__ import annotations

from ..kube.objects import IDENTITY_KEYS
from .errors import IdentityError


def check_identity(cluster: str, context: str, expected: dict, found: dict | None, *, where: str) -> None:
    """Raise IdentityError unless ``found`` (the live identity object, or None) matches ``expected``.

    ``expected`` maps the identity keys to values; ``where`` names the object
    (``ConfigMap kube-system/cloud58-identity``).
    """
    want = {key: str(expected.get(key, "")) for key in IDENTITY_KEYS}
    if found is None:
        raise IdentityError(
            f"cluster {cluster!r}: context {context!r} has no identity object {where}; refusing to write. "
            f"Expected {_fmt(want)}. If this is the first reconcile of a new cluster, rerun with "
            f"-e bootstrap_identity=true to create it"
        )
    data = found.get("data") or {}
    have = {key: str(data.get(key, "")) for key in IDENTITY_KEYS}
    if have != want:
        wrong = [key for key in IDENTITY_KEYS if have[key] != want[key]]
        raise IdentityError(
            f"cluster {cluster!r}: context {context!r} points at another cluster; refusing to write. "
            f"{where} holds {_fmt(have)}, expected {_fmt(want)} (differs in: {', '.join(wrong)})"
        )


def identity_matches(expected: dict, found: dict | None) -> bool:
    if found is None:
        return False
    data = found.get("data") or {}
    return all(str(data.get(key, "")) == str(expected.get(key, "")) for key in IDENTITY_KEYS)


def _fmt(values: dict) -> str:
    return ", ".join(f"{key}={values[key]!r}" for key in IDENTITY_KEYS)
