"""The ingress gateway's per-server connection limit and queue, live: the haproxy.cfg rendered
from two services (module_utils/gateway/haproxy.py) run by the real haproxy (Debian's 2.6,
master-worker in the foreground) with one instance each from a real Consul (the pinned 1.14.11,
its DNS answering the SRV names the config resolves). Each instance is a
:class:`gatewaylab.HeldBackend`: it holds every request until the test releases it and counts
how many were inside it at once.

``slowstart`` is 0s here: during a warm-up HAProxy also ramps a server's connection limit, which
would hold it at 1 whatever ``server_maxconn`` says.

* ``server_maxconn`` 1, ``timeout_queue`` 60s: of three requests sent together, one is inside
  the server and two wait in HAProxy's queue (``show stat``: ``scur`` 1, ``qcur`` 2); released,
  all three are answered 200, and the server never had more than one at a time;
* ``server_maxconn`` 1, ``timeout_queue`` 1s: a request queued behind one the server holds is
  answered 503 by HAProxy once its second in the queue is over, and never reaches the server.

Waits are bounds against a hang only: the held request stays held until the test releases it,
however slow the machine, so the queue's outcome does not depend on timing.
"""

from __future__ import annotations

import csv
import io
import threading

import pytest

from ansible_collections.cloud58.platform.plugins.module_utils.gateway import haproxy_config
from cloud58_lab import gatewaylab, programs
from cloud58_lab.netlab import free_ports

pytestmark = pytest.mark.slow

# service -> (its instance's loopback address, timeout_queue)
SERVICES = {"held": ("127.0.0.51", "60s"), "brief": ("127.0.0.52", "1s")}


class Lab:
    """One Consul server, a held backend per service registered in it, and the gateway."""

    def __init__(self, work) -> None:
        self.gateway, self.consul = None, None
        self.backends = {
            name: gatewaylab.HeldBackend(name, address) for name, (address, _q) in SERVICES.items()
        }
        try:
            self.consul = gatewaylab.Consul(work / "consul", "hgwq-consul")
            self._start(work)
        except BaseException:
            self.stop()
            raise

    def _start(self, work) -> None:
        self.ports = dict(zip(SERVICES, free_ports(len(SERVICES)), strict=True))
        services = [
            {
                "name": name,
                "port": self.ports[name],
                "check_path": "/healthz",
                "servers": 2,
                "server_maxconn": 1,
                "slowstart": "0s",  # no warm-up: its ramp would cap the connections too
                "timeout_queue": queue,
            }
            for name, (_address, queue) in SERVICES.items()
        ]
        settings = {
            "bind_address": "127.0.0.1",
            "maxconn": 1000,
            "metrics_port": 0,
            "resolver_port": self.consul.dns_port,
            "stats_socket": str(work / "admin.sock"),
            "server_state_file": str(work / "server-state"),
        }
        (work / "server-state").write_text("1\n")
        self.config = work / "haproxy.cfg"
        self.config.write_text(haproxy_config(services, settings))
        for name, backend in self.backends.items():
            self.consul.register(name, f"{name}-1", backend.address, backend.port)
        self.gateway = gatewaylab.Gateway(self.config, work / "admin.sock")
        for name in self.backends:
            gatewaylab.wait_for(lambda n=name: self._up(n), f"{name}'s instance UP in HAProxy")

    def _up(self, backend: str) -> bool:
        return [row["status"] for row in self.gateway.stats(backend).values()] == ["UP"]

    def counters(self, backend: str) -> tuple[int, int]:
        """(connections inside the servers, requests in the queues) of ``backend``: ``scur`` of
        its one server, and ``qcur`` of the backend's queue and the server's together."""
        rows = csv.DictReader(io.StringIO(self.gateway.admin("show stat").removeprefix("# ")))
        mine = [row for row in rows if row["pxname"] == backend and row["svname"] != "FRONTEND"]
        servers = [row for row in mine if row["svname"] != "BACKEND"]
        return (
            sum(int(row["scur"] or 0) for row in servers if row["status"] == "UP"),
            sum(int(row["qcur"] or 0) for row in mine),
        )

    def stop(self) -> None:
        if self.gateway is not None:
            self.gateway.stop()
        if self.consul is not None:
            self.consul.stop()
        for backend in self.backends.values():
            backend.stop()


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    programs.require("consul", "haproxy")
    work = tmp_path_factory.mktemp("haproxy-gateway-queue")
    (work / "consul").mkdir()
    lab = None
    try:
        lab = Lab(work)
        yield lab
    except BaseException:
        if lab is not None and lab.gateway is not None:
            print(f"--- haproxy\n{lab.gateway.log()}")
        raise
    finally:
        if lab is not None:
            lab.stop()


class Client(threading.Thread):
    """One GET through the gateway in a thread of its own; ``answer`` is ``(status, body)``."""

    def __init__(self, port: int) -> None:
        super().__init__(daemon=True)
        self.port, self.answer = port, None

    def run(self) -> None:
        self.answer = gatewaylab.get(self.port, "/work")


def _send(port: int) -> Client:
    client = Client(port)
    client.start()
    return client


def test_requests_beyond_the_servers_maxconn_wait_in_the_queue_and_are_served_in_turn(lab):
    backend, port = lab.backends["held"], lab.ports["held"]
    first = _send(port)
    gatewaylab.wait_for(lambda: backend.active == 1, "the first request inside the server")
    queued = [_send(port) for _ in range(2)]
    gatewaylab.wait_for(lambda: lab.counters("held") == (1, 2), "one request served and two queued")
    assert (backend.active, backend.served) == (1, 0)
    backend.gate.set()
    for client in (first, *queued):
        client.join(gatewaylab.WAIT)
    assert [c.answer for c in (first, *queued)] == [(200, "held")] * 3
    assert (backend.served, backend.most) == (3, 1)
    assert lab.counters("held") == (0, 0)


def test_a_request_queued_past_timeout_queue_gets_503_and_never_reaches_the_server(lab):
    backend, port = lab.backends["brief"], lab.ports["brief"]
    first = _send(port)
    gatewaylab.wait_for(lambda: backend.active == 1, "the first request inside the server")
    late = _send(port)
    late.join(gatewaylab.WAIT)  # answered while the first is still held
    assert (late.answer or (None,))[0] == 503, late.answer
    assert (backend.active, backend.served, first.answer) == (1, 0, None)
    backend.gate.set()
    first.join(gatewaylab.WAIT)
    assert first.answer == (200, "brief")
    assert (backend.served, backend.most) == (1, 1)
