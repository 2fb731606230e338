"""A real 3-server Consul cluster (the pinned 1.14.11, scripts/setup/consul.sh), one server per
network namespace on one bridge in 198.18.40.0/24, each with the configuration
``module_utils/consul`` makes for the future consul role (gossip encryption, TLS for RPC and the
HTTPS API, ACLs default-deny; certificates from a throwaway CA, cloud58_lab.pki), the gossip key
in a file of its own (issue 15, items 1 and 5):

* the three servers elect one leader, and every server lists the same three raft peers;
* every member gossips with the one key the test generated;
* a server refuses a plain (non-TLS) RPC connection, and the API a client without a
  certificate of the CA;
* without a token a write is refused (403) and a catalog read sees nothing of a service that a
  token registered through ``/v1/txn``; with the token the read sees exactly that instance;
* each server serves its metrics in Prometheus' format (``/v1/agent/metrics?format=prometheus``,
  telemetry on, no host name in the names) to a token of Prometheus' policy (``agent:read``,
  ``nodes.PROMETHEUS_RULES``) sent as ``Authorization: Bearer``, as Prometheus' consul jobs
  send it, and to no request without it or with a token lacking ``agent:read``;
* with a follower stopped, then (the follower back) with the leader stopped, a registration
  through each remaining server succeeds and the catalog holds every instance.

The test talks to each server's HTTPS API over a unix socket in the server's directory (the
API listens on nothing else; plain HTTP is off), so no address outside the namespaces is used.
The gossip key, the CA and the ACL bootstrap token are generated per run; the key is in the
servers' config files and the private keys in files (mode 0600, removed with the lab), the
tokens stay in this process's memory.
Processes are stopped by PID and the namespaces removed by :class:`NetLab`.
"""

from __future__ import annotations

import base64
import json
import os
import signal
import ssl
import subprocess
from pathlib import Path

import pytest

from ansible_collections.cloud58.platform.plugins.module_utils.consul import (
    PROMETHEUS_POLICY,
    PROMETHEUS_RULES,
    server_config,
)
from cloud58_lab import consulapi, programs
from cloud58_lab.netlab import NetLab, run_prefix, wait_until
from cloud58_lab.pki import CertificateAuthority

pytestmark = pytest.mark.slow

DATACENTER = "bj1"
SERVERS = {"s1": "198.18.40.1", "s2": "198.18.40.2", "s3": "198.18.40.3"}
RAFT_PORT = 8300
# The name every server's certificate carries (Consul checks it with verify_server_hostname).
SERVER_NAME = f"server.{DATACENTER}.consul"
# The token of a request without one (Consul's well-known anonymous token).
ANONYMOUS = "token with AccessorID '00000000-0000-0000-0000-000000000002'"
# Bounds against a hang only; no result depends on how fast the machine is.
WAIT = 180
SYNC_RULES = 'node_prefix "k8s-" { policy = "write" }\nservice_prefix "" { policy = "write" }\n'


class Cluster:
    """The servers' processes, directories and the tokens of one run."""

    def __init__(self, net: NetLab, key: str) -> None:
        self.net = net
        self.key = key
        self.procs: dict[str, subprocess.Popen] = {}
        self.ca = CertificateAuthority("cloud58-consul-test-ca")
        self.ca_file = net.workdir / "ca.crt"
        self.ca_file.write_bytes(self.ca.pair.cert_pem)
        client_cert, client_key = self.ca.issue("cloud58-consul-test", client=True).write(
            net.workdir, "client"
        )
        self.tls = self.client_context(client_cert, client_key)
        self.management = ""  # the bootstrap token (global-management)
        self.sync = ""  # a token with the rights cloud58-consul-sync will have

    def directory(self, name: str) -> Path:
        return self.net.workdir / name

    def client_context(self, cert: Path | None = None, key: Path | None = None) -> ssl.SSLContext:
        context = ssl.create_default_context(cafile=str(self.ca_file))
        if cert:
            context.load_cert_chain(str(cert), str(key))
        return context

    def config(self, name: str) -> dict:
        """The configuration the consul role will write (module_utils/consul), with this run's
        directories and the HTTPS API on a unix socket."""
        directory = self.directory(name)
        settings = {
            "data_dir": str(directory / "data"),
            "tls_dir": str(directory),
            "https_address": f"unix://{directory / 'https.sock'}",
        }
        return server_config(name, SERVERS, DATACENTER, settings)

    def start(self, name: str) -> None:
        directory = self.directory(name)
        (directory / "data").mkdir(parents=True, exist_ok=True)
        if not (directory / "server.crt").exists():
            # Servers dial each other too: serving and client usage.
            pair = self.ca.issue(SERVER_NAME, dns_names=(SERVER_NAME,), server=True, client=True)
            pair.write(directory, "server")
            (directory / "ca.crt").write_bytes(self.ca.pair.cert_pem)
        config, secret = directory / "consul.json", directory / "encrypt.json"
        config.write_text(json.dumps(self.config(name), indent=2))
        # The gossip key in a file of its own, as the role will keep it (not in the config).
        fd = os.open(secret, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            json.dump({"encrypt": self.key}, out)
        # `ip netns exec` execs consul: the PID is the server's own.
        consul = [programs.path("consul"), "agent", f"-config-file={config}", f"-config-file={secret}"]
        with open(directory / "consul.log", "ab") as log:
            proc = subprocess.Popen(
                programs.argv("ip", "netns", "exec", self.net.ns(name), *consul),
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        self.procs[name] = proc
        self.net.servers.append(proc)  # NetLab.close() stops it by PID in any case
        wait_until(lambda: (directory / "https.sock").exists() or proc.poll() is not None, WAIT, what=name)
        if proc.poll() is not None:
            pytest.fail(f"consul {name} exited ({proc.returncode}):\n{self.log(name)}")

    def stop(self, name: str) -> None:
        proc = self.procs.pop(name)
        os.kill(proc.pid, signal.SIGTERM)
        proc.wait(timeout=WAIT)

    def log(self, name: str) -> str:
        path = self.directory(name) / "consul.log"
        return "\n".join(path.read_text(errors="replace").splitlines()[-30:]) if path.exists() else ""

    def request(self, name: str, method: str, path: str, body=None, token: str = ""):
        """``(status, headers, decoded JSON or text)`` of one request to server ``name``."""
        return consulapi.request(
            self.directory(name) / "https.sock", self.tls, SERVER_NAME, method, path, body=body, token=token
        )

    def get(self, name: str, path: str, token: str = ""):
        status, _, value = self.request(name, "GET", path, token=token)
        assert status == 200, f"GET {path} on {name}: {status} {value}"
        return value

    def leader(self, name: str) -> str:
        try:
            status, _, value = self.request(name, "GET", "/v1/status/leader")
        except OSError:
            return ""
        return value if status == 200 else ""

    def agreed_leader(self) -> str:
        """The leader's raft address once every running server names the same one, else ''."""
        leaders = {self.leader(name) for name in self.procs}
        return leaders.pop() if len(leaders) == 1 and "" not in leaders else ""

    def name_of(self, raft_address: str) -> str:
        return next(name for name, address in SERVERS.items() if f"{address}:{RAFT_PORT}" == raft_address)


def _instance(number: int) -> dict:
    return {
        "ID": f"web-198-18-41-{number}",
        "Service": "web",
        "Address": f"198.18.41.{number}",
        "Port": 8080,
        "Tags": ["cluster=bj1-a"],
    }


def _register_txn(node: str, instance: dict) -> list:
    return [
        {"Node": {"Verb": "set", "Node": {"Node": node, "Address": "198.18.40.100"}}},
        {"Service": {"Verb": "set", "Node": node, "Service": instance}},
    ]


def _register(cluster: Cluster, through: str, node: str, instance: dict) -> None:
    status, _, value = cluster.request(
        through, "PUT", "/v1/txn", _register_txn(node, instance), token=cluster.sync
    )
    assert status == 200, f"txn through {through}: {status} {value}"
    assert value["Errors"] is None
    assert [sorted(result) for result in value["Results"]] == [["Node"], ["Service"]]


def _instances(cluster: Cluster, through: str, service: str) -> list[tuple[str, str, str, int]]:
    entries = cluster.get(through, f"/v1/catalog/service/{service}?consistent", token=cluster.sync)
    return sorted((e["Node"], e["ServiceID"], e["ServiceAddress"], e["ServicePort"]) for e in entries)


@pytest.fixture(scope="module")
def cluster():
    programs.require("consul", "ip")
    with NetLab(prefix=run_prefix("c58cs")) as net:
        net.add_switch("sw")
        for name, address in SERVERS.items():
            net.add_namespace(name, forwarding=False)
            net.attach("sw", name, "eth0", f"{address}/24")
        c = Cluster(net, base64.b64encode(os.urandom(32)).decode())
        try:
            for name in SERVERS:
                c.start(name)
            wait_until(c.agreed_leader, WAIT, what="one leader named by every server")

            def bootstrap():
                status, _, value = c.request("s1", "PUT", "/v1/acl/bootstrap")
                return value["SecretID"] if status == 200 else None

            # The ACL system starts working a moment after the leader is elected.
            c.management = wait_until(bootstrap, WAIT, what="ACL bootstrap")
            status, _, policy = c.request(
                "s1", "PUT", "/v1/acl/policy", {"Name": "cloud58-sync", "Rules": SYNC_RULES}, c.management
            )
            assert status == 200, policy
            status, _, token = c.request(
                "s1",
                "PUT",
                "/v1/acl/token",
                {"Description": "cloud58-consul-sync (test)", "Policies": [{"ID": policy["ID"]}]},
                c.management,
            )
            assert status == 200, token
            c.sync = token["SecretID"]
            yield c
        except BaseException:
            for name in SERVERS:
                print(f"--- consul {name}\n{c.log(name)}")
            raise


def test_three_servers_elect_one_leader_and_list_every_peer(cluster):
    leader = cluster.agreed_leader()
    assert leader in {f"{address}:{RAFT_PORT}" for address in SERVERS.values()}
    expected = sorted(f"{address}:{RAFT_PORT}" for address in SERVERS.values())
    assert {name: sorted(cluster.get(name, "/v1/status/peers")) for name in SERVERS} == {
        name: expected for name in SERVERS
    }
    members = cluster.get("s1", "/v1/agent/members", token=cluster.management)
    assert sorted((m["Name"], m["Addr"], m["Status"], m["Tags"]["role"]) for m in members) == [
        (name, address, 1, "consul") for name, address in SERVERS.items()
    ]


def test_every_member_gossips_with_the_one_key(cluster):
    rings = cluster.get("s1", "/v1/operator/keyring", token=cluster.management)
    lan = [ring for ring in rings if not ring["WAN"]]
    assert [(ring["Datacenter"], ring["Keys"], ring["NumNodes"]) for ring in lan] == [
        (DATACENTER, {cluster.key: 3}, 3)
    ]


def test_a_server_refuses_a_plain_rpc_connection(cluster):
    log = cluster.directory("s2") / "consul.log"
    warning = "Non-TLS connection attempted with VerifyIncoming set"
    before = log.read_text().count(warning)
    code = (
        "import socket,sys\n"
        f"c=socket.create_connection(({SERVERS['s2']!r}, {RAFT_PORT}), timeout=30)\n"
        "c.sendall(bytes([0]))\n"  # Consul's RPC byte without its TLS byte first
        "sys.stdout.write(repr(c.recv(64)))\n"
    )
    # Closed without a byte of answer; with TLS not enforced the server would wait for a request.
    assert cluster.net.exec("s1", "python3", "-c", code).stdout == "b''"
    wait_until(lambda: log.read_text().count(warning) == before + 1, WAIT, what=f"{warning!r} in s2's log")


def test_the_api_refuses_a_client_without_a_certificate(cluster):
    def leader_without_certificate():
        conn = consulapi.UnixHTTPSConnection(
            cluster.directory("s1") / "https.sock", cluster.client_context(), SERVER_NAME
        )
        try:
            conn.request("GET", "/v1/status/leader")
            return conn.getresponse().read()
        finally:
            conn.close()

    # TLS 1.3: the handshake completes on the client's side; the server, missing the client's
    # certificate, refuses before answering: the client reads either the server's alert
    # "certificate required" or, when the close wins the race, the end of the stream.
    with pytest.raises(ssl.SSLError) as refused:
        leader_without_certificate()
    assert (
        isinstance(refused.value, ssl.SSLEOFError)
        or refused.value.reason == "TLSV13_ALERT_CERTIFICATE_REQUIRED"
    )
    # The same request with the test's client certificate is answered.
    assert cluster.leader("s1") == cluster.agreed_leader() != ""


def test_without_a_token_writes_are_refused_and_reads_see_nothing(cluster):
    instance = dict(_instance(1), Service="api", ID="api-198-18-41-1")
    _register(cluster, "s1", "k8s-bj1-a", instance)
    assert _instances(cluster, "s2", "api") == [("k8s-bj1-a", "api-198-18-41-1", "198.18.41.1", 8080)]

    for name in SERVERS:
        assert cluster.get(name, "/v1/catalog/service/api") == []
        assert cluster.get(name, "/v1/catalog/services") == {}
        assert cluster.get(name, "/v1/health/service/api") == []

    # A follower forwards the write to the leader, and says so.
    leader = cluster.name_of(cluster.agreed_leader())
    denied = f"Permission denied: {ANONYMOUS} lacks permission 'service:write' on \"web\""
    node_write = "permission 'node:write' on \"k8s-bj1-a\""
    register = {"Node": "k8s-bj1-a", "Address": "198.18.40.100", "Service": _instance(9)}
    for name in SERVERS:
        status, _, value = cluster.request(name, "PUT", "/v1/catalog/register", register)
        forwarded = "" if name == leader else "rpc error making call: "
        assert (name, status, value) == (name, 403, forwarded + denied)
        status, _, value = cluster.request(name, "PUT", "/v1/txn", _register_txn("k8s-bj1-a", _instance(9)))
        # The transaction API answers 409 with one error per operation; nothing is applied.
        assert (name, status, value) == (
            name,
            409,
            {
                "Results": None,
                "Errors": [
                    {"OpIndex": 0, "What": f"Permission denied: {ANONYMOUS} lacks {node_write}"},
                    {"OpIndex": 1, "What": denied},
                ],
            },
        )
    # Nothing of the refused writes reached the catalog.
    assert _instances(cluster, "s3", "web") == []


def _metrics(cluster: Cluster, name: str, headers: dict) -> tuple:
    """``(status, body)`` of Prometheus' request for server ``name``'s metrics."""
    conn = consulapi.UnixHTTPSConnection(cluster.directory(name) / "https.sock", cluster.tls, SERVER_NAME)
    try:
        conn.request("GET", "/v1/agent/metrics?format=prometheus", headers=headers)
        resp = conn.getresponse()
        return resp.status, resp.read().decode()
    finally:
        conn.close()


def test_metrics_in_prometheus_format_need_an_agent_read_token_sent_as_bearer(cluster):
    status, _, policy = cluster.request(
        "s1",
        "PUT",
        "/v1/acl/policy",
        {"Name": PROMETHEUS_POLICY, "Rules": PROMETHEUS_RULES},
        cluster.management,
    )
    assert status == 200, policy
    status, _, token = cluster.request(
        "s1", "PUT", "/v1/acl/token", {"Policies": [{"ID": policy["ID"]}]}, cluster.management
    )
    assert status == 200, token
    bearer = {"Authorization": f"Bearer {token['SecretID']}"}
    for name in SERVERS:
        # A follower knows the new token once the leader's raft entry reached it ("ACL not found" before).
        wait_until(
            lambda name=name: _metrics(cluster, name, bearer)[0] == 200, WAIT, what=f"{name} knows the token"
        )
        status, body = _metrics(cluster, name, bearer)
        names = {line.split("{")[0].split(" ")[0] for line in body.splitlines() if line and line[0] != "#"}
        assert (name, status) == (name, 200), body
        # Prometheus' text, with the raft and runtime gauges under their plain names (disable_hostname).
        assert {"consul_raft_state_leader", "consul_runtime_alloc_bytes"} <= names, sorted(names)[:20]
        assert [n for n in names if n.startswith(f"consul_{name}_")] == []
        # Without a token, or with one lacking agent:read, the agent refuses.
        assert _metrics(cluster, name, {})[0] == 403
        assert _metrics(cluster, name, {"Authorization": f"Bearer {cluster.sync}"})[0] == 403


def test_registration_continues_with_a_follower_then_the_leader_stopped(cluster):
    _register(cluster, "s1", "k8s-bj1-a", _instance(1))
    leader = cluster.name_of(cluster.agreed_leader())
    follower, other = sorted(name for name in SERVERS if name != leader)

    cluster.stop(follower)
    # Through the other follower (forwarded to the leader) and through the leader itself.
    _register(cluster, other, "k8s-bj1-a", _instance(2))
    _register(cluster, leader, "k8s-bj1-a", _instance(3))
    assert [i[1] for i in _instances(cluster, other, "web")] == [f"web-198-18-41-{n}" for n in (1, 2, 3)]

    # The follower comes back with its data; every server is healthy again before the leader goes.
    cluster.start(follower)

    def healthy():
        status, _, health = cluster.request(
            leader, "GET", "/v1/operator/autopilot/health", token=cluster.management
        )
        if status != 200:
            return None
        # Servers is null for a moment while autopilot takes the returning server in.
        rows = sorted((s["Name"], s["Healthy"], s["Voter"]) for s in health["Servers"] or [])
        return rows if health["Healthy"] and len(rows) == len(SERVERS) else None

    rows = wait_until(healthy, WAIT, what="autopilot: 3 healthy servers")
    assert rows == [(name, True, True) for name in sorted(SERVERS)]

    cluster.stop(leader)
    # The two remaining servers name the old leader until they notice it is gone.
    remaining = {f"{SERVERS[name]}:{RAFT_PORT}" for name in (follower, other)}
    wait_until(
        lambda: cluster.agreed_leader() in remaining, WAIT, what="a new leader of the two remaining servers"
    )
    for number, through in ((4, follower), (5, other)):
        _register(cluster, through, "k8s-bj1-a", _instance(number))
    for through in (follower, other):
        assert _instances(cluster, through, "web") == [
            ("k8s-bj1-a", f"web-198-18-41-{n}", f"198.18.41.{n}", 8080) for n in range(1, 6)
        ]
