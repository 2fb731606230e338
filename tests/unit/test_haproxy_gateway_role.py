"""The role cloud58.platform.haproxy_gateway run by ansible-playbook on this machine, with its
files redirected to a temporary directory, no package installed and no service touched: check
mode writes nothing and shows the diff, a run writes haproxy.cfg (the filter's text under a
header) checked by the real `haproxy -dW -c`, the servers' state file a new host starts with
and the reload drop-in of haproxy.service, a second run changes nothing, and bad input or a
host that is not an ingress node fails by name before anything is written. The host is lab1-w1
of inventories/lab (labels: function: ingress)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from ansible_collections.cloud58.platform.plugins.module_utils.gateway import haproxy_config
from ansible_collections.cloud58.platform.plugins.module_utils.topology import build_plan, load_inventory
from cloud58_lab import roleplay

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[2]
PLAYBOOK = """\
- name: Run the ingress gateway
  hosts: all
  gather_facts: false
  roles:
    - cloud58.platform.haproxy_gateway
"""
SERVICES = [
    {"name": "web", "port": 8080, "check_path": "/healthz"},
    {"name": "db", "consul_service": "pg", "port": 5432, "mode": "tcp", "rate_limit": 20},
]


@pytest.fixture(scope="module")
def work(tmp_path_factory):
    plan = build_plan(load_inventory(str(REPO / "inventories/lab"))).as_dict()
    return plan, tmp_path_factory.mktemp("haproxy-gateway-role")


def _play(work, host="lab1-w1", check=False, **extra):
    """Run the role on ``host``: its stats, per failed task its message and output, and the
    diffs it reported."""
    plan, directory = work
    variables = {
        # what the preflight play registers on localhost; the role's default reads it there
        "cloud58_topology": {"plan": plan},
        "haproxy_gateway_install_package": False,
        "haproxy_gateway_manage_service": False,
        "haproxy_gateway_config_file": str(directory / "haproxy.cfg"),
        "haproxy_gateway_server_state_file": str(directory / "server-state"),
        "haproxy_gateway_reload_dropin": str(directory / "haproxy.service.d" / "cloud58-reload.conf"),
        "haproxy_gateway_services": SERVICES,
        "ansible_connection": "local",
        "ansible_python_interpreter": sys.executable,
        **extra,
    }
    stats, failed, stdout = roleplay.play(directory, PLAYBOOK, host, variables, check=check, with_output=True)
    # A file task's diff is one mapping, a template's or copy's a list of them.
    diffs = [
        d
        for result in roleplay.task_results(stdout)
        for d in (result["diff"] if isinstance(result.get("diff"), list) else [result.get("diff") or {}])
        if d.get("after") and d.get("after") != d.get("before")
    ]
    return stats, failed, diffs


def _expected(directory: Path, **settings) -> str:
    return (
        "# Ansible managed\n"
        "# Ingress gateway lab1-w1 (role cloud58.platform.haproxy_gateway).\n"
        + haproxy_config(SERVICES, {"server_state_file": str(directory / "server-state"), **settings})
    )


def _reload_lines(directory: Path) -> list[str]:
    """The ExecReload lines the drop-in must hold, with this run's socket and state file."""
    state = directory / "server-state"
    return [
        "ExecReload=",
        "ExecReload=/usr/sbin/haproxy -Ws -f $CONFIG -c -q $EXTRAOPTS",
        f'ExecReload=/bin/sh -c \'echo "show servers state" | socat -t 10 stdio'
        f" unix-connect:/run/haproxy/admin.sock > {state}.new && test -s {state}.new"
        f" && mv {state}.new {state}; rm -f {state}.new'",
        "ExecReload=/bin/kill -USR2 $MAINPID",
    ]


def test_check_mode_writes_nothing_and_shows_the_diff(work):
    _plan, directory = work
    stats, failed, diffs = _play(work, check=True)
    assert (stats, failed) == ({"changed": 4, "failures": 0}, [])
    texts = [d["after"] for d in diffs if isinstance(d["after"], str)]
    assert texts[0] == "1\n"
    assert [line for line in texts[1].splitlines() if line.startswith("ExecReload=")] == _reload_lines(
        directory
    )
    assert texts[2:] == [_expected(directory)]
    assert sorted(p.name for p in directory.iterdir()) == ["play.yml", "vars.json"]


def test_role_writes_the_checked_config(work):
    _plan, directory = work
    stats, failed, _diffs = _play(work)
    assert (stats, failed) == ({"changed": 4, "failures": 0}, [])
    assert (directory / "haproxy.cfg").read_text() == _expected(directory)
    assert (directory / "server-state").read_text() == "1\n"
    dropin = (directory / "haproxy.service.d" / "cloud58-reload.conf").read_text()
    assert [line for line in dropin.splitlines() if line.startswith("ExecReload=")] == _reload_lines(
        directory
    )
    assert "[Service]\nExecReload=\n" in dropin


def test_second_run_changes_nothing(work):
    stats, failed, diffs = _play(work)
    assert (stats, failed, diffs) == ({"changed": 0, "failures": 0}, [], [])


def test_changed_setting_is_reported_in_check_mode_and_not_written(work):
    _plan, directory = work
    before = (directory / "haproxy.cfg").read_text()
    stats, failed, diffs = _play(work, check=True, haproxy_gateway_rate_limit=50)
    assert (stats, failed) == ({"changed": 1, "failures": 0}, [])
    assert [(d["before"], d["after"]) for d in diffs] == [(before, _expected(directory, rate_limit=50))]
    assert (directory / "haproxy.cfg").read_text() == before


@pytest.mark.parametrize(
    ("host", "extra", "message"),
    [
        pytest.param(
            "lab1-w1",
            {
                "haproxy_gateway_services": [
                    *SERVICES,
                    {"name": "web2", "consul_service": "web", "port": 8081},
                ]
            },
            "haproxy_gateway_config: service 'web2' (services[2]) consul_service: 'web' is taken by "
            "service 'web' (services[0])",
            id="two-services-one-consul-name",
        ),
        pytest.param(
            "lab1-w1",
            {"haproxy_gateway_services": [{"name": "web_1", "port": 80}]},
            "haproxy_gateway_config: services[0] name: expected a DNS label (a-z, 0-9, '-', at most 63), "
            "got 'web_1'",
            id="name-not-dns",
        ),
        pytest.param(
            "lab1-w1",
            {"haproxy_gateway_rate_limit": 0},
            "haproxy_gateway_config: gateway setting rate_limit: expected an integer 1-10000000, got 0",
            id="rate-limit-zero",
        ),
        pytest.param(
            "lab1-m1",
            {},
            "lab1-m1: the gateway runs on hosts labelled function: ingress in the plan; "
            'got function "master"',
            id="not-an-ingress-node",
        ),
    ],
)
def test_bad_input_fails_before_the_host_changes(work, host, extra, message):
    _plan, directory = work
    before = (directory / "haproxy.cfg").read_text()
    stats, failed, _diffs = _play(work, host=host, **extra)
    assert stats == {"changed": 0, "failures": 1}
    assert len(failed) == 1
    assert message in failed[0]
    assert (directory / "haproxy.cfg").read_text() == before
