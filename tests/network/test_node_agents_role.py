"""The role cloud58.platform.node_agents on a podman systemd container of the node image.

ansible-playbook runs the role against one container (``c58agents-<pid>``, started with
``cloud58_lab.nodes.start_containers`` as the node benchmark starts its nodes) under the
mitogen strategy, through mitogen's ``mitogen_setns`` connection as the lab runs site.yml
(one Python in the container for the run). Alone on the 2-core machine this file took 36 s,
against 105 s over the lab's ``podman_nsenter`` (which tests/integration/test_podman_nsenter.py
and molecule exercise). The node image has no PyYAML (the agents' API client reads kubeconfigs
with it) and the test has no network to install Debian's python3-yaml, so the test copies it
from this checkout's virtualenv into the container (the same Python minor version) and runs the
role with ``node_agents_packages: []``.

Every run enables all four agents. netshaper and overload get a kubeconfig whose server is a
loopback port nobody listens on inside the container: their units must stay active and the
journal must carry one clear line about the unreachable API server. cloud58-signals needs no
kubeconfig and must answer /metrics inside the container. cloud58-crashkeeper is switched on
(the test sets it) to check its unit's exact command line, as are signals' and netshaper's;
the image has no containerd, so the agent itself exits and systemd restarts it (its capture is
proven by test_crashkeeper.py).
Converge, a second run that changes nothing, check mode that changes nothing, a missing
credential that fails the host by the variable's name, the loadannotator without the signals
agent it reads, a crash-site budget the disk cannot hold
(or that is not a size) that fails the host before it changes, an agent switched off.
The agents' behaviour against a real API server is proven by
tests/integration/test_netshaper_watch.py and test_overload_agent.py.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import time
from importlib import metadata
from pathlib import Path

import pytest
from packaging.requirements import Requirement

from cloud58_lab import nodes, programs, staticpods
from cloud58_lab.netlab import run_prefix

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[2]
PLAYBOOK = """\
- name: Run the node agents
  hosts: all
  gather_facts: false
  roles:
    - cloud58.platform.node_agents
"""
NODE = "lab1-w1"
AGENTS = ("cloud58-netshaper", "cloud58-overload", "cloud58-signals", "cloud58-loadannotator")
TOKEN = "c58-test-secret-token-0123456789"


def _kubeconfig(name: str) -> str:
    """A kubeconfig whose server is a loopback port nobody listens on in the container."""
    return (
        "apiVersion: v1\nkind: Config\n"
        "clusters:\n- name: lab1\n  cluster:\n    server: https://127.0.0.1:1\n"
        "    insecure-skip-tls-verify: true\n"
        f"users:\n- name: {name}\n  user:\n    token: {TOKEN}-{name}\n"
        f"contexts:\n- name: lab1\n  context:\n    cluster: lab1\n    user: {name}\n"
        "current-context: lab1\n"
    )


def _client_files() -> list[Path]:
    """The top-level packages and modules of PyYAML and what it requires, in the virtualenv
    (stands in for Debian's python3-yaml)."""
    todo, seen, files = ["PyYAML"], set(), set()
    while todo:
        dist = metadata.distribution(todo.pop())
        if dist.metadata["Name"].lower() in seen:
            continue
        seen.add(dist.metadata["Name"].lower())
        for requirement in map(Requirement, dist.requires or []):
            if requirement.marker is None or requirement.marker.evaluate({"extra": ""}):
                todo.append(requirement.name)
        for path in dist.files or []:
            top = path.parts[0]
            if (not top.endswith((".dist-info", "__pycache__")) and top != ".." and len(path.parts) > 1) or (
                top.endswith(".py") or top.endswith(".so")
            ):
                files.add(Path(dist.locate_file(top)))
    return sorted(files)


def _podman(*args, check=True):
    return subprocess.run(
        programs.argv("podman", *args), capture_output=True, text=True, env=nodes.podman_env(), check=check
    )


@pytest.fixture(scope="module")
def node(tmp_path_factory):
    work = tmp_path_factory.mktemp("node-agents")
    env = nodes.podman_env()
    image = subprocess.run(
        [str(REPO / "scripts/setup/image.sh"), "--print-ref"],
        capture_output=True,
        text=True,
        env=env,
        check=True,
    ).stdout.strip()
    container = run_prefix("c58agents").rstrip("-")
    try:
        nodes.start_containers({container: NODE}, image, "cloud58.io/test=node-agents", env)
        site = _podman(
            "exec", container, "python3", "-c", "import site; print(site.getsitepackages()[0])"
        ).stdout.strip()
        _podman("exec", container, "mkdir", "-p", site)
        client_dir = work / "site-packages"
        client_dir.mkdir()
        for source in _client_files():
            copy = shutil.copytree if source.is_dir() else shutil.copy2
            copy(source, client_dir / source.name)
        _podman("cp", f"{client_dir}/.", f"{container}:{site}")
        _podman("exec", container, "python3", "-c", "import yaml")
        yield container, work
    finally:
        problems = nodes.remove_containers([container], env)
        assert problems == [], f"cleanup left: {problems}"


def _play(node, check=False, **extra):
    """Run the role on the container; its stats, the failed tasks' messages and the whole output."""
    container, work = node
    (work / "play.yml").write_text(PLAYBOOK)
    variables = {
        **staticpods.MITOGEN_SETNS,
        "ansible_host": container,
        "ansible_python_interpreter": "/usr/bin/python3",
        "node_agents_packages": [],
        "node_agents_netshaper_kubeconfig": _kubeconfig("netshaper"),
        "node_agents_overload_kubeconfig": _kubeconfig("overload"),
        "node_agents_crashkeeper": True,
        "node_agents_crashkeeper_kubeconfig": _kubeconfig("crashkeeper"),
        "node_agents_loadannotator_kubeconfig": _kubeconfig("loadannotator"),
        **extra,
    }
    (work / "vars.json").write_text(json.dumps(variables))
    env = dict(
        nodes.podman_env(),
        ANSIBLE_CONFIG=str(REPO / "ansible.cfg"),
        ANSIBLE_STDOUT_CALLBACK="ansible.builtin.json",
        ANSIBLE_STRATEGY="mitogen_linear",
        PYTHONPATH=str(REPO / "collections"),
    )
    args = ["-i", f"{NODE},", str(work / "play.yml"), "-e", f"@{work / 'vars.json'}"]
    proc = subprocess.run(
        programs.argv("ansible-playbook", *args) + (["--check", "--diff"] if check else []),
        capture_output=True,
        text=True,
        env=env,
        cwd=REPO,
        check=False,
    )
    report = json.loads(proc.stdout)
    stats = report["stats"][NODE]
    failed = [
        result["msg"]
        for play in report["plays"]
        for task in play["tasks"]
        for result in task["hosts"].values()
        if result.get("failed")
    ]
    return {"changed": stats["changed"], "failures": stats["failures"]}, failed, proc.stdout


def _changed_tasks(out: str) -> list[str]:
    """The tasks a run reported changed, with the loop items that changed (for failure messages)."""
    names = []
    for play in json.loads(out)["plays"]:
        for task in play["tasks"]:
            for result in task["hosts"].values():
                if result.get("changed"):
                    loop = result.get("results", [])
                    items = [r.get("_ansible_item_label") for r in loop if r.get("changed")]
                    names.append(f"{task['task']['name']} {items}" if items else task["task"]["name"])
    return names


def _in(node, *argv):
    return _podman("exec", node[0], *argv, check=False)


def _active(node):
    return _in(node, "systemctl", "is-active", *(f"{a}.service" for a in AGENTS)).stdout.split()


def _main_pid(node, unit):
    return _in(node, "systemctl", "show", "-p", "MainPID", "--value", f"{unit}.service").stdout.strip()


def _journal_has(node, unit, text):
    deadline = time.monotonic() + 30  # a bound on a hang, not a timing assertion
    while time.monotonic() < deadline:
        journal = _in(node, "journalctl", "--no-pager", "-o", "cat", "-u", unit).stdout
        if text in journal:
            return journal
        time.sleep(0.2)
    pytest.fail(f"{unit}: never logged {text!r}; its journal:\n{journal}", pytrace=False)


def test_check_mode_changes_nothing(node):
    stats, failed, _out = _play(node, check=True)
    assert (stats["failures"], failed) == (0, [])
    # module_utils dirs, module_utils files, programs, kubeconfig dir, kubeconfigs, units
    assert stats["changed"] == 6
    assert _in(node, "ls", "/usr/local/lib/cloud58-agents", "/etc/cloud58").returncode == 2
    assert _active(node) == ["inactive", "inactive", "inactive", "inactive"]


def test_converge_installs_the_agents_as_active_units(node):
    stats, failed, out = _play(node)
    assert (stats, failed) == ({"changed": 7, "failures": 0}, [])
    assert TOKEN not in out  # the credentials are never logged
    assert _active(node) == ["active", "active", "active", "active"]
    assert _in(node, "ls", "/etc/cloud58").stdout.split() == [  # none for cloud58-signals
        "crashkeeper.kubeconfig",
        "loadannotator.kubeconfig",
        "netshaper.kubeconfig",
        "overload.kubeconfig",
    ]
    modes = _in(node, "sh", "-c", "stat -c '%a %U %n' /etc/cloud58/*")
    assert modes.stdout.splitlines() == [
        "600 root /etc/cloud58/crashkeeper.kubeconfig",
        "600 root /etc/cloud58/loadannotator.kubeconfig",
        "600 root /etc/cloud58/netshaper.kubeconfig",
        "600 root /etc/cloud58/overload.kubeconfig",
    ]
    assert _in(node, "cat", "/etc/cloud58/overload.kubeconfig").stdout == _kubeconfig("overload")
    units = (*AGENTS, "cloud58-crashkeeper")
    assert _in(node, "systemctl", "is-enabled", *(f"{a}.service" for a in units)).stdout.split() == [
        "enabled",
        "enabled",
        "enabled",
        "enabled",
        "enabled",
    ]


def test_signals_agent_answers_metrics_in_the_node(node):
    _journal_has(node, "cloud58-signals", '{"listening": "0.0.0.0:9112"}')
    fetch = "import urllib.request; print(urllib.request.urlopen('http://127.0.0.1:9112/metrics').read().decode())"
    metrics = _in(node, "python3", "-c", fetch)
    assert metrics.returncode == 0, metrics.stderr
    names = {line.split()[0] for line in metrics.stdout.splitlines() if line and not line.startswith("#")}
    assert {"cloud58_signals_load1", "cloud58_signals_memory_total_bytes"} <= names
    meminfo = _in(node, "grep", "^MemTotal:", "/proc/meminfo").stdout.split()
    assert f"cloud58_signals_memory_total_bytes {int(meminfo[1]) * 1024}" in metrics.stdout.splitlines()


@pytest.mark.parametrize(
    ("unit", "exec_start"),
    [
        pytest.param(
            "cloud58-crashkeeper",
            "ExecStart=/usr/bin/python3 /usr/local/lib/cloud58-agents/cloud58_crashkeeper.py watch"
            " --node lab1-w1 --root /var/lib/cloud58/crash --max-sites 20 --max-bytes 10G --min-free-bytes 2G"
            " --kubeconfig /etc/cloud58/crashkeeper.kubeconfig --metrics-address 0.0.0.0 --metrics-port 9663",
            id="crashkeeper",
        ),
        pytest.param(
            "cloud58-overload",
            "ExecStart=/usr/bin/python3 /usr/local/lib/cloud58-agents/cloud58_overload.py run"
            " --node lab1-w1 --kubeconfig /etc/cloud58/overload.kubeconfig --over-seconds 60"
            " --clear-seconds 300 --interval 5 --metrics-address 0.0.0.0 --metrics-port 9662",
            id="overload",
        ),
        pytest.param(
            "cloud58-signals",
            "ExecStart=/usr/bin/python3 /usr/local/lib/cloud58-agents/cloud58_signals.py run"
            " --node lab1-w1 --listen 0.0.0.0:9112 --interval 1",
            id="signals",
        ),
        # its own Node, from its own signals agent on loopback
        pytest.param(
            "cloud58-loadannotator",
            "ExecStart=/usr/bin/python3 /usr/local/lib/cloud58-agents/cloud58_loadannotator.py run"
            " --node lab1-w1 --kubeconfig /etc/cloud58/loadannotator.kubeconfig"
            " --endpoint lab1-w1=http://127.0.0.1:9112/signals.json --every 30 --threshold 1.0",
            id="loadannotator",
        ),
        # /metrics on every address: the datacenter's Prometheus scrapes it (job netshaper)
        pytest.param(
            "cloud58-netshaper",
            "ExecStart=/usr/bin/python3 /usr/local/lib/cloud58-agents/cloud58_netshaper.py watch"
            " --node lab1-w1 --kubeconfig /etc/cloud58/netshaper.kubeconfig --metrics-address 0.0.0.0"
            " --metrics-port 9659 --cgroup-driver cgroupfs --resync-seconds 30",
            id="netshaper",
        ),
    ],
)
def test_unit_runs_the_agent_with_its_exact_command_line(node, unit, exec_start):
    text = _in(node, "cat", f"/etc/systemd/system/{unit}.service").stdout
    assert [line for line in text.splitlines() if line.startswith("ExecStart=")] == [exec_start]


@pytest.mark.parametrize(
    ("unit", "line"),
    [
        pytest.param(
            "cloud58-netshaper",
            "cloud58-netshaper: --kubeconfig /etc/cloud58/netshaper.kubeconfig: ",
            id="netshaper",
        ),
        pytest.param(
            "cloud58-overload",
            "cloud58-overload: node lab1-w1: --kubeconfig /etc/cloud58/overload.kubeconfig: "
            "the API server cannot be reached: ",
            id="overload",
        ),
    ],
)
def test_unreachable_api_server_is_logged_and_the_agent_keeps_running(node, unit, line):
    journal = _journal_has(node, unit, line)
    errors = [entry for entry in journal.splitlines() if entry.startswith(line)]
    assert errors[0].endswith("; retrying in 1s")
    assert "Traceback" not in journal
    assert _in(node, "systemctl", "is-active", f"{unit}.service").stdout.strip() == "active"


def test_loadannotator_logs_the_unreachable_api_server_and_keeps_running(node):
    line = "cloud58-loadannotator: reading the Nodes: [Errno 111] Connection refused"
    journal = _journal_has(node, "cloud58-loadannotator", line)
    assert "Traceback" not in journal
    assert _in(node, "systemctl", "is-active", "cloud58-loadannotator.service").stdout.strip() == "active"


def test_overload_agent_serves_metrics_before_it_reaches_the_api_server(node):
    _journal_has(node, "cloud58-overload", "cloud58-overload: metrics on http://0.0.0.0:9662/metrics")
    fetch = "import urllib.request; print(urllib.request.urlopen('http://127.0.0.1:9662/metrics').read().decode())"
    metrics = _in(node, "python3", "-c", fetch)
    assert metrics.returncode == 0, metrics.stderr
    samples = dict(line.rsplit(" ", 1) for line in metrics.stdout.splitlines() if line and line[0] != "#")
    at = 'node="lab1-w1"'
    # The Node's state is not known while the API server cannot be reached: no series for it.
    assert f"cloud58_overload_overloaded{{{at}}}" not in samples
    assert {
        k: samples[k]
        for k in (
            f'cloud58_overload_window_seconds{{{at},to="overloaded"}}',
            f'cloud58_overload_window_seconds{{{at},to="clear"}}',
            f'cloud58_overload_transitions_total{{{at},to="overloaded"}}',
            f'cloud58_overload_transitions_total{{{at},to="clear"}}',
            f"cloud58_overload_publish_errors_total{{{at}}}",
        )
    } == {
        f'cloud58_overload_window_seconds{{{at},to="overloaded"}}': "60",
        f'cloud58_overload_window_seconds{{{at},to="clear"}}': "300",
        f'cloud58_overload_transitions_total{{{at},to="overloaded"}}': "0",
        f'cloud58_overload_transitions_total{{{at},to="clear"}}': "0",
        f"cloud58_overload_publish_errors_total{{{at}}}": "0",
    }


def test_second_run_changes_nothing(node):
    stats, failed, out = _play(node)
    assert (stats, failed) == ({"changed": 0, "failures": 0}, []), _changed_tasks(out)


def test_check_mode_shows_a_changed_setting_and_changes_nothing(node):
    unit = _in(node, "cat", "/etc/systemd/system/cloud58-overload.service").stdout
    pid = _main_pid(node, "cloud58-overload")
    stats, failed, out = _play(node, check=True, node_agents_overload_interval=10)
    # the unit file and the restart it would bring
    assert (stats, failed) == ({"changed": 2, "failures": 0}, []), _changed_tasks(out)
    assert _in(node, "cat", "/etc/systemd/system/cloud58-overload.service").stdout == unit
    assert _main_pid(node, "cloud58-overload") == pid


def test_an_enabled_agent_without_kubeconfig_fails_by_the_variables_name(node):
    stats, failed, _out = _play(node, node_agents_overload_kubeconfig="")
    assert stats == {"changed": 0, "failures": 1}
    assert failed == [
        "host lab1-w1: node_agents_overload_kubeconfig empty; an enabled agent needs its kubeconfig "
        "(from the vault), or switch the agent off"
    ]


@pytest.mark.parametrize(
    ("budget", "message"),
    [
        pytest.param(
            {"node_agents_crashkeeper_max_bytes": "1P"},
            "host lab1-w1: node_agents_crashkeeper_max_bytes: 1125899906842624 plus "
            "node_agents_crashkeeper_min_free_bytes 2147483648 is larger than the disk under "
            "/var/lib/cloud58/crash ({disk} bytes)",
            id="larger-than-the-disk",
        ),
        pytest.param(
            {"node_agents_crashkeeper_min_free_bytes": "2Gbit/s"},
            "host lab1-w1: node_agents_crashkeeper_min_free_bytes: '2Gbit/s' is not a size in bytes "
            "(like 10G, 512M)",
            id="not-a-size",
        ),
    ],
)
def test_a_crash_budget_the_disk_cannot_hold_fails_before_the_host_changes(node, budget, message):
    unit = _in(node, "cat", "/etc/systemd/system/cloud58-overload.service").stdout
    # df, not the role's stat: the size of the container's file system under /var/lib
    disk = _in(node, "df", "-B1", "--output=size", "/var/lib").stdout.split()[-1]
    # a changed setting of another agent rides along: the failure must come before it is written
    stats, failed, out = _play(node, node_agents_overload_interval=10, **budget)
    assert (stats, failed) == ({"changed": 0, "failures": 1}, [message.format(disk=disk)]), out
    assert _in(node, "cat", "/etc/systemd/system/cloud58-overload.service").stdout == unit


def test_the_loadannotator_without_the_signals_agent_fails_by_the_variables_names(node):
    stats, failed, _out = _play(node, node_agents_signals=False)
    assert (stats, failed) == (
        {"changed": 0, "failures": 1},
        [
            "host lab1-w1: node_agents_loadannotator is on and node_agents_signals off; the "
            "loadannotator reads the host's cloud58-signals: switch both on, or the loadannotator off"
        ],
    )


def test_an_agent_switched_off_is_stopped_and_disabled(node):
    stats, failed, out = _play(node, node_agents_overload=False, node_agents_overload_kubeconfig="")
    assert (stats, failed) == ({"changed": 1, "failures": 0}, []), _changed_tasks(out)
    assert _active(node) == ["active", "inactive", "active", "active"]
    assert _in(node, "systemctl", "is-enabled", "cloud58-overload.service").stdout.strip() == "disabled"
