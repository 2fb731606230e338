"""Host overload protection: samples, the hysteresis over a window, the Node's taint and condition."""

from __future__ import annotations

import json

import pytest

from ansible_collections.cloud58.platform.plugins.module_utils.node import overload
from ansible_collections.cloud58.platform.plugins.module_utils.node.overload import (
    OverloadError,
    Policy,
    State,
)

PSI = (
    "some avg10=63.20 avg60=44.07 avg300=59.07 total=34539940620\n"
    "full avg10=0.00 avg60=0.00 avg300=0.00 total=0\n"
)
POLICY = Policy(high=50.0, low=25.0, over_seconds=10.0, clear_seconds=20.0)


@pytest.mark.parametrize(
    ("text", "cpus", "kind", "value"),
    [
        pytest.param(PSI, 2, "pressure", 63.2, id="psi-some-avg10"),
        pytest.param("some avg10=0.00 avg60=0.00 avg300=0.00 total=0\n", 8, "pressure", 0.0, id="psi-idle"),
        pytest.param("3.00 4.40 4.44 4/218 30487\n", 2, "loadavg", 1.5, id="loadavg-per-cpu"),
        pytest.param("0.00 0.01 0.05 1/100 1\n", 4, "loadavg", 0.0, id="loadavg-idle"),
        pytest.param("12\n", 3, "loadavg", 4.0, id="test-file-one-number"),
    ],
)
def test_parse_sample(text, cpus, kind, value):
    assert overload.source_kind(text) == kind
    assert overload.parse_sample("/proc/x", text, cpus) == value


@pytest.mark.parametrize(
    ("text", "cpus", "message"),
    [
        pytest.param("", 2, "/proc/x: '' is not a load average '<load1> <load5> <load15> ...'", id="empty"),
        pytest.param(
            "some avg60=1.0 total=3\n",
            2,
            "/proc/x: 'some avg60=1.0 total=3' is not a PSI line 'some avg10=<percent> ...'",
            id="psi-without-avg10",
        ),
        pytest.param(
            "high\n", 2, "/proc/x: 'high' is not a load average '<load1> <load5> <load15> ...'", id="word"
        ),
        pytest.param(
            "-1\n", 2, "/proc/x: '-1' is not a load average '<load1> <load5> <load15> ...'", id="negative"
        ),
        pytest.param(
            "nan\n", 2, "/proc/x: 'nan' is not a load average '<load1> <load5> <load15> ...'", id="nan"
        ),
        pytest.param("1.0\n", 0, "/proc/x: CPU count 0 is not a positive integer", id="no-cpus"),
    ],
)
def test_parse_sample_errors(text, cpus, message):
    with pytest.raises(OverloadError) as err:
        overload.parse_sample("/proc/x", text, cpus)
    assert str(err.value) == message


URL = "http://127.0.0.1:9112/signals.json"


def _signals_json(one_minute) -> str:
    """A /signals.json body as cloud58-signals writes it (monitoring/signals.py, document())."""
    return json.dumps(
        {
            "node": "lab1-w1",
            "samples": 61,
            "latest": {"cpu_percent": 97.5, "load": [3.1, 2.0, 1.2]},
            "averages": {"1m": one_minute, "5m": {"seconds": 300.0, "cpu_percent": 40.25}},
        }
    )


@pytest.mark.parametrize(
    ("one_minute", "value"),
    [
        pytest.param(
            {"seconds": 60.0, "samples": 61, "cpu_percent": 93.125, "load1": 3.0}, 93.125, id="busy"
        ),
        pytest.param({"seconds": 60.0, "samples": 61, "cpu_percent": 0}, 0.0, id="idle-int"),
        pytest.param({"seconds": 2.0, "samples": 3, "cpu_percent": 100.0}, 100.0, id="short-window"),
    ],
)
def test_parse_signals_reads_the_one_minute_cpu_percent(one_minute, value):
    assert overload.parse_signals(URL, _signals_json(one_minute)) == value
    assert overload.DEFAULT_THRESHOLDS[overload.SIGNALS] == (90.0, 70.0)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        pytest.param(
            "<html>", f"{URL}: '<html>' is not JSON (cloud58-signals' /signals.json)", id="not-json"
        ),
        pytest.param(
            "[1, 2]",
            f"{URL}: no averages.1m (not cloud58-signals' /signals.json, or it has no sample yet)",
            id="a-list",
        ),
        pytest.param(
            _signals_json(None),
            f"{URL}: no averages.1m (not cloud58-signals' /signals.json, or it has no sample yet)",
            id="no-sample-yet",
        ),
        pytest.param(
            _signals_json({"seconds": 0.0, "samples": 1, "cpu_percent": None}),
            f"{URL}: averages.1m.cpu_percent is null (no CPU time passed in the window yet)",
            id="one-sample",
        ),
        pytest.param(
            _signals_json({"cpu_percent": "93"}),
            f"{URL}: averages.1m.cpu_percent '93' is not a percentage >= 0",
            id="a-string",
        ),
        pytest.param(
            _signals_json({"cpu_percent": -1.5}),
            f"{URL}: averages.1m.cpu_percent -1.5 is not a percentage >= 0",
            id="negative",
        ),
        pytest.param(
            _signals_json({"cpu_percent": True}),
            f"{URL}: averages.1m.cpu_percent True is not a percentage >= 0",
            id="a-bool",
        ),
    ],
)
def test_parse_signals_errors_name_the_url(text, message):
    with pytest.raises(OverloadError) as err:
        overload.parse_signals(URL, text)
    assert str(err.value) == message


def _run(samples, start=False):
    """The overloaded flag after each (time, value) sample, from State(start)."""
    state, out = State(start), []
    for now, value in samples:
        state = overload.decide(POLICY, state, now, value)
        out.append(state.overloaded)
    return out


@pytest.mark.parametrize(
    ("samples", "expected"),
    [
        pytest.param(
            [(0, 60), (5, 70), (10, 55), (15, 60)],
            [False, False, True, True],
            id="above-for-the-window-taints",
        ),
        pytest.param([(0, 60), (5, 70), (9, 90)], [False, False, False], id="just-short-of-the-window"),
        pytest.param(
            [(0, 60), (5, 40), (10, 60), (15, 60), (20, 60)],
            [False, False, False, False, True],
            id="a-dip-between-thresholds-restarts-the-window",
        ),
        pytest.param([(0, 50), (10, 50), (20, 50)], [False, False, False], id="at-high-is-not-above"),
        pytest.param(
            [(0, 99), (1, 0), (2, 99), (3, 0)], [False, False, False, False], id="spikes-never-taint"
        ),
    ],
)
def test_becomes_overloaded_only_after_the_window(samples, expected):
    assert _run(samples) == expected


@pytest.mark.parametrize(
    ("samples", "expected"),
    [
        pytest.param(
            [(0, 20), (10, 10), (20, 24)], [True, True, False], id="below-low-for-the-window-clears"
        ),
        pytest.param(
            [(0, 20), (10, 30), (20, 20), (30, 20)], [True, True, True, True], id="between-restarts"
        ),
        pytest.param([(0, 25), (30, 25)], [True, True], id="at-low-is-not-below"),
        pytest.param(
            [(0, 40), (100, 45), (200, 49)],
            [True, True, True],
            id="below-high-but-above-low-stays-overloaded",
        ),
    ],
)
def test_clears_only_below_low_for_the_clear_window(samples, expected):
    assert _run(samples, start=True) == expected


def test_full_cycle_state_after_each_sample():
    states = []
    state = State()
    for now, value in [(0, 80), (10, 80), (11, 10), (20, 10), (31, 10), (32, 80)]:
        state = overload.decide(POLICY, state, now, value)
        states.append(state)
    assert states == [
        State(False, 0),
        State(True, None),
        State(True, 11),
        State(True, 11),
        State(False, None),
        State(False, 32),
    ]


def test_zero_window_acts_on_the_first_sample():
    policy = Policy(high=1.0, low=0.5, over_seconds=0.0, clear_seconds=0.0)
    assert overload.decide(policy, State(), 7.0, 2.0) == State(True, None)
    assert overload.decide(policy, State(True), 8.0, 0.1) == State(False, None)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        pytest.param(
            (25, 50, 1, 1), "--low: 50 is not below --high 25; the two make the hysteresis", id="low>high"
        ),
        pytest.param(
            (50, 50, 1, 1), "--low: 50 is not below --high 50; the two make the hysteresis", id="equal"
        ),
        pytest.param((50, 25, -1, 1), "--over-seconds: -1 is not a number >= 0", id="negative-window"),
        pytest.param((float("inf"), 25, 1, 1), "--high: inf is not a number >= 0", id="infinite"),
        pytest.param((50, "25", 1, 1), "--low: '25' is not a number >= 0", id="string"),
        pytest.param((50, 25, 1, True), "--clear-seconds: True is not a number >= 0", id="bool"),
    ],
)
def test_check_policy_errors(args, message):
    with pytest.raises(OverloadError) as err:
        overload.check_policy(*args)
    assert str(err.value) == message


def test_check_policy():
    assert overload.check_policy(2, 1, 60, 300) == Policy(2.0, 1.0, 60.0, 300.0)


OURS = {"key": "cloud58.io/overloaded", "effect": "NoSchedule"}
OTHER = {"key": "node.kubernetes.io/unschedulable", "effect": "NoSchedule"}
OUR_KEY_OTHER_EFFECT = {"key": "cloud58.io/overloaded", "effect": "NoExecute"}


@pytest.mark.parametrize(
    ("current", "overloaded", "expected"),
    [
        pytest.param(None, True, [OURS], id="add-to-none"),
        pytest.param([OTHER], True, [OTHER, OURS], id="add-keeps-others-first"),
        pytest.param([OTHER, OURS], True, None, id="already-tainted"),
        pytest.param([OURS, OTHER], False, [OTHER], id="remove-keeps-others"),
        pytest.param([OURS], False, [], id="remove-last"),
        pytest.param([OTHER], False, None, id="already-clear"),
        pytest.param([], False, None, id="empty-clear"),
        pytest.param([OUR_KEY_OTHER_EFFECT], False, None, id="other-effect-is-not-ours"),
        pytest.param([OUR_KEY_OTHER_EFFECT], True, [OUR_KEY_OTHER_EFFECT, OURS], id="other-effect-kept"),
    ],
)
def test_taints(current, overloaded, expected):
    assert overload.taints(current, overloaded) == expected


@pytest.mark.parametrize(
    ("node", "expected"),
    [
        pytest.param({}, False, id="no-status"),
        pytest.param({"status": {"conditions": [{"type": "Ready", "status": "True"}]}}, False, id="no-ours"),
        pytest.param(
            {"status": {"conditions": [{"type": "CloudFiftyEightOverloaded", "status": "True"}]}},
            True,
            id="true",
        ),
        pytest.param(
            {"status": {"conditions": [{"type": "CloudFiftyEightOverloaded", "status": "False"}]}},
            False,
            id="false",
        ),
    ],
)
def test_is_overloaded_reads_the_condition(node, expected):
    assert overload.is_overloaded(node) is expected


@pytest.mark.parametrize(
    ("overloaded", "value", "kind", "expected"),
    [
        pytest.param(
            True,
            63.2,
            "pressure",
            {
                "type": "CloudFiftyEightOverloaded",
                "status": "True",
                "reason": "LoadAboveThreshold",
                "message": "63.2 % cpu pressure (some avg10) stayed above 50 for 10s; "
                "cloud58-overload tainted the node cloud58.io/overloaded:NoSchedule",
                "lastHeartbeatTime": "2026-12-04T13:00:00Z",
                "lastTransitionTime": "2026-12-04T13:00:00Z",
            },
            id="overloaded",
        ),
        pytest.param(
            False,
            0.25,
            "loadavg",
            {
                "type": "CloudFiftyEightOverloaded",
                "status": "False",
                "reason": "LoadBelowThreshold",
                "message": "0.25 load per CPU (1 min); not overloaded "
                "(tainted after 10s above 50, cleared after 20s below 25)",
                "lastHeartbeatTime": "2026-12-04T13:00:00Z",
                "lastTransitionTime": "2026-12-04T13:00:00Z",
            },
            id="clear",
        ),
        pytest.param(
            True,
            93.125,
            "signals",
            {
                "type": "CloudFiftyEightOverloaded",
                "status": "True",
                "reason": "LoadAboveThreshold",
                "message": "93.125 % cpu busy (1 min, cloud58-signals) stayed above 50 for 10s; "
                "cloud58-overload tainted the node cloud58.io/overloaded:NoSchedule",
                "lastHeartbeatTime": "2026-12-04T13:00:00Z",
                "lastTransitionTime": "2026-12-04T13:00:00Z",
            },
            id="overloaded-by-signals",
        ),
    ],
)
def test_condition(overloaded, value, kind, expected):
    assert overload.condition(overloaded, value, kind, POLICY, "2026-12-04T13:00:00Z") == expected


def test_metrics_text_state_last_sample_thresholds_and_counters():
    counts = overload.Counts(
        tainted=2,
        cleared=1,
        sample_errors=4,
        publish_errors=1,
        samples=40,
        last={"kind": "pressure", "value": 63.2},
    )
    assert overload.metrics_text("n1", POLICY, True, counts) == (
        "# HELP cloud58_overload_overloaded 1 while the agent keeps the node tainted "
        "cloud58.io/overloaded:NoSchedule, else 0.\n"
        "# TYPE cloud58_overload_overloaded gauge\n"
        'cloud58_overload_overloaded{node="n1"} 1\n'
        "# HELP cloud58_overload_load The last sample the agent read, in its source's unit "
        "(% pressure, load per CPU, % busy).\n"
        "# TYPE cloud58_overload_load gauge\n"
        'cloud58_overload_load{node="n1",source="pressure"} 63.2\n'
        "# HELP cloud58_overload_threshold Overloaded above high for over_seconds; clear below low "
        "for clear_seconds.\n"
        "# TYPE cloud58_overload_threshold gauge\n"
        'cloud58_overload_threshold{node="n1",bound="high"} 50\n'
        'cloud58_overload_threshold{node="n1",bound="low"} 25\n'
        "# HELP cloud58_overload_window_seconds How long the load must stay beyond a threshold before "
        "the state changes.\n"
        "# TYPE cloud58_overload_window_seconds gauge\n"
        'cloud58_overload_window_seconds{node="n1",to="overloaded"} 10\n'
        'cloud58_overload_window_seconds{node="n1",to="clear"} 20\n'
        "# HELP cloud58_overload_transitions_total State changes the agent published to the Node.\n"
        "# TYPE cloud58_overload_transitions_total counter\n"
        'cloud58_overload_transitions_total{node="n1",to="overloaded"} 2\n'
        'cloud58_overload_transitions_total{node="n1",to="clear"} 1\n'
        "# HELP cloud58_overload_samples_total Samples read.\n"
        "# TYPE cloud58_overload_samples_total counter\n"
        'cloud58_overload_samples_total{node="n1"} 40\n'
        "# HELP cloud58_overload_sample_errors_total Samples that could not be read (the state was kept).\n"
        "# TYPE cloud58_overload_sample_errors_total counter\n"
        'cloud58_overload_sample_errors_total{node="n1"} 4\n'
        "# HELP cloud58_overload_publish_errors_total Changes the API server did not take "
        "(tried again at the next sample).\n"
        "# TYPE cloud58_overload_publish_errors_total counter\n"
        'cloud58_overload_publish_errors_total{node="n1"} 1\n'
    )


def test_metrics_text_before_the_node_is_read_has_no_state_series():
    text = overload.metrics_text("n1", POLICY, None, overload.Counts())
    samples = [line for line in text.splitlines() if not line.startswith("#")]
    assert [line.split("{")[0] for line in samples] == [
        "cloud58_overload_threshold",
        "cloud58_overload_threshold",
        "cloud58_overload_window_seconds",
        "cloud58_overload_window_seconds",
        "cloud58_overload_transitions_total",
        "cloud58_overload_transitions_total",
        "cloud58_overload_samples_total",
        "cloud58_overload_sample_errors_total",
        "cloud58_overload_publish_errors_total",
    ]
