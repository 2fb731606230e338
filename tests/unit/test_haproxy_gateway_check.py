"""The ingress gateway's haproxy.cfg (module_utils/gateway/haproxy.py) checked by the real
haproxy (Debian's haproxy 2.6, `haproxy -dW -c -f` as the role's validate runs it, warnings
fatal): rendered configs pass without a warning, and the same configs with one line broken are
refused, by line and reason. `init-addr last,none` lets the check run without any DNS answer
(the resolvers are never queried); the server state file must exist and hold a version, as the
role writes it before the first check (`1`, no server)."""

from __future__ import annotations

import subprocess

import pytest

from ansible_collections.cloud58.platform.plugins.module_utils.gateway import haproxy_config
from cloud58_lab import programs

WEB = {"name": "web", "port": 8080, "check_path": "/healthz"}
PG = {"name": "db", "consul_service": "pg", "port": 5432, "mode": "tcp"}
SEARCH = {
    "name": "search",
    "port": 9200,
    "servers": 64,
    "server_maxconn": 20,
    "timeout_queue": "500ms",
    "slowstart": "2m",
    "error_limit": 3,
    "rate_limit": 5,
    "rate_period": "1s",
}


def _render(tmp_path, services, settings=None) -> str:
    """The rendered config with its server state file in ``tmp_path``, written as the role
    writes it on a new host."""
    state = tmp_path / "server-state"
    state.write_text("1\n")
    return haproxy_config(services, {"server_state_file": str(state), **(settings or {})})


def _check(tmp_path, text: str):
    conf = tmp_path / "haproxy.cfg"
    conf.write_text(text)
    result = subprocess.run(
        programs.argv("haproxy", "-dW", "-c", "-f", conf), capture_output=True, text=True, check=False
    )
    return conf, result


@pytest.mark.parametrize(
    ("services", "settings"),
    [
        pytest.param([WEB], None, id="http-with-check-path"),
        pytest.param([PG], None, id="tcp"),
        pytest.param([WEB, PG, SEARCH], None, id="three-services"),
        pytest.param([], None, id="no-service"),
        pytest.param([WEB], {"metrics_port": 0}, id="no-exporter"),
        pytest.param(
            [WEB, PG],
            {
                "bind_address": "198.18.0.21",
                "resolver_address": "198.18.0.5",
                "resolver_port": 53,
                "consul_domain": "bj1.consul",
                "stats_socket": "/run/haproxy/gateway.sock",
                "maxconn": 1000,
                "stick_table_size": "1m",
                "check_interval": "500ms",
                "metrics_address": "198.18.0.21",
                "metrics_port": 9101,
                "metrics_path": "/haproxy/metrics",
            },
            id="settings",
        ),
    ],
)
def test_rendered_config_passes_haproxy_check(tmp_path, services, settings):
    _, result = _check(tmp_path, _render(tmp_path, services, settings))
    assert (result.returncode, result.stdout) == (0, "Configuration file is valid\n"), result.stderr
    assert "[WARNING]" not in result.stderr
    assert _alerts(result) == []


def _alerts(result) -> list:
    """haproxy's [ALERT] lines, without the prefix that carries its process id."""
    return [
        line.split(" : config : ", 1)[1] for line in result.stderr.splitlines() if line.startswith("[ALERT]")
    ]


def _broken(tmp_path, old, new):
    """The rendered config of PG with ``old`` replaced by ``new`` once, checked; and the
    ``[file:line]`` of the broken line as haproxy names it."""
    text = _render(tmp_path, [PG])
    assert text.count(old) == 1
    broken = text.replace(old, new)
    line = next(n for n, text_line in enumerate(broken.splitlines(), 1) if new in text_line)
    conf, result = _check(tmp_path, broken)
    return f"[{conf}:{line}]", result


@pytest.mark.parametrize(
    ("old", "new", "alert"),
    [
        pytest.param(
            "on-error mark-down",
            "on-error mark-dwn",
            "{where} : 'on-error' expects one of 'fastinter', 'fail-check', 'sudden-death' or 'mark-down'"
            " but got 'mark-dwn'.",
            id="bad-on-error",
        ),
        pytest.param(
            "nameserver consul 127.0.0.1:8600",
            "nameserver consul 127.0.0.1:86000",
            "parsing {where} : 'nameserver consul' : invalid port '86000'",
            id="resolver-port-out-of-range",
        ),
        pytest.param(
            "slowstart 30s",
            "slowstart 30x",
            "{where} : unexpected character 'x' in 'slowstart' argument of server default-server..",
            id="slowstart-bad-unit",
        ),
        pytest.param(
            "sc_conn_rate(0) gt 100",
            "sc_conn_rte(0) gt 100",
            "parsing {where} : 'tcp-request connection reject' : error detected in frontend 'db' while"
            " parsing 'if' condition : unknown fetch method 'sc_conn_rte' in ACL expression 'sc_conn_rte(0)'",
            id="rate-limit-unknown-fetch",
        ),
    ],
)
def test_broken_config_is_refused_by_haproxy(tmp_path, old, new, alert):
    where, result = _broken(tmp_path, old, new)
    assert (result.returncode, result.stdout) == (1, "")
    assert _alerts(result) == [
        alert.format(where=where),
        f"Error(s) found in configuration file : {tmp_path / 'haproxy.cfg'}",
        "Fatal errors found in configuration.",
    ]


def test_haproxy_refuses_an_unknown_service_in_the_exporter_frontend(tmp_path):
    """The exporter's line is checked too: a service haproxy lacks is an error (haproxy 2.6 does not
    add its "Fatal errors" line for this one)."""
    where, result = _broken(tmp_path, "use-service prometheus-exporter", "use-service prometheus-exportr")
    assert (result.returncode, result.stdout) == (1, "")
    assert _alerts(result) == [
        f"parsing {where} : error detected in frontend 'cloud58_metrics' while parsing 'http-request"
        " use-service' rule : 'prometheus-exportr' unknown service name..",
        f"Error(s) found in configuration file : {tmp_path / 'haproxy.cfg'}",
    ]


def test_haproxy_check_passes_layer7_in_tcp_with_an_alert_only(tmp_path):
    """Why the passing test above also asserts no [ALERT]: haproxy 2.6 reports `observe layer7` in
    a TCP backend as an ALERT and still exits 0 ("Configuration file is valid"), so the exit code
    alone would let a circuit breaker that never trips through (the renderer picks layer4 for
    tcp services)."""
    where, result = _broken(tmp_path, "observe layer4", "observe layer7")
    assert (result.returncode, result.stdout) == (0, "Configuration file is valid\n")
    assert _alerts(result) == [f"{where} : 'layer7' can only be used in http proxies.."]


def test_haproxy_check_refuses_a_missing_or_empty_server_state_file(tmp_path):
    """Why the role writes the state file (``1``) before its first check: without it, or empty,
    haproxy warns and -dW makes that fatal."""
    text = _render(tmp_path, [WEB])
    state = tmp_path / "server-state"
    state.unlink()
    _, missing = _check(tmp_path, text)
    state.write_text("")
    _, empty = _check(tmp_path, text)
    assert [
        (r.returncode, [line.split(" : ", 2)[2] for line in r.stderr.splitlines() if "[WARNING]" in line])
        for r in (missing, empty)
    ] == [
        (1, [f"config: Can't open global server state file '{state}': No such file or directory"]),
        (1, [f"config: Can't get version of the global server state file '{state}'."]),
    ]
