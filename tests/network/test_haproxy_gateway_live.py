"""The ingress gateway's haproxy.cfg (module_utils/gateway/haproxy.py) run by the real haproxy
(Debian's 2.6) on loopback, a master-worker process in the foreground as systemd runs it: with
no Consul answering, every server slot waits in maintenance and HAProxy still serves; the
per-client rate limit of an HTTP service answers 503 (no server) up to the limit and 429 beyond
it, a TCP service accepts connections up to its limit and resets the next; the exporter frontend
serves HAProxy's Prometheus metrics of every frontend and backend on its path, 404 elsewhere.

Consul's DNS is pointed at a loopback port nobody answers on; the stick tables count over
one minute, far longer than the test runs, so no result depends on how fast the machine is.
A real Consul, and reloads under load: tests/network/test_haproxy_gateway_consul.py.
"""

from __future__ import annotations

import socket
import subprocess
import time

import pytest

from ansible_collections.cloud58.platform.plugins.module_utils.gateway import haproxy_config
from cloud58_lab import programs

pytestmark = pytest.mark.slow


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_for_log(log, count: int) -> None:
    """Until the master has logged its ``count``-th "Loading success." (start or reload)."""
    for _ in range(600):
        if log.read_text().count("Loading success.") >= count:
            return
        time.sleep(0.05)
    pytest.fail(f"haproxy did not log 'Loading success.' {count} time(s):\n{log.read_text()}")


@pytest.fixture(scope="module")
def gateway(tmp_path_factory):
    """A running haproxy master in the foreground (as systemd's -Ws runs it) with the rendered
    config: the process, its ports, its admin socket and its log."""
    work = tmp_path_factory.mktemp("haproxy-gateway")
    web, db, dns, metrics = _free_port(), _free_port(), _free_port(), _free_port()
    services = [
        {"name": "web", "port": web, "check_path": "/healthz", "rate_limit": 3, "rate_period": "1m"},
        {"name": "db", "port": db, "mode": "tcp", "rate_limit": 2, "rate_period": "1m"},
    ]
    settings = {
        "bind_address": "127.0.0.1",
        "metrics_address": "127.0.0.1",
        "metrics_port": metrics,
        "resolver_port": dns,
        "stats_socket": str(work / "admin.sock"),
        "server_state_file": str(work / "server-state"),
        "maxconn": 1000,
    }
    # as the role writes it on a new host: no server saved yet
    (work / "server-state").write_text("1\n")
    config = work / "haproxy.cfg"
    config.write_text(haproxy_config(services, settings))
    # The master's notices go to stderr, kept; the request log (`log stdout`) is dropped.
    log = work / "haproxy.log"
    with open(log, "w", encoding="utf-8") as out:
        master = subprocess.Popen(
            programs.argv("haproxy", "-W", "-f", config), stdout=subprocess.DEVNULL, stderr=out
        )
    try:
        # The listeners serve once the first worker is up.
        _wait_for_log(log, 1)
        yield {
            "master": master,
            "web": web,
            "db": db,
            "metrics": metrics,
            "socket": str(work / "admin.sock"),
            "log": log,
        }
    finally:
        master.terminate()
        master.wait()


def _http_status(port: int) -> int:
    with socket.create_connection(("127.0.0.1", port)) as s:
        s.sendall(b"GET / HTTP/1.0\r\nHost: gateway\r\n\r\n")
        head = s.recv(64)
    return int(head.split(b" ", 2)[1])


def _tcp_outcome(port: int) -> str:
    """'closed' when HAProxy accepted and closed (no server), 'reset' when it rejected."""
    with socket.create_connection(("127.0.0.1", port)) as s:
        try:
            return "closed" if s.recv(16) == b"" else "data"
        except ConnectionResetError:
            return "reset"


def _admin(gateway, command: str) -> str:
    with socket.socket(socket.AF_UNIX) as s:
        s.connect(gateway["socket"])
        s.sendall(command.encode() + b"\n")
        chunks = []
        while chunk := s.recv(65536):
            chunks.append(chunk)
    return b"".join(chunks).decode()


def test_without_consul_every_slot_waits_in_maintenance(gateway):
    lines = _admin(gateway, "show servers state web").splitlines()
    # be_id be_name srv_id srv_name srv_addr srv_op_state srv_admin_state ... srvrecord ...
    rows = [line.split() for line in lines[2:] if line]
    assert [(row[3], row[4], row[6], row[19]) for row in rows] == [
        (f"web-{n}", "-", "32", "_web._tcp.service.consul") for n in range(1, 17)
    ]


def test_http_rate_limit_answers_429_beyond_the_limit(gateway):
    assert [_http_status(gateway["web"]) for _ in range(5)] == [503, 503, 503, 429, 429]


def test_tcp_rate_limit_resets_connections_beyond_the_limit(gateway):
    assert [_tcp_outcome(gateway["db"]) for _ in range(4)] == ["closed", "closed", "reset", "reset"]


def _get(port: int, path: str) -> tuple:
    """(status, body) of GET ``path`` on 127.0.0.1:``port`` (HTTP/1.0: the server closes)."""
    with socket.create_connection(("127.0.0.1", port)) as s:
        s.sendall(f"GET {path} HTTP/1.0\r\nHost: prometheus\r\n\r\n".encode())
        chunks = []
        while chunk := s.recv(65536):
            chunks.append(chunk)
    head, _sep, body = b"".join(chunks).partition(b"\r\n\r\n")
    return int(head.split(b" ", 2)[1]), body.decode()


def _states(body: str, metric: str) -> dict:
    """``{proxy[/server]: state}`` of the series of ``metric`` whose value is 1 (one per state)."""
    out = {}
    for line in body.splitlines():
        if line.startswith(metric + "{") and line.endswith(" 1"):
            labels = dict(pair.split("=", 1) for pair in line[len(metric) + 1 : line.index("}")].split(","))
            labels = {k: v.strip('"') for k, v in labels.items()}
            key = "/".join(labels[k] for k in ("proxy", "server") if k in labels)
            out[key] = labels["state"]
    return out


def test_exporter_serves_every_proxy_on_its_path_only(gateway):
    status, body = _get(gateway["metrics"], "/metrics")
    assert status == 200
    assert _states(body, "haproxy_frontend_status") == {"cloud58_metrics": "UP", "db": "UP", "web": "UP"}
    # Every slot waits in maintenance (no Consul answer), so both backends are down.
    assert _states(body, "haproxy_backend_status") == {"db": "DOWN", "web": "DOWN"}
    assert _states(body, "haproxy_server_status") == {
        f"{name}/{name}-{n}": "MAINT" for name in ("db", "web") for n in range(1, 17)
    }
    assert _get(gateway["metrics"], "/")[0] == 404
