# -*- coding: utf-8 -*-
# Copyright: cloud58 platform team
# Apache License 2.0
"""Desired-versus-live comparison on the fields Git manages.

A live object holds everything the API server defaulted or other controllers wrote; the
desired manifest holds only what we manage. So the comparison walks the desired manifest
and asks, for each field it holds, whether the live object agrees:

* a field missing from live is equal when the desired value is a zero value (the API
  drops ``false``, ``0``, ``""``, ``[]`` and ``{}`` from many fields);
* resource quantities compare by value (``"500m"`` equals ``"0.5"``, ``"1Gi"`` equals
  ``"1024Mi"``, ``2`` equals ``"2"``);
* lists of named items (containers, env, volumes, ports ...) match items by key, so
  items other field managers added do not count as drift; other lists compare by
  position and length;
* ``true`` never equals ``1``.

The result is the list of field paths that differ, empty when the object is in sync.
"""

from __future__ import annotations

import base64

from ..kube.quantity import parse_quantity

# Maps whose values are resource quantities (resources.limits/requests, quota hard,
# LimitRange bounds, node capacity ...).
_QUANTITY_MAPS = frozenset(
    {
        "limits",
        "requests",
        "hard",
        "capacity",
        "allocatable",
        "overhead",
        "default",
        "defaultRequest",
        "max",
        "min",
        "maxLimitRequestRatio",
    }
)
# Scalar fields that are quantities wherever they appear.
_QUANTITY_FIELDS = frozenset({"sizeLimit", "averageValue"})

# Keys that identify items of associative lists, tried in this order.
_LIST_KEYS = (("name",), ("mountPath",), ("containerPort", "protocol"), ("port", "protocol"), ("ip",))
_KEY_DEFAULTS = {"protocol": "TCP"}


def is_zero(value) -> bool:
    """True for the values the API server omits when it serialises an object."""
    if value is None or value is False or value in ("", [], {}):
        return True
    return value == 0 and not isinstance(value, bool)


def differences(desired, live, path: str = "") -> list[str]:
    """Paths of the fields of ``desired`` whose value ``live`` does not hold. Empty means in sync."""
    out: list[str] = []
    _walk(desired, live, path, (None, None), out)
    return out


def object_differences(desired: dict, live: dict) -> list[str]:
    """``differences`` for whole objects, with the per-kind normalisations the API applies."""
    return differences(normalise_desired(desired), live)


def normalise_desired(obj: dict) -> dict:
    """Rewrite write-only forms into what a read returns (Secret ``stringData`` -> ``data``)."""
    if obj.get("kind") != "Secret" or "stringData" not in obj:
        return obj
    out = dict(obj)
    data = dict(out.get("data") or {})
    for key, text in (out.pop("stringData") or {}).items():
        data[key] = base64.b64encode(str(text).encode("utf-8")).decode("ascii")
    out["data"] = data
    return out


def _walk(desired, live, path: str, keys: tuple, out: list[str]) -> None:
    """``keys`` is (the key of this value, the key of the map holding it)."""
    if isinstance(desired, dict):
        if not isinstance(live, dict):
            out.append(path or ".")
            return
        for key in sorted(desired):
            value = desired[key]
            sub = f"{path}.{key}" if path else key
            if key not in live:
                if not is_zero(value):
                    out.append(sub)
                continue
            _walk(value, live[key], sub, (key, keys[0]), out)
        return
    if isinstance(desired, list):
        if live is None and not desired:
            return
        if not isinstance(live, list):
            out.append(path)
            return
        _walk_list(desired, live, path, out)
        return
    if not _scalar_equal(desired, live, keys):
        out.append(path)


def _walk_list(desired: list, live: list, path: str, out: list[str]) -> None:
    item_keys = _list_keys(desired)
    if item_keys is None:
        if len(desired) != len(live):
            out.append(path)
            return
        for index, want in enumerate(desired):
            _walk(want, live[index], f"{path}[{index}]", (None, None), out)
        return
    by_key = {}
    for item in live:
        if isinstance(item, dict):
            by_key.setdefault(_item_key(item, item_keys), item)
    for want in desired:
        ident = _item_key(want, item_keys)
        label = ",".join(str(part) for part in ident)
        have = by_key.get(ident)
        if have is None:
            out.append(f"{path}[{label}]")
            continue
        _walk(want, have, f"{path}[{label}]", (None, None), out)


def _list_keys(items: list) -> tuple | None:
    if not items or not all(isinstance(item, dict) for item in items):
        return None
    for keys in _LIST_KEYS:
        if all(keys[0] in item for item in items):
            return keys
    return None


def _item_key(item: dict, keys: tuple) -> tuple:
    return tuple(item.get(key, _KEY_DEFAULTS.get(key)) for key in keys)


def _scalar_equal(desired, live, keys: tuple) -> bool:
    key, parent_key = keys
    if isinstance(desired, bool) or isinstance(live, bool):
        return desired is live or (is_zero(desired) and live is None)
    if desired == live:
        return True
    if parent_key in _QUANTITY_MAPS or key in _QUANTITY_FIELDS:
        try:
            return parse_quantity(desired) == parse_quantity(live)
        except ValueError:
            return False
    return False
