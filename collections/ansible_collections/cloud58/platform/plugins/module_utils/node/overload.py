# -*- coding: utf-8 -*-
# Copyright: cloud58 platform team
# Apache License 2.0
"""Host overload protection (the node agent cloud58-overload): samples, hysteresis, Node patches.

A node is **overloaded** when its load stays above ``high`` for ``over_seconds``; it is clear
again when the load stays below ``low`` (< ``high``) for ``clear_seconds``. A sample between the
two thresholds, or one on the wrong side, restarts the running window: a node never flaps on a
single spike or a single quiet second.

The load comes from one of two kernel files, told apart by their content:

* ``/proc/pressure/cpu`` (PSI, kernels >= 4.20 with CONFIG_PSI): the ``some avg10`` field, the
  percentage of the last 10 s in which at least one runnable task waited for a CPU (0..100).
* ``/proc/loadavg`` (any kernel): the 1-minute load average divided by the node's CPUs.

Or, with the agent's ``--signals-url``, from the node's signals agent (cloud58-signals,
docs/monitoring.md): ``averages.1m.cpu_percent`` of its ``/signals.json``, the busy share of the
node's CPU time over the last minute (0..100).

On a change the agent sets (or removes) the taint ``cloud58.io/overloaded:NoSchedule`` and the
Node condition ``CloudFiftyEightOverloaded``. ``metrics_text`` is the agent's ``/metrics``
(:class:`Counts` and the last sample). Nothing here does I/O: the agent
(``agents/cloud58_overload.py``) reads the file, keeps the clock and calls the API server.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field

from . import exposition

TAINT_KEY = "cloud58.io/overloaded"
TAINT_EFFECT = "NoSchedule"
CONDITION_TYPE = "CloudFiftyEightOverloaded"
PRESSURE = "pressure"
LOADAVG = "loadavg"
SIGNALS = "signals"
# Thresholds by source when the agent is given none: (high, low).
DEFAULT_THRESHOLDS = {PRESSURE: (50.0, 25.0), LOADAVG: (1.5, 1.0), SIGNALS: (90.0, 70.0)}
UNITS = {
    PRESSURE: "% cpu pressure (some avg10)",
    LOADAVG: "load per CPU (1 min)",
    SIGNALS: "% cpu busy (1 min, cloud58-signals)",
}


class OverloadError(ValueError):
    """A bad option or sample; the message names the field (or file) and the value."""


@dataclass(frozen=True)
class Policy:
    """When a node becomes overloaded (``high`` for ``over_seconds``) and clear again."""

    high: float
    low: float
    over_seconds: float
    clear_seconds: float


@dataclass(frozen=True)
class State:
    """``overloaded`` now; ``since``: when the current run of samples toward a change began."""

    overloaded: bool = False
    since: float | None = None


def check_policy(high, low, over_seconds, clear_seconds) -> Policy:
    """The policy, or OverloadError naming the option and its value."""
    for name, value in (
        ("--high", high),
        ("--low", low),
        ("--over-seconds", over_seconds),
        ("--clear-seconds", clear_seconds),
    ):
        if (
            not isinstance(value, (int, float))
            or isinstance(value, bool)
            or not math.isfinite(value)
            or value < 0
        ):
            raise OverloadError(f"{name}: {value!r} is not a number >= 0")
    if low >= high:
        raise OverloadError(f"--low: {low!r} is not below --high {high!r}; the two make the hysteresis")
    return Policy(float(high), float(low), float(over_seconds), float(clear_seconds))


def source_kind(text: str) -> str:
    """``pressure`` for the PSI format (lines ``some avg10=...``), else ``loadavg``."""
    return PRESSURE if text.lstrip().startswith("some ") else LOADAVG


def parse_sample(path: str, text: str, cpus: int) -> float:
    """The load in ``text`` (the content of ``path``): some avg10, or load1 / cpus.

    Raises OverloadError naming the file and what it holds.
    """
    if source_kind(text) == PRESSURE:
        fields = dict(item.split("=", 1) for item in text.strip().splitlines()[0].split()[1:] if "=" in item)
        value = fields.get("avg10")
        what = "a PSI line 'some avg10=<percent> ...'"
    else:
        parts = text.split()
        value = parts[0] if parts else None
        what = "a load average '<load1> <load5> <load15> ...'"
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise OverloadError(f"{path}: {text.strip()[:80]!r} is not {what}") from None
    if not math.isfinite(number) or number < 0:
        raise OverloadError(f"{path}: {text.strip()[:80]!r} is not {what}")
    if source_kind(text) == LOADAVG:
        if not isinstance(cpus, int) or cpus < 1:
            raise OverloadError(f"{path}: CPU count {cpus!r} is not a positive integer")
        number /= cpus
    return number


def parse_signals(url: str, text: str) -> float:
    """``averages.1m.cpu_percent`` of the signals agent's ``/signals.json`` (``text``, read from
    ``url``). Raises OverloadError naming the URL and what it holds instead."""
    try:
        document = json.loads(text)
    except ValueError:
        raise OverloadError(
            f"{url}: {text.strip()[:80]!r} is not JSON (cloud58-signals' /signals.json)"
        ) from None
    averages = document.get("averages") if isinstance(document, dict) else None
    window = averages.get("1m") if isinstance(averages, dict) else None
    if not isinstance(window, dict):
        raise OverloadError(
            f"{url}: no averages.1m (not cloud58-signals' /signals.json, or it has no sample yet)"
        )
    value = window.get("cpu_percent")
    if value is None:
        raise OverloadError(f"{url}: averages.1m.cpu_percent is null (no CPU time passed in the window yet)")
    if (
        isinstance(value, bool)
        or not isinstance(value, (int, float))
        or not math.isfinite(value)
        or value < 0
    ):
        raise OverloadError(f"{url}: averages.1m.cpu_percent {value!r} is not a percentage >= 0")
    return float(value)


def decide(policy: Policy, state: State, now: float, value: float) -> State:
    """The state after the sample ``value`` taken at ``now`` (seconds, monotonic)."""
    toward = value < policy.low if state.overloaded else value > policy.high
    if not toward:
        return State(state.overloaded, None)
    since = now if state.since is None else state.since
    window = policy.clear_seconds if state.overloaded else policy.over_seconds
    if now - since >= window:
        return State(not state.overloaded, None)
    return State(state.overloaded, since)


def is_overloaded(node: dict) -> bool:
    """Whether the Node's CloudFiftyEightOverloaded condition is True (the agent's state after a restart)."""
    for condition in (node.get("status") or {}).get("conditions") or []:
        if condition.get("type") == CONDITION_TYPE:
            return condition.get("status") == "True"
    return False


def taints(current, overloaded: bool):
    """The Node's taint list with ours present (``overloaded``) or absent; None when it already is.

    Other taints are kept as they are, in their order; ours goes last.
    """
    current = list(current or [])
    ours = [t for t in current if t.get("key") == TAINT_KEY and t.get("effect") == TAINT_EFFECT]
    if bool(ours) == overloaded:
        return None
    others = [t for t in current if not (t.get("key") == TAINT_KEY and t.get("effect") == TAINT_EFFECT)]
    return [*others, {"key": TAINT_KEY, "effect": TAINT_EFFECT}] if overloaded else others


def condition(overloaded: bool, value: float, kind: str, policy: Policy, now_iso: str) -> dict:
    """The Node condition recording the decision (both times ``now_iso``, RFC 3339)."""
    if overloaded:
        reason = "LoadAboveThreshold"
        message = (
            f"{value:g} {UNITS[kind]} stayed above {policy.high:g} for {policy.over_seconds:g}s; "
            f"cloud58-overload tainted the node {TAINT_KEY}:{TAINT_EFFECT}"
        )
    else:
        reason = "LoadBelowThreshold"
        message = (
            f"{value:g} {UNITS[kind]}; not overloaded (tainted after {policy.over_seconds:g}s above "
            f"{policy.high:g}, cleared after {policy.clear_seconds:g}s below {policy.low:g})"
        )
    return {
        "type": CONDITION_TYPE,
        "status": "True" if overloaded else "False",
        "reason": reason,
        "message": message,
        "lastHeartbeatTime": now_iso,
        "lastTransitionTime": now_iso,
    }


@dataclass
class Counts:
    """What the agent counted since it started (its ``/metrics`` counters)."""

    tainted: int = 0
    cleared: int = 0
    sample_errors: int = 0
    publish_errors: int = 0
    samples: int = 0
    last: dict = field(default_factory=dict)  # {"kind": ..., "value": ...} of the last sample read


def metrics_text(node: str, policy: Policy, overloaded, counts: Counts) -> str:
    """The agent's ``/metrics``: its state, the last sample against the thresholds, its counters.

    ``overloaded`` None: the Node's state is not known yet (the API server not reached), no series.
    """
    at = {"node": node}
    state = [] if overloaded is None else [(at, overloaded)]
    last = counts.last
    load = [({**at, "source": last["kind"]}, last["value"])] if last else []
    return exposition.text(
        [
            exposition.family(
                "cloud58_overload_overloaded",
                "gauge",
                f"1 while the agent keeps the node tainted {TAINT_KEY}:{TAINT_EFFECT}, else 0.",
                state,
            ),
            exposition.family(
                "cloud58_overload_load",
                "gauge",
                "The last sample the agent read, in its source's unit (% pressure, load per CPU, % busy).",
                load,
            ),
            exposition.family(
                "cloud58_overload_threshold",
                "gauge",
                "Overloaded above high for over_seconds; clear below low for clear_seconds.",
                [({**at, "bound": "high"}, policy.high), ({**at, "bound": "low"}, policy.low)],
            ),
            exposition.family(
                "cloud58_overload_window_seconds",
                "gauge",
                "How long the load must stay beyond a threshold before the state changes.",
                [
                    ({**at, "to": "overloaded"}, policy.over_seconds),
                    ({**at, "to": "clear"}, policy.clear_seconds),
                ],
            ),
            exposition.family(
                "cloud58_overload_transitions_total",
                "counter",
                "State changes the agent published to the Node.",
                [({**at, "to": "overloaded"}, counts.tainted), ({**at, "to": "clear"}, counts.cleared)],
            ),
            exposition.family(
                "cloud58_overload_samples_total", "counter", "Samples read.", [(at, counts.samples)]
            ),
            exposition.family(
                "cloud58_overload_sample_errors_total",
                "counter",
                "Samples that could not be read (the state was kept).",
                [(at, counts.sample_errors)],
            ),
            exposition.family(
                "cloud58_overload_publish_errors_total",
                "counter",
                "Changes the API server did not take (tried again at the next sample).",
                [(at, counts.publish_errors)],
            ),
        ]
    )
