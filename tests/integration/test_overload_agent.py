"""cloud58-overload against a real kube-apiserver: the taint and condition follow the load.

The agent's program (agents/cloud58_overload.py of the collection) runs as a process against
the ``c1`` apiserver of ``kube_clusters`` and patches a Node object the test creates (no
kubelet: the apiserver keeps a Node like any object). On a host the agent reads
/proc/pressure/cpu; here its ``--source`` is a file in the same PSI format that the test writes,
so the test decides when the load is high or low and the agent's window runs on those
samples. The test replaces the file whole (a rename, as /proc never shows a half-written
sample), so each read is one sample. The test waits for each state (a 30 s guard turns a
hang into a failure); it asserts no durations. The hysteresis itself (windows restarting,
thresholds) is in the unit tests (test_node_overload.py).
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import urllib.request
import uuid
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
AGENT = REPO / "collections/ansible_collections/cloud58/platform/agents/cloud58_overload.py"
# The apiserver adds node.kubernetes.io/not-ready to a new Node (TaintNodesByCondition).
OTHER_TAINT = {"key": "example.com/dedicated", "value": "db", "effect": "NoSchedule"}
OUR_TAINT = {"key": "cloud58.io/overloaded", "effect": "NoSchedule"}


def _psi(percent: float) -> str:
    return (
        f"some avg10={percent:.2f} avg60=0.00 avg300=0.00 total=0\n"
        "full avg10=0.00 avg60=0.00 avg300=0.00 total=0\n"
    )


def _write(path: Path, text: str) -> None:
    """Replace ``path`` whole: the agent reads either the old sample or the new one."""
    part = path.with_name(path.name + ".part")
    part.write_text(text)
    os.replace(part, path)


@pytest.fixture
def node(c1_core):
    api = c1_core
    name = f"c58ovl-{uuid.uuid4().hex[:8]}"
    api.create_node(
        {"apiVersion": "v1", "kind": "Node", "metadata": {"name": name}, "spec": {"taints": [OTHER_TAINT]}}
    )
    yield api, name
    api.delete_node(name)


def _agent(kubeconfig, name, source, *extra):
    return [
        sys.executable,
        str(AGENT),
        "run",
        "--kubeconfig",
        str(kubeconfig),
        "--context",
        "c1",
        "--node",
        name,
        "--source",
        str(source),
        *extra,
    ]


def test_overloaded_node_is_tainted_and_cleared_with_its_condition(kube_clusters, node, tmp_path, wait_for):
    api, name = node
    source = tmp_path / "cpu-pressure"
    _write(source, _psi(10))
    errors = tmp_path / "agent.err"
    env = {**os.environ, "PYTHONPATH": str(REPO / "collections")}
    argv = _agent(
        kube_clusters.kubeconfig,
        name,
        source,
        *(
            "--high",
            "50",
            "--low",
            "25",
            "--over-seconds",
            "0.3",
            "--clear-seconds",
            "0.3",
            "--interval",
            "0.1",
            "--metrics-port",
            "0",
        ),
    )
    with errors.open("w") as err_file:
        agent = subprocess.Popen(argv, env=env, stdout=subprocess.PIPE, stderr=err_file, text=True)
    try:

        def taints():
            return [t.to_dict() for t in api.read_node(name).spec.taints or []]

        def condition():
            for c in api.read_node_status(name).status.conditions or []:
                if c.type == "CloudFiftyEightOverloaded":
                    return {"status": c.status, "reason": c.reason, "message": c.message}
            return None

        def taint_dicts(*ts):
            return [
                {"key": t["key"], "value": t.get("value"), "effect": t["effect"], "time_added": None}
                for t in ts
            ]

        def metrics():
            first = errors.read_text().splitlines()[0]
            url = re.fullmatch(r"cloud58-overload: metrics on (http://127\.0\.0\.1:\d+/metrics)", first)
            opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
            with opener.open(url.group(1), timeout=10) as response:
                text = response.read().decode()
            lines = [line for line in text.splitlines() if line and line[0] != "#"]
            # the samples read so far go on counting: every other series is exact
            return [line for line in lines if not line.startswith("cloud58_overload_samples_total")]

        def series(overloaded, load, to_overloaded, to_clear, sample_errors):
            at = f'node="{name}"'
            return [
                f"cloud58_overload_overloaded{{{at}}} {overloaded}",
                f'cloud58_overload_load{{{at},source="pressure"}} {load}',
                f'cloud58_overload_threshold{{{at},bound="high"}} 50',
                f'cloud58_overload_threshold{{{at},bound="low"}} 25',
                f'cloud58_overload_window_seconds{{{at},to="overloaded"}} 0.3',
                f'cloud58_overload_window_seconds{{{at},to="clear"}} 0.3',
                f'cloud58_overload_transitions_total{{{at},to="overloaded"}} {to_overloaded}',
                f'cloud58_overload_transitions_total{{{at},to="clear"}} {to_clear}',
                f"cloud58_overload_sample_errors_total{{{at}}} {sample_errors}",
                f"cloud58_overload_publish_errors_total{{{at}}} 0",
            ]

        # On start the agent records the state it begins in (the Node had no condition: clear).
        wait_for(
            condition,
            {
                "status": "False",
                "reason": "LoadBelowThreshold",
                "message": "10 % cpu pressure (some avg10); not overloaded "
                "(tainted after 0.3s above 50, cleared after 0.3s below 25)",
            },
            "the condition on start",
        )
        before = taints()
        assert taint_dicts(OTHER_TAINT)[0] in before
        assert OUR_TAINT["key"] not in [t["key"] for t in before]

        wait_for(metrics, series(0, 10, 0, 0, 0), "/metrics on start")

        _write(source, _psi(90))
        wait_for(taints, [*before, *taint_dicts(OUR_TAINT)], "the taints while overloaded")
        wait_for(metrics, series(1, 90, 1, 0, 0), "/metrics while overloaded")
        assert condition() == {
            "status": "True",
            "reason": "LoadAboveThreshold",
            "message": "90 % cpu pressure (some avg10) stayed above 50 for 0.3s; "
            "cloud58-overload tainted the node cloud58.io/overloaded:NoSchedule",
        }

        # A sample that cannot be read (the signals agent restarting): one line, the state kept.
        _write(source, "nonsense\n")
        unreadable = (
            f"cloud58-overload: node {name}: {source}: 'nonsense' is not a load average "
            "'<load1> <load5> <load15> ...'; keeping the last state\n"
        )
        wait_for(
            lambda: errors.read_text().splitlines(keepends=True)[1:],
            [unreadable],
            "the agent's line on the unreadable sample",
        )
        assert taints() == [*before, *taint_dicts(OUR_TAINT)]
        assert metrics()[0] == f'cloud58_overload_overloaded{{node="{name}"}} 1'
        assert metrics()[8].startswith(f'cloud58_overload_sample_errors_total{{node="{name}"}} ')
        assert metrics()[8] != f'cloud58_overload_sample_errors_total{{node="{name}"}} 0'

        _write(source, _psi(5))
        wait_for(taints, before, "the taints after the load fell")
        # The agent patches the taint, then the condition (two requests): wait for the second.
        wait_for(
            condition,
            {
                "status": "False",
                "reason": "LoadBelowThreshold",
                "message": "5 % cpu pressure (some avg10); not overloaded "
                "(tainted after 0.3s above 50, cleared after 0.3s below 25)",
            },
            "the condition after the load fell",
        )
        # (sample_errors: as many reads as the bad sample got; it is not 0, checked above)
        assert metrics()[:8] == series(0, 5, 1, 1, None)[:8]
    finally:
        agent.terminate()
        out, _ = agent.communicate(timeout=30)
    err = errors.read_text()
    assert agent.returncode == 0, err
    assert err.splitlines(keepends=True)[1:] == [unreadable]
    assert [line for line in out.splitlines() if line] == [
        f'{{"node": "{name}", "overloaded": true, "value": 90.0, "source": "{source}"}}',
        f'{{"node": "{name}", "overloaded": false, "value": 5.0, "source": "{source}"}}',
    ]


def test_unknown_node_fails_naming_it_before_changing_anything(kube_clusters, tmp_path):
    source = tmp_path / "cpu-pressure"
    source.write_text(_psi(90))
    env = {**os.environ, "PYTHONPATH": str(REPO / "collections")}
    done = subprocess.run(
        _agent(kube_clusters.kubeconfig, "c58ovl-absent", source),
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    assert (done.returncode, done.stdout, done.stderr) == (
        2,
        "",
        "cloud58-overload: --node c58ovl-absent: the API server says 404 Not Found\n",
    )
