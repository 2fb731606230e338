# -*- coding: utf-8 -*-
# Copyright: cloud58 platform team
# Apache License 2.0
"""Deterministic YAML and file names for rendered objects.

* keys sorted, block style, no anchors, multi-line strings as literal blocks;
* one object per file named ``<NN>_<kind>_<namespace>_<name>.yaml`` (``<NN>_<kind>_<name>.yaml``
  for cluster-scoped objects), where ``NN`` is the apply batch the engine derives from the
  kind, so a directory listing reads in apply order (the engine never relies on names).
  ``_`` never occurs in Kubernetes names, so names cannot collide; any character other
  than ``a-z 0-9 . -`` is written ``%xx``.
"""

from __future__ import annotations

import re

from ..gitops.clusterdir import CLUSTER_SCOPED_KINDS
from ..gitops.model import split_api_version
from ..gitops.order import rank_of
from .errors import RenderError

try:
    import yaml

    class _Dumper(getattr(yaml, "CSafeDumper", yaml.SafeDumper)):  # pylint: disable=too-many-ancestors
        """Safe dumper that never writes aliases."""

        def ignore_aliases(self, data):
            return True

    def _str(dumper, value):
        style = "|" if "\n" in value else None
        return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)

    _Dumper.add_representer(str, _str)
    HAS_YAML = True
except ImportError:  # pragma: no cover - reported by the module through missing_required_lib
    HAS_YAML = False

_UNSAFE = re.compile(r"[^a-z0-9.-]")


def dump_yaml(obj, header: str = "") -> str:
    """YAML text for ``obj``; ``header`` becomes leading ``#`` comment lines."""
    if not HAS_YAML:
        raise RenderError("the Python library PyYAML is required to render manifests")
    body = yaml.dump(
        obj, Dumper=_Dumper, sort_keys=True, default_flow_style=False, allow_unicode=True, width=4096
    )
    lines = "".join(f"# {line}\n".replace("# \n", "#\n") for line in header.splitlines()) if header else ""
    return lines + body


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
