"""The ingress gateway following a real Consul: the files the role cloud58.platform.haproxy_gateway
writes (haproxy.cfg, the servers' state file, the reload drop-in of haproxy.service), run by the
real haproxy (Debian's 2.6, master-worker in the foreground as systemd runs it) against one
Consul server (the pinned 1.14.11) whose DNS answers the SRV name the config resolves. Consul
runs with ACLs as the consul role sets them: default deny, and the DNS token of policy
cloud58-dns (filter consul_dns_token, the role's rules) as the agent's default token, which
DNS answers with. Backends are HTTP servers of the test, each on a loopback address of its own
(127.0.0.0/8), answering with their name (lab/cloud58_lab/gatewaylab.py):

* until the DNS token exists in Consul, its DNS answers SERVFAIL; once it does (the consul
  role's token host creates it after the agents start), the SRV answers reach HAProxy;
* instances registered in Consul appear in HAProxy's runtime API (``show servers state``) with
  their address and port, and requests reach every one;
* a deregistered instance, and one whose check in Consul fails, leave the runtime API and get
  no more requests; the failed one comes back when its check passes;
* reloads as systemd runs the role's drop-in (check, save the servers' state, USR2) while two
  clients keep sending requests, each on a new connection: every reload starts a new worker
  and not one request fails. Without the saved state the new worker answers 503 until its
  first DNS answer (docs/service-discovery.md);
* the circuit breaker (``error_limit`` 3, ``slowstart`` 5s) of an HTTP service, ``api``, and of
  a TCP one, ``db`` (its backends :class:`gatewaylab.TcpBackend`, greeting with their name): an
  instance that answers 500 to traffic while its ``/healthz`` answers 200, or one that refuses
  connections, while Consul reports it passing, is marked DOWN by HAProxy's observation of
  that traffic ("reason: Health analyze") after exactly three errors: three 500s to clients,
  or three refused attempts of a single client connection (HAProxy retries it); the others
  serve alone; healed, its health checks bring it back in slow start (a throttle below
  100 %), and then it serves again.

The role's resolve_hold_obsolete (30s) keeps a server missing from DNS answers that long; the
test sets 1s so that a removal shows in seconds. Waits are bounds against a hang only.
"""

from __future__ import annotations

import collections
import dataclasses
import itertools
import math
import re
import subprocess
import sys
import uuid
from collections.abc import Callable
from pathlib import Path

import pytest

from ansible_collections.cloud58.platform.plugins.filter.consul import FilterModule
from cloud58_lab import consulapi, gatewaylab, programs, roleplay

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
# The instances of the services api (HTTP) and db (TCP), whose servers have a circuit breaker
# of three errors.
API_NAMES = ("api1", "api2", "api3")
DB_NAMES = ("db1", "db2", "db3")
ERROR_LIMIT = 3
RELOADS = 5


class Lab:
    """Consul, the backends, the role's files and haproxy, all of one test module."""

    def __init__(self, work: Path) -> None:
        self.work = work
        self.port, self.api_port, self.db_port = gatewaylab.free_ports(3)
        management = str(uuid.uuid4())
        self.dns_token = FilterModule().filters()["consul_dns_token"](management)
        # The tokens of the consul role's servers: the DNS token is in the configuration before
        # it exists in Consul.
        tokens = {
            "initial_management": management,
            "agent": management,
            "default": self.dns_token["SecretID"],
        }
        self.consul = gatewaylab.Consul(work / "consul", "hgwc-consul", acl_tokens=tokens)
        self.backends = {name: gatewaylab.Backend(name, f"127.0.0.{21 + n}") for n, name in enumerate(NAMES)}
        self.api = {name: gatewaylab.Backend(name, f"127.0.0.{31 + n}") for n, name in enumerate(API_NAMES)}
        self.db = {name: gatewaylab.TcpBackend(name, f"127.0.0.{41 + n}") for n, name in enumerate(DB_NAMES)}
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
                    "error_limit": ERROR_LIMIT,
                },
                {
                    "name": "db",
                    "mode": "tcp",
                    "port": self.db_port,
                    "slowstart": "5s",
                    "error_limit": ERROR_LIMIT,
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

    def create_dns_token(self) -> None:
        """The DNS token's policy and the token itself, as the consul role's token host creates them."""
        token = self.dns_token
        for path, body in (
            ("/v1/acl/policy", {"Name": token["Policy"], "Rules": token["Rules"]}),
            (
                "/v1/acl/token",
                {
                    "AccessorID": token["AccessorID"],
                    "SecretID": token["SecretID"],
                    "Policies": [{"Name": token["Policy"]}],
                },
            ),
        ):
            status, value = self.consul.request("PUT", path, body)
            assert status == 200, (path, value)

    def dns(self, name: str) -> str:
        """``"<rcode> <addresses>"`` of an A query of ``name`` to Consul's DNS."""
        query = [sys.executable, "-c", consulapi.DNS_QUERY, name, str(self.consul.dns_port)]
        return subprocess.run(query, capture_output=True, text=True, check=True, timeout=60).stdout.strip()

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
        for backend in (*self.backends.values(), *self.api.values(), *self.db.values()):
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
    # Default deny: the agent's default token does not exist yet, and its DNS answers SERVFAIL.
    assert lab.dns("web.service.consul") == "2"
    lab.create_dns_token()
    assert lab.dns("web.service.consul") == "0 " + " ".join(sorted(b.address for b in lab.backends.values()))
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
    workers, served = [lab.gateway.workers()], []
    with gatewaylab.Load(lab.port, NAMES) as load:
        for n in range(RELOADS):
            start = load.results["ok"]
            load.wait_ok(200, "200 requests before a reload")
            lab.gateway.reload(lab.dropin)
            lab.gateway.wait_loaded(2 + n)
            workers.append(lab.gateway.workers())
            served.append(load.results["ok"] - start)
        load.wait_ok(200, "200 requests after the last reload")
    results = load.results
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


# HAProxy's number of connection retries (its default: the renderer sets no "retries").
HAPROXY_RETRIES = 3


@dataclasses.dataclass(frozen=True)
class Breaker:
    """A service with a circuit breaker, as a client sees it, and how its bad instance fails."""

    service: str
    backends: Callable[[Lab], dict]  # instance name -> backend
    request: Callable[[Lab], object]  # the answer of one request (a new connection) through the gateway
    ok: Callable[[str], object]  # the answer of a healthy instance
    failed: object  # the answer of the bad instance
    go_bad: Callable[[object], None]
    heal: Callable[[object], None]
    failures: int  # failed answers that reach clients before the breaker trips
    retries: int  # the connection retries HAProxy made for them (``show stat`` wretr)
    observed: str  # HAProxy's name of the last error it observed
    bad_checks: tuple[str, str]  # check_status, last_chk once the breaker tripped
    check_ok: str  # check_status once healed


BREAKERS = {
    # The bad instance answers 500 to traffic; /healthz answers 200: its checks keep passing.
    "http": Breaker(
        service="api",
        backends=lambda lab: lab.api,
        request=lambda lab: gatewaylab.get(lab.api_port),
        ok=lambda name: (200, name),
        failed=(500, "api1"),
        go_bad=lambda backend: setattr(backend, "status", 500),
        heal=lambda backend: setattr(backend, "status", 200),
        failures=ERROR_LIMIT,
        retries=0,
        observed="Wrong http response",
        bad_checks=(
            "HANA",
            f"Detected {ERROR_LIMIT} consecutive errors, last one was: Wrong http response",
        ),
        check_ok="L7OK",
    ),
    # The bad instance refuses connections. Every attempt counts, retries included: one client
    # connection is 1 + 3 attempts, the third trips the breaker, the client gets the connection
    # closed without a byte. Its TCP check (a connect to the same address) is refused too.
    "tcp": Breaker(
        service="db",
        backends=lambda lab: lab.db,
        request=lambda lab: gatewaylab.tcp_get(lab.db_port),
        ok=lambda name: name,
        failed="",
        go_bad=lambda backend: backend.refuse(),
        heal=lambda backend: backend.listen(),
        failures=math.ceil(ERROR_LIMIT / (1 + HAPROXY_RETRIES)),
        retries=HAPROXY_RETRIES * math.ceil(ERROR_LIMIT / (1 + HAPROXY_RETRIES)),
        observed="L4 unsuccessful connection",
        bad_checks=("L4CON", "Connection refused"),
        check_ok="L4OK",
    ),
}


@pytest.mark.parametrize("mode", BREAKERS)
def test_a_bad_backend_is_marked_down_by_the_circuit_breaker_and_comes_back_in_slow_start(lab, mode):
    """The first instance of a service goes bad on the traffic path while Consul reports it
    passing; HAProxy's observation of the traffic (``observe``, ``error-limit 3``, ``on-error
    mark-down``) takes it out (``show stat`` hanafail, the worker's "reason: Health analyze"),
    the others serve; healed, its health checks bring it back through slow start.

    http (``observe layer7``): it answers 500 while ``/healthz`` answers 200; each 500 is an
    error, so exactly 3 reach clients, and the checks keep passing (check status HANA).

    tcp (``observe layer4``): HAProxy 2.6's documentation says "In layer4 mode, only
    successful/unsuccessful tcp connections are significant": an error is a connection attempt
    that fails (refused, timed out, or in error before HAProxy wrote anything to it); a
    connection the server accepts and resets later counts as a success. So the bad instance
    refuses connections, and its TCP health check, a connect to the same address and port, is
    refused as well: at layer 4 no instance can fail traffic and pass its check. HAProxy
    retries a refused connection on the same server (``retries`` 3, its default, 1 s apart;
    no ``option redispatch``) and counts every attempt: the third attempt of the first client
    connection trips the breaker, about 2 s after the first, and that client alone sees a
    failure (the connection closed without a byte). The checks (``fall`` 3, ``inter`` 2s)
    would need three refusals, 4 s at least.
    """
    breaker = BREAKERS[mode]
    backends = breaker.backends(lab)
    for name, backend in backends.items():
        lab.consul.register(breaker.service, name, backend.address, backend.port)
    ports = sorted(b.port for b in backends.values())
    names = list(backends)
    bad_name, bad = names[0], backends[names[0]]

    def all_running():
        servers = lab.gateway.servers(breaker.service)
        return servers if sorted(servers) == ports and set(servers.values()) == {"2"} else None

    def row():
        return lab.gateway.stats(breaker.service)[bad.port]

    gatewaylab.wait_for(all_running, f"the runtime API to list {names} running")
    # counters since haproxy started (a slot starts with one transition counted)
    before = row()
    assert before["hanafail"].isdigit(), f"{bad_name} counts no observed errors (no observe?): {before}"
    downs, hanafail, retries = int(before["chkdown"]), int(before["hanafail"]), int(before["wretr"])
    healthy = {breaker.ok(name) for name in names[1:]}

    # The instance goes bad; requests until the breaker trips.
    served = len(getattr(bad, "served", ()))
    breaker.go_bad(bad)
    answers: collections.Counter = collections.Counter()
    for _ in range(60):
        answers[breaker.request(lab)] += 1
        tripped = row()
        if tripped["status"].startswith("DOWN"):
            break
    else:
        pytest.fail(f"{bad_name} not marked DOWN after 60 requests; answers {dict(answers)}; row {tripped}")
    # exactly that many failures in a row reached a client (http: HAProxy's default on-error,
    # fail-check, would count them as failed checks and let more through; tcp: the log's reason
    # below tells the breaker from the refused checks)
    in_a_row = answers[breaker.failed]
    if mode == "http":
        # A health check that passes clears HAProxy's count of consecutive errors (check.c:
        # CHK_RES_PASSED with observe on), so a check that reached the bad instance between
        # two failures (a slow run: inter 2s) starts the count again. The instance's own
        # record of what it answered tells the run that tripped the breaker.
        # (A check after the last error, before the row was read, reset nothing that counted.)
        since = bad.served[served:]
        errors = [answer for answer in since if answer != "check"]
        assert (in_a_row, set(errors)) == (len(errors), {500}), (answers, since)
        run = since[: max(i for i, answer in enumerate(since) if answer != "check") + 1]
        while "check" in run:
            run = run[run.index("check") + 1 :]
        in_a_row = len(run)
    assert in_a_row == breaker.failures, (
        f"failures clients saw before the trip: {dict(answers)}; row {tripped}; "
        f"haproxy's last lines:\n{lab.gateway.log()[-2000:]}"
    )
    assert set(answers) <= {breaker.failed, *healthy}
    # "DOWN", or "DOWN 1/2" once a health check passed since (http: they keep passing; rise 2)
    assert (tripped["status"].split()[0], tripped["chkdown"], tripped["hanafail"], tripped["wretr"]) == (
        "DOWN",
        str(downs + 1),
        str(hanafail + 1),
        str(retries + breaker.retries),
    )
    # the reason, the worker's only one for this server, is the observed traffic, not a failed
    # health check (the reloads' "changed from server-state" lines give none)
    downs_logged = re.findall(
        rf'Server {breaker.service}/{tripped["svname"]} is DOWN, (reason: [^"]*"[^"]*")', lab.gateway.log()
    )
    assert downs_logged == [
        "reason: Health analyze, info: "
        f'"Detected {ERROR_LIMIT} consecutive errors, last one was: {breaker.observed}"'
    ]
    if mode == "http":
        # HAProxy sets HANA with the trip itself; the next health check passes (/healthz answers
        # 200) and replaces it (inter 2s: a loaded run reads the row after it). So the row read
        # at the trip holds it, unless a check passed in between ("DOWN 1/2").
        if tripped["status"] == "DOWN":
            assert (tripped["check_status"], tripped["last_chk"]) == breaker.bad_checks, tripped
    else:
        # tcp: the refused health checks set L4CON, and keep it while the instance is bad.
        gatewaylab.wait_for(
            lambda: (row()["check_status"], row()["last_chk"]) == breaker.bad_checks,
            f"{bad_name}'s check status and last check {breaker.bad_checks}",
        )
    assert lab.consul.passing_ports(breaker.service) == ports
    assert lab.gateway.servers(breaker.service)[bad.port] == "0"

    # While it is down the two others serve every request.
    hits = bad.hits
    assert {breaker.request(lab) for _ in range(10)} == healthy
    assert bad.hits == hits
    still = row()
    assert (still["status"].split()[0], still["chkdown"]) == ("DOWN", str(downs + 1)), (
        f"{bad_name} left DOWN before the ten requests were answered (so they prove nothing): {still}"
    )

    # Healed: its health checks bring it back (rise), first throttled by slow start ...
    breaker.heal(bad)

    def warming_up():
        current, state = row(), lab.gateway.servers(breaker.service)[bad.port]
        return current if (current["status"], state) == ("UP", "1") and current["throttle"] != "" else None

    warm = gatewaylab.wait_for(
        warming_up, f"{bad_name} UP and starting (op state 1) with a slow-start throttle"
    )
    assert 0 <= int(warm["throttle"]) < 100
    assert (warm["check_status"], warm["chkdown"]) == (breaker.check_ok, str(downs + 1))

    # ... then running at full weight, and serving again.
    def full():
        current = row()
        return (
            current
            if lab.gateway.servers(breaker.service)[bad.port] == "2" and current["throttle"] == ""
            else None
        )

    gatewaylab.wait_for(full, f"{bad_name} running at full weight after slow start (no throttle)")
    gatewaylab.wait_for(
        lambda: breaker.request(lab) == breaker.ok(bad_name),
        f"a request through the gateway served by {bad_name}",
    )
    assert {breaker.request(lab) for _ in range(30)} == {breaker.ok(name) for name in names}
    assert row()["chkdown"] == str(downs + 1)
    assert lab.consul.passing_ports(breaker.service) == ports
