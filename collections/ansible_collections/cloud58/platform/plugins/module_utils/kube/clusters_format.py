# -*- coding: utf-8 -*-
# Copyright: cloud58 platform team
# Apache License 2.0
"""The ``clusters/`` file format, and the one YAML loader and dumper it is read and written with.

Layout::

    clusters/<cluster>/cluster.yml     context, datacenter, identity, options, prune_kinds,
                                       node_annotations
    clusters/<cluster>/**/*.yaml       one Kubernetes object per file

YAML written here: keys sorted, block style, no anchors, multi-line strings as literal
blocks. YAML read here: safe, a key twice in one mapping is an error, timestamps stay
strings (as the Kubernetes API reads them).
"""

from __future__ import annotations

from .errors import GitOpsError

try:
    import yaml

    class UniqueKeyLoader(getattr(yaml, "CSafeLoader", yaml.SafeLoader)):  # pylint: disable=too-many-ancestors
        """Safe YAML that refuses a mapping holding a key twice (PyYAML keeps the last one silently)."""

        def construct_mapping(self, node, deep=False):
            seen = set()
            for key_node, _value_node in node.value:
                if key_node.tag == "tag:yaml.org,2002:merge":
                    continue
                key = self.construct_object(key_node, deep=True)
                if isinstance(key, (str, int, float, bool)) or key is None:
                    if key in seen:
                        raise _duplicate_key(node, key_node, key)
                    seen.add(key)
            return super().construct_mapping(node, deep=deep)

    _Loader = UniqueKeyLoader

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

CLUSTER_FILE = "cluster.yml"
MANIFEST_SUFFIXES = (".yaml", ".yml")

_STR_TAGS = frozenset({"tag:yaml.org,2002:str", "tag:yaml.org,2002:timestamp"})
_MERGE_TAG = "tag:yaml.org,2002:merge"


class _MergeKey(Exception):
    """A ``<<`` merge key: left to PyYAML's full constructor."""


def load_yaml_documents(path: str) -> list:
    """Every document of a YAML file, refusing duplicate keys.

    Twice as fast as PyYAML's constructor on manifests (which matters for a no-op run over
    thousands of files): libyaml composes the nodes, plain strings are taken as they are,
    only other scalars go through the safe constructor. Timestamps stay strings, as the
    Kubernetes API reads them. Files with merge keys take the full constructor.
    """
    with open(path, "rb") as handle:
        return parse_yaml_documents(handle.read())


def parse_yaml_documents(data: bytes) -> list:
    """``load_yaml_documents`` on the bytes of a file."""
    loader = _Loader(data)
    try:
        docs = []
        while loader.check_node():
            docs.append(_convert(loader, loader.get_node()))
        return [doc for doc in docs if doc is not None]
    except _MergeKey:
        pass
    finally:
        loader.dispose()
    return [doc for doc in yaml.load_all(data, Loader=_Loader) if doc is not None]


def _duplicate_key(node, key_node, key):
    """The error for a key written twice in one mapping, with both marks (file, line)."""
    return yaml.constructor.ConstructorError(
        "while constructing a mapping", node.start_mark, f"found duplicate key {key!r}", key_node.start_mark
    )


def _convert(loader, node):
    if isinstance(node, yaml.ScalarNode):
        return node.value if node.tag in _STR_TAGS else loader.construct_object(node, deep=True)
    if isinstance(node, yaml.SequenceNode):
        return [_convert(loader, item) for item in node.value]
    out = {}
    for key_node, value_node in node.value:
        if key_node.tag == _MERGE_TAG:
            raise _MergeKey()
        key = _convert(loader, key_node)
        if key in out:
            raise _duplicate_key(node, key_node, key)
        out[key] = _convert(loader, value_node)
    return out


def dump_yaml(obj, header: str = "") -> str:
    """YAML text for ``obj``; ``header`` becomes leading ``#`` comment lines."""
    if not HAS_YAML:
        raise GitOpsError("the Python library PyYAML is required to render manifests")
    body = yaml.dump(
        obj, Dumper=_Dumper, sort_keys=True, default_flow_style=False, allow_unicode=True, width=4096
    )
    lines = "".join(f"# {line}\n".replace("# \n", "#\n") for line in header.splitlines()) if header else ""
    return lines + body
