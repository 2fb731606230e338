# -*- coding: utf-8 -*-
# Copyright: cloud58 platform team
# Apache License 2.0
"""Node load annotations (the job cloud58-loadannotator): figures in, the annotation patch out (pure).

Each Node carries its recent real load in four annotations, the input of load-aware
scheduling and descheduling:

====================================  ========================================================
annotation                            value
====================================  ========================================================
``cloud58.io/load-cpu-1m``            busy share of the node's CPU time over the last 60 s
``cloud58.io/load-cpu-5m``            the same over the last 300 s
``cloud58.io/load-memory-1m``         share of the node's memory not available (MemAvailable),
                                      mean over the last 60 s
``cloud58.io/load-memory-5m``         the same over the last 300 s
====================================  ========================================================

Values are percent of the whole node (0..100) with one decimal, as strings (``"37.5"``). The
figures come from the node's cloud58-signals JSON (``averages.1m``/``averages.5m``,
``cpu_percent`` and ``memory_percent``). A figure the agent does not have yet (``null``) leaves
its annotation as it is. A Node is patched only when one of its annotations is missing, is not a
number, or differs from the new figure by more than the threshold (percentage points); the patch
holds only the annotations that changed, so other annotations are never touched.
"""

from __future__ import annotations

import math

ANNOTATIONS = {
    "cloud58.io/load-cpu-1m": ("1m", "cpu_percent"),
    "cloud58.io/load-cpu-5m": ("5m", "cpu_percent"),
    "cloud58.io/load-memory-1m": ("1m", "memory_percent"),
    "cloud58.io/load-memory-5m": ("5m", "memory_percent"),
}
DEFAULT_THRESHOLD = 1.0


class LoadError(ValueError):
    """A bad option or signals document; the message names the node, the field and the value."""


def check_threshold(value) -> float:
    if (
        isinstance(value, bool)
        or not isinstance(value, (int, float))
        or not math.isfinite(value)
        or value < 0
    ):
        raise LoadError(f"--threshold: {value!r} is not a number of percentage points >= 0")
    return float(value)


def figures(node: str, document) -> dict:
    """``{annotation: value}`` from a cloud58-signals document; figures still ``null`` are left out."""
    if not isinstance(document, dict) or not isinstance(document.get("averages"), dict):
        raise LoadError(
            f"node {node}: the signals document has no 'averages' mapping: {str(document)[:80]!r}"
        )
    found = {}
    for annotation, (window, key) in ANNOTATIONS.items():
        averages = document["averages"].get(window)
        if averages is None:
            continue  # the agent has no sample yet
        if not isinstance(averages, dict) or key not in averages:
            raise LoadError(f"node {node}: averages.{window} has no {key}: {str(averages)[:80]!r}")
        value = averages[key]
        if value is None:
            continue
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value <= 100:
            raise LoadError(f"node {node}: averages.{window}.{key}: {value!r} is not a percentage 0..100")
        found[annotation] = f"{value:.1f}"
    return found


def patch(current, wanted: dict, threshold: float) -> dict:
    """The annotations of ``wanted`` to write on a Node whose annotations are ``current``; {} for none."""
    current = current or {}
    changes = {}
    for annotation, value in wanted.items():
        try:
            old = float(current[annotation])
        except (KeyError, TypeError, ValueError):
            changes[annotation] = value
            continue
        if not math.isfinite(old) or abs(float(value) - old) > threshold:
            changes[annotation] = value
    return changes
