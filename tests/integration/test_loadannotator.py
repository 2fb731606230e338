"""cloud58-loadannotator against a real kube-apiserver, reading two real cloud58-signals agents.

Two signals agents (``agents/cloud58_signals.py``) run on loopback, one on 127.0.0.1 and one on
127.0.0.2, the same port, each reading a fixture /proc directory the test writes: a fixed
meminfo, and a stat file the test advances once after the agent's first sample, so every window
holds exactly that one step of jiffies (later samples see no jiffy pass and add none). Their
1 and 5 minute figures are therefore exact. The ``c1`` apiserver of ``kube_clusters`` holds
Nodes the test creates (no kubelet) whose InternalIP is the agent's address. The annotator
(``agents/cloud58_loadannotator.py``) runs once: the four annotations appear with the exact
figures, another annotation stays; a second run with unchanged figures sends no patch (the
Nodes' resourceVersion does not move). Agents are stopped by PID.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import urllib.request
import uuid
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
AGENTS = REPO / "collections/ansible_collections/cloud58/platform/agents"
SIGNALS = AGENTS / "cloud58_signals.py"
ANNOTATOR = AGENTS / "cloud58_loadannotator.py"
ENV = {**os.environ, "PYTHONPATH": str(REPO / "collections")}
OTHER = {"example.com/keep": "yes"}
_DIRECT = urllib.request.build_opener(urllib.request.ProxyHandler({}))

# address, meminfo (total, available kB), stat (busy, total jiffies) before and after the step
NODES = {
    "a": ("127.0.0.1", (8000000, 2000000), ((1000, 10000), (1375, 11000))),  # cpu 37.5 %, memory 75 %
    "b": ("127.0.0.2", (16000000, 12000000), ((200, 5000), (250, 5400))),  # cpu 12.5 %, memory 25 %
}

# The annotations each node's figures give, written out by hand from NODES.
ANNOTATIONS = {
    "a": {
        "cloud58.io/load-cpu-1m": "37.5",
        "cloud58.io/load-cpu-5m": "37.5",
        "cloud58.io/load-memory-1m": "75.0",
        "cloud58.io/load-memory-5m": "75.0",
    },
    "b": {
        "cloud58.io/load-cpu-1m": "12.5",
        "cloud58.io/load-cpu-5m": "12.5",
        "cloud58.io/load-memory-1m": "25.0",
        "cloud58.io/load-memory-5m": "25.0",
    },
}


def _stat(busy: int, total: int) -> str:
    # user busy, idle total - busy; every other field 0
    return f"cpu  {busy} 0 0 {total - busy} 0 0 0 0 0 0\ncpu0 {busy} 0 0 {total - busy} 0 0 0 0 0 0\n"


def _proc(root: Path, memory, stat) -> list[str]:
    (root / "proc").mkdir(parents=True)
    (root / "net").mkdir()
    (root / "cgroup").mkdir()
    (root / "proc/meminfo").write_text(f"MemTotal: {memory[0]} kB\nMemAvailable: {memory[1]} kB\n")
    (root / "proc/loadavg").write_text("0.50 0.40 0.30 1/100 1\n")
    (root / "proc/stat").write_text(_stat(*stat))
    return ["--proc", str(root / "proc"), "--net", str(root / "net"), "--cgroup", str(root / "cgroup")]


def _get(url: str) -> dict:
    with _DIRECT.open(url, timeout=10) as response:
        return json.loads(response.read().decode())


@pytest.fixture
def agents(tmp_path, wait_for):
    """The two signals agents, their stat files stepped once; yields their port."""
    started, port = [], 0
    try:
        for key, (address, memory, (before, after)) in NODES.items():
            roots = _proc(tmp_path / key, memory, before)
            agent = subprocess.Popen(
                [sys.executable, str(SIGNALS), "run", "--node", key, "--listen", f"{address}:{port}",
                 "--interval", "0.1", *roots],
                env=ENV, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
            )  # fmt: skip
            started.append(agent)
            line = agent.stdout.readline()
            assert line.startswith(f'{{"listening": "{address}:'), (line, agent.stderr.read())
            port = int(json.loads(line)["listening"].rsplit(":", 1)[1])
            # The first sample (taken before listening) holds `before`; now the step, replacing
            # the file by rename so the agent reads one sample or the other, never half of one.
            part = tmp_path / key / "stat.part"
            part.write_text(_stat(*after))
            os.replace(part, tmp_path / key / "proc/stat")
            expected = round(100 * (after[0] - before[0]) / (after[1] - before[1]), 3)
            wait_for(
                lambda a=address, p=port: _get(f"http://{a}:{p}/signals.json")["averages"]["5m"][
                    "cpu_percent"
                ],
                expected,
                f"the 5m cpu of the agent on {address}",
            )
        yield port
    finally:
        for agent in started:
            agent.terminate()
        for agent in started:
            _out, err = agent.communicate(timeout=30)
            assert (agent.returncode, err) == (0, "")


@pytest.fixture
def nodes(c1_core):
    api = c1_core
    run = uuid.uuid4().hex[:8]
    names = {key: f"c58load-{run}-{key}" for key in NODES}
    for key, name in names.items():
        api.create_node(
            {
                "apiVersion": "v1",
                "kind": "Node",
                "metadata": {"name": name, "labels": {"cloud58.io/test-run": run}, "annotations": OTHER},
            }
        )
        api.patch_node_status(
            name, {"status": {"addresses": [{"type": "InternalIP", "address": NODES[key][0]}]}}
        )
    yield api, names, f"cloud58.io/test-run={run}"
    for name in names.values():
        api.delete_node(name)


def _annotate(kube_clusters, *args) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, str(ANNOTATOR), "run", "--kubeconfig", str(kube_clusters.kubeconfig),
         "--context", "c1", *args],
        env=ENV, capture_output=True, text=True, check=False,
    )  # fmt: skip


def test_annotations_carry_the_signals_figures_and_unchanged_figures_send_no_patch(
    kube_clusters, nodes, agents
):
    api, names, selector = nodes
    first = _annotate(kube_clusters, "--selector", selector, "--port", str(agents))
    a = ANNOTATIONS["a"]
    b = ANNOTATIONS["b"]
    assert (first.returncode, first.stderr, first.stdout.splitlines()) == (
        0,
        "",
        [
            json.dumps({"node": names["a"], "patched": a}, sort_keys=True),
            json.dumps({"node": names["b"], "patched": b}, sort_keys=True),
        ],
    )
    annotated = {key: api.read_node(name).metadata for key, name in names.items()}
    assert {key: m.annotations for key, m in annotated.items()} == {"a": {**OTHER, **a}, "b": {**OTHER, **b}}

    second = _annotate(kube_clusters, "--selector", selector, "--port", str(agents))
    assert (second.returncode, second.stderr, second.stdout.splitlines()) == (
        0,
        "",
        [json.dumps({"node": names[key], "patched": {}}, sort_keys=True) for key in ("a", "b")],
    )
    assert {key: api.read_node(name).metadata.resource_version for key, name in names.items()} == {
        key: m.resource_version for key, m in annotated.items()
    }


def test_node_annotates_that_node_only(kube_clusters, nodes, agents):
    api, names, _selector = nodes
    done = _annotate(kube_clusters, "--node", names["b"], "--port", str(agents))
    b = ANNOTATIONS["b"]
    assert (done.returncode, done.stderr, done.stdout.splitlines()) == (
        0,
        "",
        [json.dumps({"node": names["b"], "patched": b}, sort_keys=True)],
    )
    assert {key: api.read_node(name).metadata.annotations for key, name in names.items()} == {
        "a": OTHER,
        "b": {**OTHER, **b},
    }


def test_every_repeats_the_pass_until_stopped(kube_clusters, nodes, agents):
    """A pass every 0.2 s: the first patches, the next ones find nothing moved; SIGTERM ends it
    cleanly (as systemd stops the role's unit)."""
    api, names, _selector = nodes
    agent = subprocess.Popen(
        [sys.executable, str(ANNOTATOR), "run", "--kubeconfig", str(kube_clusters.kubeconfig),
         "--context", "c1", "--node", names["a"], "--port", str(agents), "--every", "0.2"],
        env=ENV, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        lines = [json.loads(agent.stdout.readline()) for _ in range(3)]
    finally:
        agent.terminate()
        _out, err = agent.communicate(timeout=30)
    a = ANNOTATIONS["a"]
    assert (agent.returncode, err) == (0, "")
    assert lines == [
        {"node": names["a"], "patched": a},
        {"node": names["a"], "patched": {}},
        {"node": names["a"], "patched": {}},
    ]
    assert api.read_node(names["a"]).metadata.annotations == {**OTHER, **a}


def test_a_node_without_signals_is_reported_and_the_others_still_done(kube_clusters, nodes, agents):
    api, names, selector = nodes
    absent = f"http://127.0.0.1:{agents}/absent.json"
    done = _annotate(
        kube_clusters, "--selector", selector, "--port", str(agents), "--endpoint", f"{names['a']}={absent}"
    )
    assert (
        done.returncode,
        done.stderr,
        [json.loads(line)["node"] for line in done.stdout.splitlines()],
    ) == (
        1,
        f"cloud58-loadannotator: node {names['a']}: {absent}: HTTP 404 Not Found\n",
        [names["b"]],
    )
    assert api.read_node(names["a"]).metadata.annotations == OTHER


@pytest.mark.parametrize(
    ("args", "message"),
    [
        pytest.param(
            ["--threshold", "-1"],
            "cloud58-loadannotator: --threshold: -1.0 is not a number of percentage points >= 0\n",
            id="threshold",
        ),
        pytest.param(
            ["--endpoint", "lab1-w1:9112"],
            "cloud58-loadannotator: --endpoint: 'lab1-w1:9112' is not NODE=http://HOST:PORT/signals.json\n",
            id="endpoint",
        ),
        pytest.param(["--port", "0"], "cloud58-loadannotator: --port: 0 is not a port 1-65535\n", id="port"),
        pytest.param(
            ["--every", "-1"],
            "cloud58-loadannotator: --every: -1.0 is not a number of seconds >= 0 (0: one pass)\n",
            id="every",
        ),
        pytest.param(
            ["--node", "lab1-w1", "--selector", "a=b"],
            "cloud58-loadannotator: --node lab1-w1 and --selector a=b: give one of them\n",
            id="node-and-selector",
        ),
    ],
)
def test_bad_options_fail_before_any_node_is_read(kube_clusters, args, message):
    done = _annotate(kube_clusters, *args)
    assert (done.returncode, done.stdout, done.stderr) == (2, "", message)
