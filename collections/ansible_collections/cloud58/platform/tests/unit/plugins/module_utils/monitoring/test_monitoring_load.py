"""Node load annotations: the figures of a signals document and the patch beyond the threshold."""

from __future__ import annotations

import pytest

from ansible_collections.cloud58.platform.plugins.module_utils.monitoring import load
from ansible_collections.cloud58.platform.plugins.module_utils.monitoring.load import LoadError


def _doc(one, five):
    return {"node": "n", "samples": 3, "latest": None, "averages": {"1m": one, "5m": five}}


@pytest.mark.parametrize(
    ("document", "expected"),
    [
        pytest.param(
            _doc(
                {"cpu_percent": 37.5, "memory_percent": 75.0}, {"cpu_percent": 12.345, "memory_percent": 60}
            ),
            {
                "cloud58.io/load-cpu-1m": "37.5",
                "cloud58.io/load-cpu-5m": "12.3",
                "cloud58.io/load-memory-1m": "75.0",
                "cloud58.io/load-memory-5m": "60.0",
            },
            id="all-four",
        ),
        pytest.param(
            _doc({"cpu_percent": None, "memory_percent": 0}, {"cpu_percent": None, "memory_percent": 100}),
            {"cloud58.io/load-memory-1m": "0.0", "cloud58.io/load-memory-5m": "100.0"},
            id="no-jiffies-yet-no-cpu",
        ),
        pytest.param(_doc(None, None), {}, id="no-sample-yet"),
    ],
)
def test_figures(document, expected):
    assert load.figures("lab1-w1", document) == expected


@pytest.mark.parametrize(
    ("document", "message"),
    [
        pytest.param(
            [], "node lab1-w1: the signals document has no 'averages' mapping: '[]'", id="not-a-mapping"
        ),
        pytest.param(
            _doc({"memory_percent": 1}, None),
            "node lab1-w1: averages.1m has no cpu_percent: \"{'memory_percent': 1}\"",
            id="missing-figure",
        ),
        pytest.param(
            _doc({"cpu_percent": 120.0, "memory_percent": 1}, None),
            "node lab1-w1: averages.1m.cpu_percent: 120.0 is not a percentage 0..100",
            id="above-100",
        ),
        pytest.param(
            _doc({"cpu_percent": "12", "memory_percent": 1}, None),
            "node lab1-w1: averages.1m.cpu_percent: '12' is not a percentage 0..100",
            id="string",
        ),
    ],
)
def test_bad_documents_are_refused_naming_node_and_field(document, message):
    with pytest.raises(LoadError) as e:
        load.figures("lab1-w1", document)
    assert str(e.value) == message


WANTED = {"cloud58.io/load-cpu-1m": "37.5", "cloud58.io/load-memory-1m": "75.0"}


@pytest.mark.parametrize(
    ("current", "threshold", "expected"),
    [
        pytest.param(None, 1.0, WANTED, id="no-annotations"),
        pytest.param({"example.com/keep": "x"}, 1.0, WANTED, id="other-annotations-not-in-patch"),
        pytest.param(
            {"cloud58.io/load-cpu-1m": "37.0", "cloud58.io/load-memory-1m": "75.0"}, 1.0, {}, id="within"
        ),
        pytest.param(
            {"cloud58.io/load-cpu-1m": "36.5", "cloud58.io/load-memory-1m": "75.0"}, 1.0, {}, id="exactly-at"
        ),
        pytest.param(
            {"cloud58.io/load-cpu-1m": "36.4", "cloud58.io/load-memory-1m": "75.0"},
            1.0,
            {"cloud58.io/load-cpu-1m": "37.5"},
            id="beyond-only-that-one",
        ),
        pytest.param(
            {"cloud58.io/load-cpu-1m": "37.4", "cloud58.io/load-memory-1m": "75.0"},
            0,
            {"cloud58.io/load-cpu-1m": "37.5"},
            id="threshold-zero-any-change",
        ),
        pytest.param(
            {"cloud58.io/load-cpu-1m": "high", "cloud58.io/load-memory-1m": "nan"},
            1.0,
            WANTED,
            id="not-numbers",
        ),
    ],
)
def test_patch(current, threshold, expected):
    assert load.patch(current, WANTED, threshold) == expected


@pytest.mark.parametrize("value", [-1, float("nan"), "1", True])
def test_bad_threshold(value):
    with pytest.raises(LoadError) as e:
        load.check_threshold(value)
    assert str(e.value) == f"--threshold: {value!r} is not a number of percentage points >= 0"
