# -*- coding: utf-8 -*-
# Copyright: cloud58 platform team
# Apache License 2.0
"""The Calico release's manifest, set up for one cluster of the plan.

The release (``calico.yaml``: CRDs, RBAC, the calico-node DaemonSet, kube-controllers) comes
from the operator's mirror, checked against its sha256 by the role ``cloud58.platform.calico``.
:func:`calico_install` changes only what cloud58's network design needs of it and leaves every
other line of the release as it is:

* calico-node speaks BGP with BIRD (``CALICO_NETWORKING_BACKEND=bird``, and ``calico_backend:
  bird`` in the ``calico-config`` ConfigMap), with no overlay (``CALICO_IPV4POOL_IPIP`` and
  ``CALICO_IPV4POOL_VXLAN`` ``Never``): pod routes go to the ToRs as they are;
* ``NO_DEFAULT_POOLS=true``: the per-rack ``IPPool`` objects of ``clusters/<cluster>/`` are the
  only pools; ``CALICO_IPV4POOL_CIDR`` is still set to the cluster's pod CIDR, so a node that
  started before they exist cannot invent the release's default ``192.168.0.0/16``;
* ``IP_AUTODETECTION_METHOD=cidr=<node subnets>``: the node address calico-node peers from is
  the one in its rack's node subnet (masters and minions have other interfaces too).

A manifest without the ``kube-system/calico-node`` DaemonSet and its ``calico-node``
container is refused: it is not the release this was written for.
"""

from __future__ import annotations

import re

from .fabric import BgpError

try:
    import yaml

    HAS_YAML = True
except ImportError:  # pragma: no cover - the filter runs on the controller, which has PyYAML
    HAS_YAML = False

NODE_CONTAINER = "calico-node"
SHA256 = re.compile(r"[0-9a-fA-F]{64}")


def release_problem(url, sha256, version, inventory_sources) -> str:
    """Why the release named by ``calico_manifest_url`` and ``calico_manifest_sha256`` cannot be
    fetched and verified: ``""`` when nothing stands in the way, else one line naming the
    variable, its value and the inventory, and what to set. cloud58 ships no digest, so an
    unset one is the usual case until the operator computes it."""
    if url is None or url == "":
        problem = "calico_manifest_url is not set"
    elif not isinstance(url, str):
        problem = f"calico_manifest_url is {url!r} ({type(url).__name__}), not a URL"
    elif sha256 is None or sha256 == "":
        problem = "calico_manifest_sha256 is not set"
    elif not isinstance(sha256, str) or not SHA256.fullmatch(sha256):
        problem = f"calico_manifest_sha256 is {sha256!r}, not 64 hex digits"
    else:
        return ""
    sources = [inventory_sources] if isinstance(inventory_sources, str) else list(inventory_sources or [])
    return (
        f"{problem} (inventory {', '.join(str(s) for s in sources) or '?'}): set calico_manifest_url "
        f"to Calico {version}'s manifests/calico.yaml on your mirror and calico_manifest_sha256 to its "
        "sha256, computed where the release is reachable (sha256sum calico.yaml), in group_vars/all; "
        "cloud58 ships no digest it has not verified. Or set calico_install: false to leave Calico out."
    )


def node_env(plan, cluster: str) -> dict:
    """The environment variables of the calico-node container that cloud58 sets."""
    try:
        spec = plan["clusters"][cluster]
        dc = plan["datacenters"][spec["datacenter"]]
    except KeyError as e:
        raise BgpError(f"the plan has no cluster {cluster!r}") from e
    nodes = set(spec["nodes"])
    subnets = sorted({rack["node_subnet"] for rack in dc["racks"].values() if nodes & set(rack["hosts"])})
    return {
        "CALICO_IPV4POOL_CIDR": spec["pod_cidr"],
        "CALICO_IPV4POOL_IPIP": "Never",
        "CALICO_IPV4POOL_VXLAN": "Never",
        "CALICO_NETWORKING_BACKEND": "bird",
        "IP_AUTODETECTION_METHOD": "cidr=" + ",".join(subnets),
        "NO_DEFAULT_POOLS": "true",
    }


def _is(doc, kind: str, name: str) -> bool:
    meta = doc.get("metadata") or {}
    return (
        doc.get("kind") == kind
        and meta.get("name") == name
        and meta.get("namespace", "kube-system") == "kube-system"
    )


def calico_install(manifest: str, plan, cluster: str, source: str = "the manifest") -> str:
    """``manifest`` (the release's multi-document YAML) set up for ``cluster``, as YAML.

    ``source`` names the manifest in errors (its URL or file)."""
    if not HAS_YAML:  # pragma: no cover
        raise BgpError("calico_install needs PyYAML on the controller")
    try:
        docs = [d for d in yaml.safe_load_all(manifest) if d is not None]
    except yaml.YAMLError as e:
        raise BgpError(f"{source} is not YAML: {e}") from e
    if not all(isinstance(d, dict) for d in docs):
        raise BgpError(f"{source} holds a document that is not a Kubernetes object")
    env = node_env(plan, cluster)
    daemonsets = [d for d in docs if _is(d, "DaemonSet", "calico-node")]
    containers = [
        c
        for d in daemonsets
        for c in ((d.get("spec") or {}).get("template") or {}).get("spec", {}).get("containers") or []
        if c.get("name") == NODE_CONTAINER
    ]
    if len(containers) != 1:
        raise BgpError(
            f"{source} has no DaemonSet kube-system/calico-node with a container {NODE_CONTAINER!r}: "
            "it is not a Calico release manifest (manifests/calico.yaml)"
        )
    container = containers[0]
    entries = container.get("env") or []
    container["env"] = entries
    for entry in entries:
        if entry.get("name") in env:
            entry.pop("valueFrom", None)
            entry["value"] = env.pop(entry["name"])
    entries.extend({"name": name, "value": value} for name, value in sorted(env.items()))
    for doc in docs:
        if _is(doc, "ConfigMap", "calico-config"):
            doc.setdefault("data", {})["calico_backend"] = "bird"
    return yaml.safe_dump_all(docs, explicit_start=True, sort_keys=False, default_flow_style=False)
