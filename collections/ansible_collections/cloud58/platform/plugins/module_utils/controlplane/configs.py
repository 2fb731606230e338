# -*- coding: utf-8 -*-
# Copyright: cloud58 platform team
# Apache License 2.0
"""The control plane's own configuration objects as dicts: kubeconfigs, the audit policy,
the encryption-at-rest configuration and the cluster identity object.

Key material never originates here: the encryption key is an argument (the PKI module makes
it with the operating system's random source), and kubeconfigs on the masters point at
certificate and key files instead of embedding them.
"""

from __future__ import annotations

import base64
import uuid

from ..kube.objects import (
    CLUSTER_LABEL,
    IDENTITY_NAME,
    IDENTITY_NAMESPACE,
    MANAGED_BY_LABEL,
    MANAGED_BY_VALUE,
)

# The same namespace render/targets.py derives the identity uid from: provisioning and the
# rendered clusters/<cluster>/cluster.yml agree on the uid without talking to each other.
_UID_NAMESPACE = uuid.UUID("6f6a3a52-6b1c-5b8e-9d1e-0c10ad58c1d5")
ENCRYPTION_KEY_BYTES = 32  # secretbox (XSalsa20-Poly1305) takes a 32-byte key


def kubeconfig(context, server, *, ca_file, cert_file, key_file, user):
    """A kubeconfig with one context whose credentials are file paths (no key inside)."""
    return {
        "apiVersion": "v1",
        "kind": "Config",
        "preferences": {},
        "current-context": context,
        "clusters": [{"name": context, "cluster": {"server": server, "certificate-authority": ca_file}}],
        "users": [{"name": user, "user": {"client-certificate": cert_file, "client-key": key_file}}],
        "contexts": [{"name": context, "context": {"cluster": context, "user": user}}],
    }


def embedded_kubeconfig(context, server, *, ca_pem: bytes, cert_pem: bytes, key_pem: bytes, user):
    """A kubeconfig carrying its CA, certificate and key (for people and tools off the masters)."""

    def b64(data):
        return base64.b64encode(data).decode("ascii")

    return {
        "apiVersion": "v1",
        "kind": "Config",
        "preferences": {},
        "current-context": context,
        "clusters": [
            {"name": context, "cluster": {"server": server, "certificate-authority-data": b64(ca_pem)}}
        ],
        "users": [
            {
                "name": user,
                "user": {"client-certificate-data": b64(cert_pem), "client-key-data": b64(key_pem)},
            }
        ],
        "contexts": [{"name": context, "context": {"cluster": context, "user": user}}],
    }


def audit_policy():
    """What the apiservers record: metadata for everything, request bodies for changes to
    workloads and RBAC, never the content of Secrets, tokens or ConfigMaps; the noisy
    read-only traffic of health checks and leader election is left out."""
    return {
        "apiVersion": "audit.k8s.io/v1",
        "kind": "Policy",
        "omitStages": ["RequestReceived"],
        "rules": [
            {
                "level": "None",
                "nonResourceURLs": ["/healthz*", "/livez*", "/readyz*", "/version", "/metrics"],
            },
            {
                "level": "None",
                "users": ["system:kube-controller-manager", "system:kube-scheduler"],
                "verbs": ["get", "update"],
                "resources": [{"group": "coordination.k8s.io", "resources": ["leases"]}],
                "namespaces": ["kube-system"],
            },
            {"level": "None", "resources": [{"group": "", "resources": ["events"]}]},
            {"level": "None", "resources": [{"group": "events.k8s.io", "resources": ["events"]}]},
            {
                "level": "None",
                "userGroups": ["system:nodes"],
                "verbs": ["get", "list", "watch"],
            },
            {
                "level": "Metadata",
                "resources": [
                    {"group": "", "resources": ["secrets", "configmaps", "serviceaccounts/token"]},
                    {"group": "authentication.k8s.io", "resources": ["tokenreviews"]},
                    {"group": "certificates.k8s.io", "resources": ["certificatesigningrequests"]},
                ],
            },
            {
                "level": "RequestResponse",
                "verbs": ["create", "update", "patch", "delete", "deletecollection"],
                "resources": [
                    {"group": "rbac.authorization.k8s.io"},
                    {"group": "admissionregistration.k8s.io"},
                    {"group": "apiextensions.k8s.io"},
                ],
            },
            {
                "level": "Request",
                "verbs": ["create", "update", "patch", "delete", "deletecollection"],
                "resources": [
                    {"group": ""},
                    {"group": "apps"},
                    {"group": "batch"},
                    {"group": "networking.k8s.io"},
                    {"group": "policy"},
                ],
            },
            {"level": "Metadata"},
        ],
    }


def encryption_config(key_b64: str, key_name: str = "key1"):
    """Secrets (and only Secrets) encrypted at rest with secretbox; reading older,
    unencrypted Secrets still works through the identity provider."""
    if not isinstance(key_b64, str):
        raise ValueError("the encryption key must be base64 text")
    try:
        raw = base64.b64decode(key_b64, validate=True)
    except (ValueError, TypeError) as e:
        raise ValueError("the encryption key is not valid base64") from e
    if len(raw) != ENCRYPTION_KEY_BYTES:
        raise ValueError(f"the encryption key must be {ENCRYPTION_KEY_BYTES} bytes, got {len(raw)}")
    return {
        "apiVersion": "apiserver.config.k8s.io/v1",
        "kind": "EncryptionConfiguration",
        "resources": [
            {
                "resources": ["secrets"],
                "providers": [
                    {"secretbox": {"keys": [{"name": key_name, "secret": key_b64}]}},
                    {"identity": {}},
                ],
            }
        ],
    }


def identity_uid(cluster: str, datacenter: str) -> str:
    return str(uuid.uuid5(_UID_NAMESPACE, f"{datacenter}/{cluster}"))


def identity_object(cluster: str, datacenter: str) -> dict:
    """ConfigMap kube-system/cloud58-identity: the object reconcile checks before writing."""
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {
            "name": IDENTITY_NAME,
            "namespace": IDENTITY_NAMESPACE,
            "labels": {MANAGED_BY_LABEL: MANAGED_BY_VALUE, CLUSTER_LABEL: cluster},
        },
        "data": {"cluster": cluster, "datacenter": datacenter, "uid": identity_uid(cluster, datacenter)},
    }
