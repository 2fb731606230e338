# -*- coding: utf-8 -*-
# Copyright: cloud58 platform team
# Apache License 2.0
"""Where Ansible read a value, or the YAML an error comes from: ``<file>:<line>``.

Controller-side only (filters and vars plugins): ansible-core 2.19 tags every value it
reads from YAML with its origin; earlier versions do not, and then nothing is known.
"""

from __future__ import annotations

try:
    from ansible._internal._datatag._tags import Origin
except ImportError:  # pragma: no cover - ansible-core before 2.19
    Origin = None


def origin_text(origin):
    """``<file>:<line>`` of an Origin tag, its path or description alone, or None."""
    if origin is None:
        return None
    if origin.path and origin.line_num:
        return f"{origin.path}:{origin.line_num}"
    return origin.path or origin.description or None


def origin_of(value):
    """Where Ansible read ``value``, or None."""
    return origin_text(Origin.get_tag(value)) if Origin is not None else None


def located_message(exc):
    """The message of an error, led by the file and line found in it or its causes."""
    message = getattr(exc, "message", None) or str(exc)
    seen = exc
    while seen is not None and Origin is not None:
        obj = getattr(seen, "obj", None)
        origin = obj if isinstance(obj, Origin) else (Origin.get_tag(obj) if obj is not None else None)
        if origin is not None and origin.path:
            where = origin_text(origin)
            return message if message.startswith(where) else f"{where}: {message}"
        seen = seen.__cause__ or seen.__context__
    return message
