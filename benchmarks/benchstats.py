# -*- coding: utf-8 -*-
# Copyright: cloud58 platform team
# Apache License 2.0
"""What the benchmarks share: the size to run at and how a figure of several runs is printed.

``CLOUD58_BENCH_SIZE`` is ``full`` (``make bench``, the default) or ``ci`` (``make test``,
smaller so that the bench tier stays inside CI's time); each benchmark says what the size
means for it and prints the size it ran at.

A figure taken several times is printed as its median, with every run and the spread
(min-max) on the same line after a ``#``:

    BENCH reconcile_noop_playbook_s 1.93  # median of 3: 1.88 1.93 2.05 (min-max 1.88-2.05)
"""

from __future__ import annotations

import os
import statistics
from collections.abc import Sequence

SIZES = ("full", "ci")


def bench_size() -> str:
    size = os.environ.get("CLOUD58_BENCH_SIZE", "full") or "full"
    if size not in SIZES:
        raise SystemExit(f"CLOUD58_BENCH_SIZE={size!r}: use one of {', '.join(SIZES)}")
    return size


def figure(name: str, values: Sequence[float], digits: int = 2) -> str:
    """``BENCH <name> <median>`` followed by the runs and their spread."""
    if not values:
        raise ValueError(f"{name}: no runs")
    med = statistics.median(values)
    if len(values) == 1:
        return f"BENCH {name} {med:.{digits}f}  # one run"
    runs = " ".join(f"{v:.{digits}f}" for v in values)
    return (
        f"BENCH {name} {med:.{digits}f}  # median of {len(values)}: {runs}"
        f" (min-max {min(values):.{digits}f}-{max(values):.{digits}f})"
    )


def percentile(values: Sequence[float], fraction: float) -> float:
    """The value at ``fraction`` (0-1) of the sorted ``values``, by nearest rank (no interpolation)."""
    if not values:
        raise ValueError("percentile of no values")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(fraction * (len(ordered) - 1)))]
