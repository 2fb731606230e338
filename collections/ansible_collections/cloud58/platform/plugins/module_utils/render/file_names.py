# -*- coding: utf-8 -*-
# Copyright: cloud58 platform team
# Apache License 2.0
"""File names for rendered objects (their YAML is ``kube/clusters_format.dump_yaml``).

One object per file named ``<NN>_<kind>_<namespace>_<name>.yaml`` (``<NN>_<kind>_<name>.yaml``
for cluster-scoped objects), where ``NN`` is the apply batch the engine derives from the
kind, so a directory listing reads in apply order (the engine never relies on names).
``_`` never occurs in Kubernetes names, so names cannot collide; any character other than
``a-z 0-9 . -`` is written ``%xx``.
"""

from __future__ import annotations

import re

from ..kube.objects import CLUSTER_SCOPED_KINDS, split_api_version
from ..kube.order import rank_of

_UNSAFE = re.compile(r"[^a-z0-9.-]")


def is_namespaced(obj: dict) -> bool:
    return bool((obj.get("metadata") or {}).get("namespace")) and obj["kind"] not in CLUSTER_SCOPED_KINDS


def file_name(obj: dict) -> str:
    """``<NN>_<kind>_<namespace>_<name>.yaml``; NN orders files the way the engine applies them."""
    group, _version = split_api_version(obj["apiVersion"])
    namespaced = is_namespaced(obj)
    phase, rank, _tie = rank_of(group, obj["kind"], namespaced)
    prefix = f"{phase}{min(rank, 9)}"
    parts = [prefix, obj["kind"].lower()]
    if namespaced:
        parts.append(obj["metadata"]["namespace"])
    parts.append(obj["metadata"]["name"])
    return "_".join(_UNSAFE.sub(_escape, part) for part in parts) + ".yaml"


def _escape(match) -> str:
    return "".join(f"%{byte:02x}" for byte in match.group().encode("utf-8"))
