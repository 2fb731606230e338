"""Verify cloud58.platform.node_agents in the converged container (testinfra, podman backend).

The expected command lines, paths and modes are written out by hand from the role's documented
defaults (docs/node-protection.md) and molecule.yml's variables; the files the role copies are
compared with this checkout's. Every HTTP request is made inside the container.
"""

from __future__ import annotations

import hashlib
import shlex
import time
from pathlib import Path

import pytest
import testinfra
import yaml

NODE = testinfra.get_host("podman://mol-agents-node1")
REPO = Path(__file__).resolve().parents[3]
COLLECTION = REPO / "collections/ansible_collections/cloud58/platform"
SCENARIO = yaml.safe_load((Path(__file__).resolve().parents[1] / "molecule.yml").read_text())
KUBECONFIG = SCENARIO["provisioner"]["inventory"]["group_vars"]["minions"]["molecule_kubeconfig"]
AGENTS_DIR = "/usr/local/lib/cloud58-agents"
PYTHON = f"ExecStart=/usr/bin/python3 {AGENTS_DIR}"
# A broken run ends here, naming what it waited for; no duration is asserted.
PATIENCE_S = 90

_FETCH = "import sys, urllib.request; print(urllib.request.urlopen(sys.argv[1], timeout=10).read().decode())"


def _metrics(port: int) -> dict:
    out = NODE.check_output(f"python3 -c {shlex.quote(_FETCH)} http://127.0.0.1:{port}/metrics")
    return dict(line.rsplit(" ", 1) for line in out.splitlines() if line and not line.startswith("#"))


def _journal_line(unit: str, start: str) -> str:
    """The first line of ``unit``'s journal that starts with ``start``."""
    deadline = time.monotonic() + PATIENCE_S
    while True:
        journal = NODE.check_output(f"journalctl --no-pager -o cat -u {unit}")
        found = [line for line in journal.splitlines() if line.startswith(start)]
        if found:
            assert "Traceback" not in journal
            return found[0]
        if time.monotonic() > deadline:
            pytest.fail(f"{unit} never logged a line starting {start!r}; its journal:\n{journal}")
        time.sleep(1)


def test_pyyaml_for_the_agents_api_client_is_installed():
    assert NODE.package("python3-yaml").is_installed


@pytest.mark.parametrize(
    ("unit", "exec_start"),
    [
        pytest.param(
            "cloud58-netshaper",
            f"{PYTHON}/cloud58_netshaper.py watch --node mol-w1"
            " --kubeconfig /etc/cloud58/netshaper.kubeconfig --metrics-address 0.0.0.0 --metrics-port 9659"
            " --cgroup-driver cgroupfs --resync-seconds 30",
            id="netshaper",
        ),
        pytest.param(
            "cloud58-overload",
            f"{PYTHON}/cloud58_overload.py run --node mol-w1 --kubeconfig /etc/cloud58/overload.kubeconfig"
            " --over-seconds 60 --clear-seconds 300 --interval 5"
            " --metrics-address 0.0.0.0 --metrics-port 9662",
            id="overload",
        ),
        pytest.param(
            "cloud58-signals",
            f"{PYTHON}/cloud58_signals.py run --node mol-w1 --listen 0.0.0.0:9112 --interval 1",
            id="signals",
        ),
        pytest.param(
            "cloud58-crashkeeper",
            f"{PYTHON}/cloud58_crashkeeper.py watch --node mol-w1 --root /var/lib/cloud58/crash"
            " --max-sites 20 --max-bytes 1G --min-free-bytes 512M"
            " --kubeconfig /etc/cloud58/crashkeeper.kubeconfig"
            " --metrics-address 0.0.0.0 --metrics-port 9663",
            id="crashkeeper",
        ),
        pytest.param(
            "cloud58-loadannotator",
            f"{PYTHON}/cloud58_loadannotator.py run --node mol-w1"
            " --kubeconfig /etc/cloud58/loadannotator.kubeconfig"
            " --endpoint mol-w1=http://127.0.0.1:9112/signals.json --every 30 --threshold 1.0",
            id="loadannotator",
        ),
    ],
)
def test_each_agent_is_an_enabled_running_unit_with_its_exact_command_line(unit, exec_start):
    service = NODE.service(f"{unit}.service")
    assert (service.is_enabled, service.is_running) == (True, True)
    text = NODE.file(f"/etc/systemd/system/{unit}.service").content_string
    assert [line for line in text.splitlines() if line.startswith("ExecStart=")] == [exec_start]


@pytest.mark.parametrize("agent", ["netshaper", "overload", "crashkeeper", "loadannotator"])
def test_each_kubeconfig_is_root_only_and_holds_the_variables_text(agent):
    kubeconfig = NODE.file(f"/etc/cloud58/{agent}.kubeconfig")
    assert (kubeconfig.user, kubeconfig.group, kubeconfig.mode) == ("root", "root", 0o600)
    assert kubeconfig.content_string == KUBECONFIG


def test_signals_needs_no_kubeconfig():
    assert sorted(NODE.file("/etc/cloud58").listdir()) == [
        "crashkeeper.kubeconfig",
        "loadannotator.kubeconfig",
        "netshaper.kubeconfig",
        "overload.kubeconfig",
    ]


@pytest.mark.parametrize(
    "relative",
    [
        "cloud58_netshaper.py",
        "cloud58_overload.py",
        "cloud58_signals.py",
        "cloud58_crashkeeper.py",
        "cloud58_loadannotator.py",
        "ansible_collections/cloud58/platform/plugins/module_utils/monitoring/load.py",
        "ansible_collections/cloud58/platform/plugins/module_utils/node/crash.py",
        "ansible_collections/cloud58/platform/plugins/module_utils/node/exposition.py",
        "ansible_collections/cloud58/platform/plugins/module_utils/monitoring/signals.py",
        "ansible_collections/cloud58/platform/plugins/module_utils/kube/quantity.py",
    ],
)
def test_programs_and_module_utils_are_this_checkouts(relative):
    source = (
        COLLECTION / "agents" / relative
        if "/" not in relative
        else COLLECTION / relative.removeprefix("ansible_collections/cloud58/platform/")
    )
    installed = NODE.file(f"{AGENTS_DIR}/{relative}")
    assert (installed.mode, installed.sha256sum) == (0o644, hashlib.sha256(source.read_bytes()).hexdigest())


@pytest.mark.parametrize(
    ("unit", "start", "end"),
    [
        pytest.param(
            "cloud58-netshaper",
            "cloud58-netshaper: --kubeconfig /etc/cloud58/netshaper.kubeconfig: ",
            "; retrying in 1s",
            id="netshaper",
        ),
        pytest.param(
            "cloud58-overload",
            "cloud58-overload: node mol-w1: --kubeconfig /etc/cloud58/overload.kubeconfig: "
            "the API server cannot be reached: ",
            "; retrying in 1s",
            id="overload",
        ),
        # containerd answers (its exits are followed); the API server's probe Events do not
        pytest.param(
            "cloud58-crashkeeper",
            "cloud58-crashkeeper: node mol-w1: watching the kubelet's probe events: ",
            "; retrying in 1s",
            id="crashkeeper",
        ),
        pytest.param(
            "cloud58-loadannotator",
            "cloud58-loadannotator: reading the Nodes: ",
            "Connection refused",
            id="loadannotator",
        ),
    ],
)
def test_an_unreachable_api_server_is_one_line_and_the_agent_keeps_running(unit, start, end):
    assert _journal_line(unit, start).endswith(end)
    assert NODE.service(f"{unit}.service").is_running


def test_crashkeeper_follows_containerd_and_the_kubelets_probe_events():
    line = _journal_line("cloud58-crashkeeper", '{"watching": ')
    assert line == (
        '{"watching": "/run/containerd/containerd.sock", "namespace": "k8s.io", "liveness": "mol-w1"}'
    )
    assert NODE.file("/var/lib/cloud58/crash").is_directory


def test_crashkeeper_serves_its_budget_and_counters():
    samples = _metrics(9663)
    # no capture yet: no series for the time of the last one
    assert samples == {
        'cloud58_crashkeeper_exits_total{result="captured"}': "0",
        'cloud58_crashkeeper_exits_total{result="skipped"}': "0",
        'cloud58_crashkeeper_exits_total{result="failed"}': "0",
        'cloud58_crashkeeper_liveness_failures_total{result="dumped"}': "0",
        'cloud58_crashkeeper_liveness_failures_total{result="skipped"}': "0",
        'cloud58_crashkeeper_liveness_failures_total{result="failed"}': "0",
        'cloud58_crashkeeper_dumps_total{outcome="completed"}': "0",
        'cloud58_crashkeeper_dumps_total{outcome="stopped"}': "0",
        'cloud58_crashkeeper_dumps_total{outcome="not_run"}': "0",
        'cloud58_crashkeeper_pod_marks_total{result="failed"}': "0",
        'cloud58_crashkeeper_pod_marks_total{result="not_marked"}': "0",
        'cloud58_crashkeeper_pod_marks_total{result="marked_again"}': "0",
        "cloud58_crashkeeper_sites_deleted_total": "0",
        "cloud58_crashkeeper_sites": "0",
        "cloud58_crashkeeper_bytes": "0",
        "cloud58_crashkeeper_budget_sites": "20",
        "cloud58_crashkeeper_budget_bytes": str(1 << 30),  # 1G
    }


def test_overload_serves_its_windows_before_it_reaches_the_api_server():
    samples = _metrics(9662)
    at = 'node="mol-w1"'
    assert {
        k: samples.get(k)
        for k in (
            f'cloud58_overload_window_seconds{{{at},to="overloaded"}}',
            f'cloud58_overload_window_seconds{{{at},to="clear"}}',
            f"cloud58_overload_overloaded{{{at}}}",
        )
    } == {
        f'cloud58_overload_window_seconds{{{at},to="overloaded"}}': "60",
        f'cloud58_overload_window_seconds{{{at},to="clear"}}': "300",
        f"cloud58_overload_overloaded{{{at}}}": None,  # the Node's state is not known yet
    }


def test_signals_reports_the_containers_memory():
    samples = _metrics(9112)
    mem_total_kib = int(NODE.check_output("grep ^MemTotal: /proc/meminfo").split()[1])
    assert samples["cloud58_signals_memory_total_bytes"] == str(mem_total_kib * 1024)
