# -*- coding: utf-8 -*-
# Copyright: cloud58 platform team
# Apache License 2.0
"""Deterministic YAML for manifests written on hosts that have no PyYAML.

``dump(obj)`` writes plain data (dicts, lists, strings, integers, floats, booleans, None)
as block YAML with sorted keys. A string stays unquoted only when it can be read back as
nothing but that string by YAML 1.1 and 1.2 readers (PyYAML, go-yaml in the kubelet);
everything else is written as a JSON string, which is valid double-quoted YAML. The unit
tests read every output back with PyYAML and compare with ``==``.
"""

from __future__ import annotations

import json
import re

_PLAIN = re.compile(r"^(?:--?[A-Za-z]|[A-Za-z_/])[A-Za-z0-9_./=,+@:;#%*-]*$")
# Words some YAML reader takes for a boolean or null (go-yaml v2 also reads y and n).
_RESERVED = {
    "y",
    "n",
    "yes",
    "no",
    "on",
    "off",
    "true",
    "false",
    "null",
}
_NUMBERISH = re.compile(r"^[-+]?(\.?[0-9]|\.(inf|nan))", re.IGNORECASE)


def _plain_ok(text: str) -> bool:
    if not _PLAIN.match(text) or text.endswith(":") or text.lower() in _RESERVED:
        return False
    return not _NUMBERISH.match(text)


def scalar(value) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        text = repr(value)
        if text in ("inf", "-inf", "nan"):
            raise ValueError(f"{value!r} has no portable YAML form")
        return text if ("." in text and "e" not in text) else json.dumps(value)
    if isinstance(value, str):
        return value if _plain_ok(value) else json.dumps(value)
    raise TypeError(f"cannot write {type(value).__name__} {value!r} as YAML")


def _key(key) -> str:
    if not isinstance(key, str):
        raise TypeError(f"mapping keys must be strings, got {key!r}")
    return scalar(key)


def _is_collection(value) -> bool:
    return isinstance(value, (dict, list, tuple))


def _empty(value) -> str:
    return "{}" if isinstance(value, dict) else "[]"


def _emit(value, indent: int, out: list, first_prefix: str | None = None) -> None:
    """Emit a non-empty collection at ``indent``; the first line may start with ``first_prefix``."""
    pad = " " * indent
    lines = []
    if isinstance(value, dict):
        for key in sorted(value):
            item = value[key]
            head = f"{_key(key)}:"
            if _is_collection(item) and item:
                lines.append((head, item, indent + 2 if isinstance(item, dict) else indent))
            elif _is_collection(item):
                lines.append((f"{head} {_empty(item)}", None, 0))
            else:
                lines.append((f"{head} {scalar(item)}", None, 0))
    else:
        for item in value:
            if _is_collection(item) and item:
                lines.append(("-", item, indent + 2))
            elif _is_collection(item):
                lines.append((f"- {_empty(item)}", None, 0))
            else:
                lines.append((f"- {scalar(item)}", None, 0))
    for index, (text, child, child_indent) in enumerate(lines):
        prefix = first_prefix if (index == 0 and first_prefix is not None) else pad
        if child is None:
            out.append(prefix + text)
        elif text == "-":
            # A list item that is a collection: its first line shares the dash.
            _emit(child, child_indent, out, first_prefix=prefix + "- ")
        else:
            out.append(prefix + text)
            _emit(child, child_indent, out)


def dump(obj) -> str:
    """``obj`` as YAML text ending in a newline."""
    if not _is_collection(obj):
        return scalar(obj) + "\n"
    if not obj:
        return _empty(obj) + "\n"
    out: list = []
    _emit(obj, 0, out)
    return "\n".join(out) + "\n"
