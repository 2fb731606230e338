"""The ingress gateway following a real Consul: the files the role cloud58.platform.haproxy_gateway
writes (haproxy.cfg, the servers' state file, the reload drop-in of haproxy.service), run by the
real haproxy (Debian's 2.6, master-worker in the foreground as systemd runs it) against one
Consul server (the pinned 1.14.11) whose DNS answers the SRV name the config resolves. Backends
are HTTP servers of the test, each on a loopback address of its own (127.0.0.0/8), answering
with their name (lab/cloud58_lab/gatewaylab.py):

* instances registered in Consul appear in HAProxy's runtime API (``show servers state``) with
  their address and port, and requests reach every one;
* a deregistered instance, and one whose check in Consul fails, leave the runtime API and get
  no more requests; the failed one comes back when its check passes;
* reloads as systemd runs the role's drop-in (check, save the servers' state, USR2) while two
  clients keep sending requests, each on a new connection: every reload starts a new worker
  and not one request fails. Without the saved state the new worker answers 503 until its
  first DNS answer (docs/service-discovery.md);
* the circuit breaker of a second service, ``api`` (``error_limit`` 3, ``slowstart`` 5s): an
  instance that answers 500 to traffic while its ``/healthz`` answers 200 and Consul reports it
  passing is marked DOWN by HAProxy's observation of that traffic (check status HANA) after
  exactly three errors, the others serve alone; healed, its health checks bring it back in slow
  start (a throttle below 100 %), and then it serves again.

The role's resolve_hold_obsolete (30s) keeps a server missing from DNS answers that long; the
test sets 1s so that a removal shows in seconds. Waits are bounds against a hang only.
"""

from __future__ import annotations

import collections
import itertools
import sys
import threading
from pathlib import Path

import pytest

from cloud58_lab import gatewaylab, programs, roleplay

pytestmark = pytest.mark.slow

HOST = "hgwc-gw1"
PLAYBOOK = """\
- name: Run the ingress gateway
  hosts: all
  gather_facts: false
  roles:
    - cloud58.platform.haproxy_gateway
"""
NAMES = ("b1", "b2", "b3")
# The instances of the service api, whose servers have a circuit breaker of three errors.
API_NAMES = ("api1", "api2", "api3")
API_ERROR_LIMIT = 3
RELOADS = 5


class Lab:
    """Consul, the backends, the role's files and haproxy, all of one test module."""

    def __init__(self, work: Path) -> None:
        self.work = work
        self.port, self.api_port = gatewaylab.free_ports(2)
        self.consul = gatewaylab.Consul(work / "consul", "hgwc-consul")
        self.backends = {name: gatewaylab.Backend(name, f"127.0.0.{21 + n}") for n, name in enumerate(NAMES)}
        self.api = {name: gatewaylab.Backend(name, f"127.0.0.{31 + n}") for n, name in enumerate(API_NAMES)}
        self.config = work / "haproxy.cfg"
        self.dropin = work / "haproxy.service.d" / "cloud58-reload.conf"
        self.state = work / "server-state"
        self.gateway = None

    def play(self) -> None:
        variables = {
            # what the preflight play registers on localhost; the role's default reads it there
            "cloud58_topology": {"plan": {"hosts": {HOST: {"labels": {"function": "ingress"}}}}},
            "haproxy_gateway_services": [
                {"name": "web", "port": self.port, "check_path": "/healthz"},
                # short enough that the test sees the whole warm-up, long enough to poll it
                {
                    "name": "api",
                    "port": self.api_port,
                    "check_path": "/healthz",
                    "slowstart": "5s",
                    "error_limit": API_ERROR_LIMIT,
                },
            ],
            "haproxy_gateway_bind_address": "127.0.0.1",
            # no exporter frontend: it would bind 0.0.0.0:8405 on this machine (the live test reads one)
            "haproxy_gateway_metrics_port": 0,
            "haproxy_gateway_resolver_port": self.consul.dns_port,
            "haproxy_gateway_resolve_hold_obsolete": "1s",
            "haproxy_gateway_maxconn": 1000,
            "haproxy_gateway_rate_limit": 10_000_000,
            "haproxy_gateway_stats_socket": str(self.work / "admin.sock"),
            "haproxy_gateway_server_state_file": str(self.state),
            "haproxy_gateway_config_file": str(self.config),
            "haproxy_gateway_reload_dropin": str(self.dropin),
            "haproxy_gateway_install_package": False,
            "haproxy_gateway_manage_service": False,
            "ansible_connection": "local",
            "ansible_python_interpreter": sys.executable,
        }
        stats, failed, _ = roleplay.play(self.work, PLAYBOOK, HOST, variables, with_output=True)
        assert (stats, failed) == ({"changed": 4, "failures": 0}, [])

    def register(self, name: str) -> None:
        backend = self.backends[name]
        self.consul.register("web", name, backend.address, backend.port)

    def wait_servers(self, names) -> dict[int, str]:
        """Until the runtime API lists exactly the backends ``names`` (by port), up or starting."""
        ports = {self.backends[name].port for name in names}

        def listed():
            servers = self.gateway.servers("web")
            return servers if set(servers) == ports and set(servers.values()) <= {"1", "2"} else None

        return gatewaylab.wait_for(listed, f"the runtime API to list {sorted(names)}")

    def answers(self, count: int) -> set[tuple[int, str]]:
        """The distinct (status, backend name) of ``count`` requests, each on a new connection."""
        return {gatewaylab.get(self.port) for _ in range(count)}

    def hits(self) -> dict[str, int]:
        return {name: backend.hits for name, backend in self.backends.items()}

    def stop(self) -> None:
        if self.gateway is not None:
            self.gateway.stop()
        for backend in (*self.backends.values(), *self.api.values()):
            backend.stop()
        self.consul.stop()


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    programs.require("consul", "haproxy", "socat", "ansible-playbook")
    work = tmp_path_factory.mktemp("haproxy-gateway-consul")
    lab = Lab(work)
    try:
        lab.play()
        lab.gateway = gatewaylab.Gateway(lab.config, work / "admin.sock")
        yield lab
    except BaseException:
        print(f"--- consul\n{lab.consul.log()}")
        if lab.gateway is not None:
            print(f"--- haproxy\n{lab.gateway.log()}")
        raise
    finally:
        lab.stop()


def test_registered_instances_appear_in_the_runtime_api_and_all_serve(lab):
    for name in NAMES:
        lab.register(name)
    servers = lab.wait_servers(NAMES)
    rows = [line.split() for line in lab.gateway.admin("show servers state web").splitlines()[2:] if line]
    # srv_addr (4) and srv_port (18) of the slots that have an address from Consul's SRV answer
    listed = sorted((row[4], int(row[18])) for row in rows if row[4] != "-")
    assert listed == sorted((b.address, b.port) for b in lab.backends.values())
    assert len(servers) == 3
    assert lab.answers(30) == {(200, name) for name in NAMES}


def test_a_deregistered_instance_leaves_rotation(lab):
    lab.consul.deregister("b1")
    lab.wait_servers(("b2", "b3"))
    before = lab.hits()
    assert lab.answers(20) == {(200, "b2"), (200, "b3")}
    assert lab.hits()["b1"] == before["b1"]


def test_a_failing_consul_check_stops_traffic_and_a_passing_one_brings_it_back(lab):
    lab.consul.set_check("b2", passing=False)
    assert lab.consul.passing_ports("web") == [lab.backends["b3"].port]
    lab.wait_servers(("b3",))
    before = lab.hits()
    assert lab.answers(10) == {(200, "b3")}
    assert lab.hits()["b2"] == before["b2"]
    lab.consul.set_check("b2", passing=True)
    lab.wait_servers(("b2", "b3"))
    assert lab.answers(20) == {(200, "b2"), (200, "b3")}


def test_reloads_under_load_start_new_workers_and_fail_no_request(lab):
    lab.register("b1")
    lab.wait_servers(NAMES)
    results: collections.Counter = collections.Counter()
    stop = threading.Event()

    def client():
        while not stop.is_set():
            try:
                status, body = gatewaylab.get(lab.port)
                results["ok" if status == 200 and body in NAMES else f"{status} {body[:40]!r}"] += 1
            except OSError as e:
                results[type(e).__name__] += 1

    clients = [threading.Thread(target=client) for _ in range(2)]
    workers, served = [lab.gateway.workers()], []
    for thread in clients:
        thread.start()
    try:
        for n in range(RELOADS):
            start = results["ok"]
            gatewaylab.wait_for(
                lambda start=start: results["ok"] >= start + 200, "200 requests before a reload"
            )
            lab.gateway.reload(lab.dropin)
            lab.gateway.wait_loaded(2 + n)
            workers.append(lab.gateway.workers())
            served.append(results["ok"] - start)
        start = results["ok"]
        gatewaylab.wait_for(lambda: results["ok"] >= start + 200, "200 requests after the last reload")
    finally:
        stop.set()
        for thread in clients:
            thread.join()
    # Every reload forked a worker that none of the earlier ones was; the newest serves.
    new = [sorted(set(after) - set(before)) for before, after in itertools.pairwise(workers)]
    assert [len(pids) for pids in new] == [1] * RELOADS
    assert len({pid for pids in new for pid in pids} | set(workers[0])) == RELOADS + 1
    assert all(count >= 200 for count in served)
    assert set(results) == {"ok"}, results
    # The last reload saved the three servers for the new worker.
    saved = [line.split() for line in lab.state.read_text().splitlines()[2:] if line]
    assert sorted(int(row[18]) for row in saved if row[1] == "web" and row[4] != "-") == sorted(
        b.port for b in lab.backends.values()
    )
    assert lab.answers(30) == {(200, name) for name in NAMES}


def _api_server(lab, name: str) -> dict[str, str]:
    """The ``show stat`` row of the api server that holds instance ``name``."""
    return lab.gateway.stats("api")[lab.api[name].port]


def test_a_bad_backend_is_marked_down_by_the_circuit_breaker_and_comes_back_in_slow_start(lab):
    """api1 answers 500 to traffic while its health check and its Consul check pass: HAProxy's
    observation of the traffic (``observe layer7``, ``error-limit 3``, ``on-error mark-down``)
    takes it out, not the check and not Consul; healed, the checks bring it back through slow start."""
    for name in API_NAMES:
        backend = lab.api[name]
        lab.consul.register("api", name, backend.address, backend.port)
    ports = sorted(b.port for b in lab.api.values())

    def all_running():
        servers = lab.gateway.servers("api")
        return servers if sorted(servers) == ports and set(servers.values()) == {"2"} else None

    gatewaylab.wait_for(all_running, f"the runtime API to list {list(API_NAMES)} running")
    bad = lab.api["api1"]
    # counters since haproxy started (a slot starts with one transition counted)
    before = _api_server(lab, "api1")
    downs, hanafail = int(before["chkdown"]), int(before["hanafail"])

    # api1 goes bad on the traffic path only; requests until the breaker trips.
    bad.status = 500
    answers: collections.Counter = collections.Counter()
    for _ in range(60):
        answers[gatewaylab.get(lab.api_port)] += 1
        tripped = _api_server(lab, "api1")
        if tripped["status"].startswith("DOWN"):
            break
    else:
        pytest.fail(f"api1 not marked DOWN after 60 requests; answers {dict(answers)}; row {tripped}")
    # exactly error_limit errors reached a client; the reason is the observed traffic (HANA),
    # not a failed health check (L7STS), and Consul still reports api1 passing
    # (HAProxy's default on-error, fail-check, would count them as failed checks: more errors)
    assert answers[(500, "api1")] == API_ERROR_LIMIT, f"errors clients saw before the trip: {dict(answers)}"
    assert set(answers) <= {(500, "api1"), (200, "api2"), (200, "api3")}
    assert (tripped["status"], tripped["check_status"], tripped["chkdown"], tripped["hanafail"]) == (
        "DOWN",
        "HANA",
        str(downs + 1),
        str(hanafail + 1),
    )
    assert (
        tripped["last_chk"]
        == f"Detected {API_ERROR_LIMIT} consecutive errors, last one was: Wrong http response"
    )
    assert lab.consul.passing_ports("api") == ports
    assert lab.gateway.servers("api")[bad.port] == "0"

    # While api1 is down the two others serve every request.
    hits = bad.hits
    assert {gatewaylab.get(lab.api_port) for _ in range(10)} == {(200, "api2"), (200, "api3")}
    assert bad.hits == hits
    still = _api_server(lab, "api1")
    assert (still["status"].split()[0], still["chkdown"]) == ("DOWN", str(downs + 1)), (
        f"api1 left DOWN before the ten requests were answered (so they prove nothing): {still}"
    )

    # Healed: its health checks bring it back (rise), first throttled by slow start ...
    bad.status = 200

    def warming_up():
        row, state = _api_server(lab, "api1"), lab.gateway.servers("api")[bad.port]
        return row if (row["status"], state) == ("UP", "1") and row["throttle"] != "" else None

    warm = gatewaylab.wait_for(warming_up, "api1 UP and starting (op state 1) with a slow-start throttle")
    assert 0 <= int(warm["throttle"]) < 100
    assert (warm["check_status"], warm["chkdown"]) == ("L7OK", str(downs + 1))

    # ... then running at full weight, and serving again.
    def full():
        row = _api_server(lab, "api1")
        return row if lab.gateway.servers("api")[bad.port] == "2" and row["throttle"] == "" else None

    gatewaylab.wait_for(full, "api1 running at full weight after slow start (no throttle)")
    gatewaylab.wait_for(
        lambda: gatewaylab.get(lab.api_port) == (200, "api1"), "a request through the gateway served by api1"
    )
    assert {gatewaylab.get(lab.api_port) for _ in range(30)} == {(200, name) for name in API_NAMES}
    assert _api_server(lab, "api1")["chkdown"] == str(downs + 1)
    assert lab.consul.passing_ports("api") == ports
