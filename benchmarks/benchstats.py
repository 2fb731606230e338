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
import subprocess
import time
from collections.abc import Sequence
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]

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


def speedup(name: str, theirs: Sequence[float], ours: Sequence[float], their: str, our: str) -> str:
    """``BENCH <name> <their median / our median>`` with the spread of the two runs' extremes:
    ``their``/``our`` name the two ways in the comment (naive, sync)."""
    ratio = statistics.median(theirs) / statistics.median(ours)
    low, high = min(theirs) / max(ours), max(theirs) / min(ours)
    return (
        f"BENCH {name} {ratio:.1f}  # {their} median / {our} median "
        f"(spread {low:.1f}-{high:.1f}: {their} min / {our} max - {their} max / {our} min)"
    )


def percentile(values: Sequence[float], fraction: float) -> float:
    """The value at ``fraction`` (0-1) of the sorted ``values``, by nearest rank (no interpolation)."""
    if not values:
        raise ValueError("percentile of no values")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(fraction * (len(ordered) - 1)))]


def upstream_bin_dir(bench: str) -> Path:
    """The directory of the pinned upstream programs (etcd, kube-apiserver, ...) that
    ``make setup`` built; SystemExit naming ``bench`` when they are missing."""
    out = subprocess.run(
        [REPO / "scripts/setup/upstream-bin-dir"], capture_output=True, text=True, check=False
    )
    if out.returncode != 0:
        raise SystemExit(f"{bench}: the pinned upstream programs are missing: {out.stderr.strip()}")
    return Path(out.stdout.strip())


class LogTail:
    """A program's log from its current end: each new line with the time it was read."""

    def __init__(self, path: Path, bench: str) -> None:
        self.file = path.open()
        self.file.seek(0, os.SEEK_END)
        self.bench = bench

    def wait_for(self, text: str, timeout: float = 60.0) -> float:
        """Poll (every 2 ms) for a new line containing ``text``; the time.perf_counter() it was read."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            line = self.file.readline()
            if not line:
                time.sleep(0.002)
                continue
            if text in line:
                return time.perf_counter()
        raise SystemExit(f"{self.bench}: no log line containing {text!r} within {timeout} s")

    def close(self) -> None:
        self.file.close()
