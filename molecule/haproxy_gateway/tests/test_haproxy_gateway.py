"""Verify the haproxy_gateway scenario (testinfra): HAProxy under systemd with the role's files,
and what the reload of side_effect.yml did.

Every request is made inside the container, to 127.0.0.1.
"""

from __future__ import annotations

import json
import shlex

import testinfra

W1 = testinfra.get_host("podman://mol-gw-w1")

# Prints the status HAProxy answers to one request on a new connection.
_STATUS = """\
import socket, sys
with socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=10) as conn:
    conn.sendall(b"GET / HTTP/1.0\\r\\nHost: gateway\\r\\n\\r\\n")
    print(conn.recv(64).split(b" ", 2)[1].decode())
"""


def _status(port: int) -> str:
    return W1.check_output("python3 -c " + shlex.quote(_STATUS) + f" {port}")


def _children(pid: int) -> list[int]:
    return [int(p) for p in W1.file(f"/proc/{pid}/task/{pid}/children").content_string.split()]


def test_haproxy_runs_enabled_with_the_reload_dropin():
    service = W1.service("haproxy")
    assert (service.is_running, service.is_enabled) == (True, True)
    reload = W1.check_output("systemctl show --property=ExecReload --value haproxy.service")
    assert "server-state" in reload


def test_every_request_during_the_reload_was_answered_by_haproxy():
    """No refused or reset connection: every request got HAProxy's 503 (no server in the slots)."""
    outcomes = W1.file("/var/tmp/mol-gw-client.log").content_string.split()
    assert len(outcomes) >= 40
    assert sorted(set(outcomes)) == ["503"]


def test_the_reload_kept_the_master_and_replaced_its_worker():
    before = json.loads(W1.file("/var/tmp/mol-gw-before.json").content_string)
    master = int(W1.check_output("systemctl show --property=MainPID --value haproxy.service"))
    workers = _children(master)
    assert master == before["master"]
    assert len(before["workers"]) == 1
    assert len(workers) == 1
    assert workers != before["workers"]


def test_the_new_service_listens_after_the_reload():
    assert (_status(8080), _status(8081)) == ("503", "503")


def test_the_reload_saved_the_servers_state_of_every_slot():
    """ExecReload saved ``show servers state`` before the new worker started: the 16 slots of web
    (the new service, api, was not in the old worker)."""
    lines = W1.file("/var/lib/haproxy/server-state").content_string.splitlines()
    rows = [line.split() for line in lines[2:] if line and not line.startswith("#")]
    assert lines[0] == "1"
    assert sorted({(row[1], row[3]) for row in rows}) == sorted(("web", f"web-{n}") for n in range(1, 17))
