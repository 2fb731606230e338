# -*- coding: utf-8 -*-
# Copyright: cloud58 platform team
# Apache License 2.0
"""Kubernetes resource quantities (``"500m"``, ``"1Gi"``, ``2``) as exact numbers."""

from __future__ import annotations

from fractions import Fraction

# A non-negative quantity as Kubernetes spells it: a decimal number, then an exponent or one
# suffix (decimal SI or binary). For schemas (JSON schema ``pattern``); parse_quantity reads it.
QUANTITY_PATTERN = r"^[+]?([0-9]+(\.[0-9]*)?|\.[0-9]+)([eE][-+]?[0-9]+|[numkMGTPE]|[KMGTPE]i)?$"

_BINARY = {"Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40, "Pi": 2**50, "Ei": 2**60}
_DECIMAL = {
    "n": Fraction(1, 10**9),
    "u": Fraction(1, 10**6),
    "m": Fraction(1, 1000),
    "": Fraction(1),
    "k": Fraction(10**3),
    "M": Fraction(10**6),
    "G": Fraction(10**9),
    "T": Fraction(10**12),
    "P": Fraction(10**15),
    "E": Fraction(10**18),
}


def parse_quantity(value) -> Fraction:
    """A Kubernetes quantity as an exact number. Raises ValueError when it is not one."""
    if isinstance(value, bool):
        raise ValueError(f"not a quantity: {value!r}")
    if isinstance(value, int):
        return Fraction(value)
    if isinstance(value, float):
        return Fraction(str(value))
    if not isinstance(value, str) or not value.strip():
        raise ValueError(f"not a quantity: {value!r}")
    text = value.strip()
    for suffix, factor in _BINARY.items():
        if text.endswith(suffix):
            return _number(text[: -len(suffix)], value) * factor
    lowered = text.lower()
    if "e" in lowered and not text.endswith("E"):
        mantissa, _sep, exponent = lowered.partition("e")
        try:
            return _number(mantissa, value) * Fraction(10) ** int(exponent)
        except ValueError as e:
            raise ValueError(f"not a quantity: {value!r}") from e
    suffix = text[-1] if text[-1] in _DECIMAL and not text[-1].isdigit() else ""
    return _number(text[: len(text) - len(suffix)], value) * _DECIMAL[suffix]


def _number(text: str, original) -> Fraction:
    if not text or text in {"+", "-", "."}:
        raise ValueError(f"not a quantity: {original!r}")
    try:
        return Fraction(text)
    except (ValueError, ZeroDivisionError) as e:
        raise ValueError(f"not a quantity: {original!r}") from e
