"""The role cloud58.platform.consul run by ansible-playbook on this machine for the three
servers of each of the lab's datacenters and a client agent (inventories/lab: lab1-m1..m3 and
lab2-m1..m3 in consul_servers, lab1-w1 an agent), every file redirected to a directory per host, the binary
downloaded with get_url from an HTTP mirror on 127.0.0.1 that the test serves with its sha256,
no user created and no service touched; then the real consul (the pinned 1.14.11) started with
the command line of the unit the role wrote, one host per network namespace on a bridge with
the plan's addresses (198.18.0.0/15):

* check mode writes nothing and shows the diff of consul.json and the unit, never a secret;
* a run writes the files (consul.json = the filter's configuration, secrets.json and the key
  with mode 0600, the binary = the mirror's);
* each datacenter's three servers elect one leader and list the same three raft peers; the
  agent joins; the six servers meet over WAN; every member gossips with the role's key; ACLs
  deny a request without a token (403) and the initial management token the role wrote is a
  global-management token; the agent's DNS (port 8600) answers consul.service.consul with the
  three servers once the role created the DNS token, and a server of lab2 answers
  consul.service.lab1.consul with the same addresses (over WAN);
* a run with Consul answering creates the DNS policy and token (every agent's default token),
  each cluster's cloud58-consul-sync policy and token and every host's agent token (node
  identity), all derived from the management token, on one server; every node then registers
  itself in its datacenter's catalog, and DNS answers; a cluster's sync token registers a
  service on its node k8s-<cluster> with /v1/txn and is refused (409, permission denied) on
  any other node;
* a run whose play has no server of the primary datacenter (a secondary datacenter's
  inventory; ``--limit`` to an agent) creates its hosts' missing agent tokens, on one of them;
* a cluster that left the plan of its datacenter loses its sync token and policy, one of a
  datacenter the inventory does not plan keeps them, and a sync policy written before the
  description recorded the datacenter gets the new description;
* a host that left the plan loses its agent token (one of a datacenter the inventory does not
  plan, and one made by hand, are kept);
* a second run changes nothing;
* lab2's servers replicate lab1's ACL tokens with the role's replication token; with lab1's
  servers stopped, a server of lab2 still resolves a sync token and registers with it;
* two servers in the datacenter, a bad gossip key, a bad sha256 fail before anything changes,
  naming the datacenter and hosts or the variable (a secret's value never shown).

Processes are stopped by PID, the namespaces removed by NetLab, the mirror shut down.
"""

from __future__ import annotations

import base64
import copy
import functools
import json
import os
import ssl
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
import yaml

from ansible_collections.cloud58.platform.plugins.filter.consul import FilterModule
from ansible_collections.cloud58.platform.plugins.module_utils.consul import agent_token, node_config
from ansible_collections.cloud58.platform.plugins.module_utils.topology import build_plan, load_inventory
from cloud58_lab import consulapi, programs
from cloud58_lab.mirror import Mirror
from cloud58_lab.netlab import NetLab, run_prefix, wait_until
from cloud58_lab.pki import CertificateAuthority

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[2]
SERVERS = ("lab1-m1", "lab1-m2", "lab1-m3")
SERVERS2 = ("lab2-m1", "lab2-m2", "lab2-m3")
AGENT = "lab1-w1"
HOSTS = (*SERVERS, AGENT, *SERVERS2)
VERSION = "1.14.11"
PLAYBOOK = """\
- name: Run consul
  hosts: all
  gather_facts: false
  roles:
    - cloud58.platform.consul
"""
# Bounds against a hang only; no result depends on how fast the machine is.
WAIT = 180


class Work:
    """The plan, the per-host directories and variables, the secrets and the mirror of one run."""

    def __init__(self, root: Path, url: str, sha256: str) -> None:
        self.root = root
        self.plan = build_plan(load_inventory(str(REPO / "inventories/lab"))).as_dict()
        self.key = base64.b64encode(os.urandom(32)).decode()
        self.token = str(uuid.uuid4())
        self.url, self.sha256 = url, sha256
        self.ca = CertificateAuthority("cloud58-consul-role-test-ca")
        client = self.ca.issue("cloud58-consul-role-test", client=True)
        cert, key = client.write(root / "client", "client")
        (root / "client" / "ca.crt").write_bytes(self.ca.pair.cert_pem)
        self.tls = ssl.create_default_context(cafile=str(root / "client" / "ca.crt"))
        self.tls.load_cert_chain(str(cert), str(key))
        self.pems = {}
        for host in HOSTS:
            kind = "client" if host == AGENT else "server"
            name = f"{kind}.{host[:4]}.consul"
            self.pems[host] = self.ca.issue(name, dns_names=(name, "localhost"), server=True, client=True)
        self.procs: dict[str, subprocess.Popen] = {}

    def dir(self, host: str, part: str = "") -> Path:
        return self.root / "hosts" / host / part if part else self.root / "hosts" / host

    def host_vars(self, host: str) -> dict:
        return {
            "consul_binary_path": str(self.dir(host, "bin/consul")),
            "consul_download_dir": str(self.dir(host, "cache")),
            "consul_config_dir": str(self.dir(host, "consul.d")),
            "consul_tls_dir": str(self.dir(host, "tls")),
            "consul_data_dir": str(self.dir(host, "data")),
            "consul_unit_file": str(self.dir(host, "consul.service")),
            "consul_https_address": f"unix://{self.dir(host, 'https.sock')}",
            "consul_tls_cert": self.pems[host].cert_pem.decode(),
            "consul_tls_key": self.pems[host].key_pem.decode(),
        }

    def settings(self, host: str) -> dict:
        v = self.host_vars(host)
        return {
            "data_dir": v["consul_data_dir"],
            "tls_dir": v["consul_tls_dir"],
            "https_address": v["consul_https_address"],
        }

    def play(self, check: bool = False, plan: dict | None = None, limit: str = "", **extra):
        """Run the role on every host (or those of ``limit``): per host its stats, the failed
        tasks' messages, the diffs of the changed files, and ansible-playbook's whole output."""
        for host in HOSTS:
            # The stand-in for /usr/local/bin, which a host has.
            self.dir(host, "bin").mkdir(parents=True, exist_ok=True)
        inventory = {"all": {"hosts": {host: self.host_vars(host) for host in HOSTS}}}
        (self.root / "inventory.yml").write_text(yaml.safe_dump(inventory))
        variables = {
            "cloud58_topology": {"plan": plan or self.plan},
            "consul_version": VERSION,
            "consul_url": self.url,
            "consul_sha256": self.sha256,
            "consul_encrypt_key": self.key,
            "consul_acl_management_token": self.token,
            "consul_tls_ca_cert": self.ca.pair.cert_pem.decode(),
            "consul_user": "root",
            "consul_group": "root",
            "consul_create_user": False,
            "consul_manage_service": False,
            # Consul runs only once the test started it from the written files.
            "consul_create_tokens": False,
            "ansible_connection": "local",
            "ansible_python_interpreter": sys.executable,
            **extra,
        }
        (self.root / "play.yml").write_text(PLAYBOOK)
        (self.root / "vars.json").write_text(json.dumps(variables))
        env = dict(
            os.environ,
            ANSIBLE_CONFIG=str(REPO / "ansible.cfg"),
            ANSIBLE_STDOUT_CALLBACK="ansible.builtin.json",
            PYTHONPATH=str(REPO / "collections"),
        )
        argv = programs.argv(
            "ansible-playbook",
            "-i",
            str(self.root / "inventory.yml"),
            str(self.root / "play.yml"),
            "-e",
            f"@{self.root / 'vars.json'}",
            *(["--check", "--diff"] if check else []),
            *(["--limit", limit] if limit else []),
        )
        proc = subprocess.run(argv, capture_output=True, text=True, env=env, cwd=REPO, check=False)
        report = json.loads(proc.stdout)
        stats = {h: {"changed": s["changed"], "failures": s["failures"]} for h, s in report["stats"].items()}
        failed, diffs = {}, {}
        for play in report["plays"]:
            for task in play["tasks"]:
                for host, result in task["hosts"].items():
                    if result.get("failed"):
                        failed.setdefault(host, []).append(result.get("msg"))
                    for item in [result, *(result.get("results") or [])]:
                        for d in item.get("diff") or [] if isinstance(item.get("diff"), list) else []:
                            if d.get("after") and d.get("after_header"):
                                # a template's header is its source (consul.service.j2)
                                diffs.setdefault(host, {})[Path(d["after_header"]).name] = d["after"]
        return stats, failed, diffs, proc.stdout

    def files(self) -> dict:
        """Every file the role may have written (under the hosts' directories), path -> bytes."""
        base = self.root / "hosts"
        return {
            str(p.relative_to(base)): p.read_bytes()
            for p in sorted(base.rglob("*"))
            # not Consul's state, nor the log of the consul this test started
            if p.is_file() and "data" not in p.relative_to(base).parts and p.name != "consul.log"
        }

    # ---- the real consul -----------------------------------------------------------------
    def start(self, net: NetLab, host: str) -> None:
        unit = self.dir(host, "consul.service").read_text()
        exec_start = next(line for line in unit.splitlines() if line.startswith("ExecStart="))
        argv = exec_start[len("ExecStart=") :].split()
        with open(self.dir(host, "consul.log"), "ab") as log:
            proc = subprocess.Popen(
                programs.argv("ip", "netns", "exec", net.ns(host), *argv),
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        self.procs[host] = proc
        net.servers.append(proc)  # NetLab.close() stops it by PID
        sock = self.dir(host, "https.sock")
        wait_until(lambda: sock.exists() or proc.poll() is not None, WAIT, what=host)
        if proc.poll() is not None:
            pytest.fail(f"consul {host} exited ({proc.returncode}):\n{self.log(host)}")

    def log(self, host: str) -> str:
        path = self.dir(host, "consul.log")
        return "\n".join(path.read_text(errors="replace").splitlines()[-30:]) if path.exists() else ""

    def request(self, host: str, method: str, path: str, body=None, token: str = ""):
        name = f"client.{host[:4]}.consul" if host == AGENT else f"server.{host[:4]}.consul"
        status, _headers, value = consulapi.request(
            self.dir(host, "https.sock"), self.tls, name, method, path, body=body, token=token
        )
        return status, value

    def leader(self, host: str) -> str:
        try:
            status, value = self.request(host, "GET", "/v1/status/leader")
        except OSError:
            return ""
        return value if status == 200 else ""


@pytest.fixture(scope="module")
def work(tmp_path_factory):
    programs.require("consul", "ip", "ansible-playbook")
    root = tmp_path_factory.mktemp("consul-role")
    mirror = Mirror(root / "mirror", {"consul": programs.path("consul")})
    try:
        yield Work(root, mirror.url("consul"), mirror.sha256["consul"])
    finally:
        mirror.close()


@pytest.fixture(scope="module")
def net(work):
    with NetLab(prefix=run_prefix("c58cr")) as lab:
        lab.add_switch("sw")
        for host in HOSTS:
            lab.add_namespace(host, forwarding=False)
            lab.attach("sw", host, "eth0", f"{work.plan['hosts'][host]['address']}/15")
        yield lab


def _secrets(work) -> list[str]:
    return [
        work.key,
        work.token,
        *(work.pems[h].key_pem.decode().splitlines()[1] for h in HOSTS),
        *(agent_token(work.token, h[:4], h)["SecretID"] for h in HOSTS),
        FilterModule().filters()["consul_dns_token"](work.token)["SecretID"],
        FilterModule().filters()["consul_prometheus_token"](work.token)["SecretID"],
        FilterModule().filters()["consul_gateway_token"](work.token)["SecretID"],
        FilterModule().filters()["consul_replication_token"](work.token)["SecretID"],
    ]


def test_check_mode_writes_nothing_and_shows_the_diff(work):
    stats, failed, diffs, stdout = work.play(check=True)
    assert failed == {}
    assert {h: s["failures"] for h, s in stats.items()} == dict.fromkeys(HOSTS, 0)
    assert all(stats[h]["changed"] > 0 for h in HOSTS), stats
    for host in HOSTS:
        expected = node_config(work.plan, host, work.settings(host))
        assert json.loads(diffs[host]["consul.json"]) == expected
        assert (
            f"ExecStart={work.dir(host, 'bin/consul')} agent -config-dir={work.dir(host, 'consul.d')}"
            in (diffs[host]["consul.service.j2"])
        )
        kind = "agent" if host == AGENT else "server"
        assert sorted(diffs[host]) == sorted(["ca.crt", f"{kind}.crt", "consul.json", "consul.service.j2"])
    assert [s for s in _secrets(work) if s in stdout] == []
    assert work.files() == {}


def test_a_run_writes_the_configuration_the_secrets_and_the_binary(work):
    stats, failed, _diffs, stdout = work.play()
    assert failed == {}
    assert {h: s["failures"] for h, s in stats.items()} == dict.fromkeys(HOSTS, 0)
    assert [s for s in _secrets(work) if s in stdout] == []
    binary = Path(programs.path("consul")).read_bytes()
    for host in HOSTS:
        config = work.dir(host, "consul.d/consul.json")
        assert json.loads(config.read_text()) == node_config(work.plan, host, work.settings(host))
        secrets = work.dir(host, "consul.d/secrets.json")
        tokens = {
            "agent": agent_token(work.token, host[:4], host)["SecretID"],
            "default": FilterModule().filters()["consul_dns_token"](work.token)["SecretID"],
        }
        if host in SERVERS:
            tokens["initial_management"] = work.token
        if host in SERVERS2:  # lab1 is the primary datacenter: lab2's servers replicate its tokens
            tokens["replication"] = FilterModule().filters()["consul_replication_token"](work.token)[
                "SecretID"
            ]
        expected = {"encrypt": work.key, "acl": {"tokens": tokens}}
        assert json.loads(secrets.read_text()) == expected
        assert json.loads(config.read_text())["acl"].get("enable_token_replication") == (
            True if host in SERVERS2 else None
        )
        kind = "agent" if host == AGENT else "server"
        key = work.dir(host, f"tls/{kind}.key")
        assert key.read_bytes() == work.pems[host].key_pem
        assert {p.name: p.stat().st_mode & 0o777 for p in (secrets, key)} == {
            "secrets.json": 0o600,
            f"{kind}.key": 0o600,
        }
        assert work.dir(host, "bin/consul").read_bytes() == binary
        assert work.dir(host, "bin/consul").stat().st_mode & 0o777 == 0o755


def test_servers_elect_a_leader_with_gossip_encryption_and_acls_default_deny(work, net):
    for host in HOSTS:
        work.start(net, host)

    def agreed(servers):
        leaders = {work.leader(h) for h in servers}
        return leaders.pop() if len(leaders) == 1 and "" not in leaders else ""

    for servers in (SERVERS, SERVERS2):
        leader = wait_until(lambda s=servers: agreed(s), WAIT, what=f"one leader named by {servers}")
        assert leader.split(":")[0] in {work.plan["hosts"][h]["address"] for h in servers}

    def self_token():
        status, value = work.request("lab1-m1", "GET", "/v1/acl/token/self", token=work.token)
        return value if status == 200 else None

    # The ACL system bootstraps a moment after the election, creating the role's token.
    token = wait_until(self_token, WAIT, what="the initial management token")
    assert [p["Name"] for p in token["Policies"]] == ["global-management"]
    # Each server's raft peers, read until they are all three: under load (the CI run of
    # 81b6ef7, load average near 14) one lab2 server answered an empty list once, after its
    # datacenter had agreed on a leader.
    for servers in (SERVERS, SERVERS2):
        peers_expected = sorted(work.plan["hosts"][h]["address"] for h in servers)
        for host in servers:

            def peers(host=host, expected=peers_expected):
                status, found = work.request(host, "GET", "/v1/status/peers")
                got = (status, sorted(p.split(":")[0] for p in found or []))
                return got if got == (200, expected) else None

            assert wait_until(peers, WAIT, what=f"{host}'s raft peers") == (200, peers_expected)

    def members():
        status, value = work.request("lab1-m1", "GET", "/v1/agent/members", token=work.token)
        alive = sorted(m["Name"] for m in value if m["Status"] == 1) if status == 200 else []
        return alive if alive == sorted((*SERVERS, AGENT)) else None

    assert wait_until(members, WAIT, what="the agent joined") == sorted((*SERVERS, AGENT))

    def wan_members():
        status, value = work.request("lab2-m1", "GET", "/v1/agent/members?wan=1", token=work.token)
        alive = sorted(m["Name"] for m in value if m["Status"] == 1) if status == 200 else []
        expected = sorted(f"{h}.{h[:4]}" for h in (*SERVERS, *SERVERS2))
        return alive if alive == expected else None

    assert wait_until(wan_members, WAIT, what="six servers over WAN")
    status, rings = work.request("lab1-m1", "GET", "/v1/operator/keyring", token=work.token)
    assert status == 200
    # One key only, the role's: in the WAN pool, and on every member of each LAN pool.
    assert {(r["WAN"], r["Datacenter"], tuple(r["Keys"])) for r in rings} == {
        (True, "lab1", (work.key,)),
        (False, "lab1", (work.key,)),
        (False, "lab2", (work.key,)),
    }
    assert sorted((r["Datacenter"], r["Keys"][work.key]) for r in rings if not r["WAN"]) == [
        ("lab1", 4),
        ("lab2", 3),
    ]
    # Before the role created the DNS token, the default token the agents carry is unknown:
    # a request without a token is refused, and DNS answers nothing.
    status, value = work.request(
        AGENT, "PUT", "/v1/catalog/register", {"Node": "x", "Address": "198.18.41.1"}
    )
    assert (status, value.replace("rpc error making call: ", "")) == (403, "ACL not found")
    assert _dns(net) == "2"  # SERVFAIL


def _dns(net: NetLab, host: str = AGENT, name: str = "consul.service.consul") -> str:
    proc = net.exec(host, sys.executable, "-c", consulapi.DNS_QUERY, name, "8600")
    return proc.stdout.strip()


def test_the_role_creates_the_agent_tokens_once_consul_answers(work, net):
    stats, failed, _diffs, stdout = work.play(consul_create_tokens=True)
    # One server of the primary datacenter creates the seven agent tokens in one task.
    # The policies (DNS, Prometheus, each cluster's sync), their tokens, the agent tokens: three
    # tasks, on that server.
    assert (stats, failed) == ({h: {"changed": 3 if h == "lab1-m1" else 0, "failures": 0} for h in HOSTS}, {})
    assert [s for s in _secrets(work) if s in stdout] == []
    for host in HOSTS:
        accessor = agent_token(work.token, host[:4], host)["AccessorID"]
        status, token = work.request("lab1-m1", "GET", f"/v1/acl/token/{accessor}", token=work.token)
        assert status == 200
        assert (token["NodeIdentities"], token["SecretID"]) == (
            [{"NodeName": host, "Datacenter": host[:4]}],
            agent_token(work.token, host[:4], host)["SecretID"],
        )

    # With its token every agent registers its own node (anti-entropy), which it could not before.
    def nodes():
        names = []
        for dc in ("lab1", "lab2"):
            status, value = work.request("lab1-m1", "GET", f"/v1/catalog/nodes?dc={dc}", token=work.token)
            names += sorted(n["Node"] for n in value) if status == 200 else []
        return names if names == [*sorted((*SERVERS, AGENT)), *SERVERS2] else None

    assert wait_until(nodes, WAIT, what="every node in its datacenter's catalog")
    dns = FilterModule().filters()["consul_dns_token"](work.token)
    status, token = work.request("lab1-m1", "GET", f"/v1/acl/token/{dns['AccessorID']}", token=work.token)
    assert (status, [p["Name"] for p in token["Policies"]]) == (200, ["cloud58-dns"])
    # Prometheus' token reads an agent's metrics (agent:read), which the DNS token may not.
    metrics = FilterModule().filters()["consul_prometheus_token"](work.token)
    status, token = work.request("lab1-m1", "GET", f"/v1/acl/token/{metrics['AccessorID']}", token=work.token)
    assert (status, [p["Name"] for p in token["Policies"]]) == (200, ["cloud58-prometheus"])
    path = "/v1/agent/metrics?format=prometheus"
    assert [work.request(AGENT, "GET", path, token=t["SecretID"])[0] for t in (metrics, dns)] == [200, 403]
    # cloud58-gateway-sync's token reads every passing instance of a service with its node (the
    # three servers' service consul); Prometheus' token gets Consul's filtered, empty answer.
    gateway = FilterModule().filters()["consul_gateway_token"](work.token)
    status, token = work.request("lab1-m1", "GET", f"/v1/acl/token/{gateway['AccessorID']}", token=work.token)
    assert (status, [p["Name"] for p in token["Policies"]]) == (200, ["cloud58-gateway-sync"])
    health = "/v1/health/service/consul?passing=true"
    status, entries = work.request(AGENT, "GET", health, token=gateway["SecretID"])
    assert (status, sorted(e["Node"]["Node"] for e in entries)) == (200, sorted(SERVERS))
    assert work.request(AGENT, "GET", health, token=metrics["SecretID"]) == (200, [])
    replication = FilterModule().filters()["consul_replication_token"](work.token)
    path = f"/v1/acl/token/{replication['AccessorID']}"
    status, token = work.request("lab1-m1", "GET", path, token=work.token)
    assert (status, [p["Name"] for p in token["Policies"]]) == (200, ["cloud58-replication"])
    # The agents' default token now reads: the agent's DNS answers with the three servers of
    # lab1, and a server of lab2 answers for lab1's service over WAN; a write stays refused.
    expected = "0 " + " ".join(sorted(work.plan["hosts"][h]["address"] for h in SERVERS))
    assert wait_until(lambda: _dns(net) == expected, WAIT, what="DNS answer of the agent")
    wan = functools.partial(_dns, net, "lab2-m1", "consul.service.lab1.consul")
    assert wait_until(lambda: wan() == expected, WAIT, what="lab1's service from lab2")
    status, value = work.request(
        AGENT, "PUT", "/v1/catalog/register", {"Node": "x", "Address": "198.18.41.1"}
    )
    # The agent forwards the write over TLS RPC to a server (which may forward it to the leader).
    refused = f"Permission denied: token with AccessorID '{dns['AccessorID']}' lacks "
    refused += "permission 'node:write' on \"x\""
    assert (status, value.replace("rpc error making call: ", "")) == (403, refused)
    assert value.startswith("rpc error making call: ")
    _sync_tokens_write_their_node_only(work)


def _web_instance_ops(node: str, address: str) -> list:
    """The /v1/txn operations a sync sends for one instance of service web (port 80) at
    ``address`` on ``node``: the node, then the service."""
    return [
        {"Node": {"Verb": "set", "Node": {"Node": node, "Address": "127.0.0.1"}}},
        {
            "Service": {
                "Verb": "set",
                "Node": node,
                "Service": {"ID": f"web-{address}-80", "Service": "web", "Address": address, "Port": 80},
            }
        },
    ]


def _sync_tokens_write_their_node_only(work):
    """Each cluster's cloud58-consul-sync token (policy cloud58-consul-sync-<cluster>) registers
    a service on the cluster's node k8s-<cluster> with /v1/txn, as the sync does, and reads it
    back; another cluster's node and any other node are refused (the transaction: 409, naming
    node:write)."""
    sync = FilterModule().filters()["consul_sync_token"]
    assert sorted(work.plan["clusters"]) == ["lab1-k8s", "lab2-k8s"]
    for cluster in sorted(work.plan["clusters"]):
        token = sync(work.token, cluster)
        path = f"/v1/acl/token/{token['AccessorID']}"
        status, held = work.request("lab1-m1", "GET", path, token=work.token)
        assert (status, [p["Name"] for p in held["Policies"]]) == (200, [f"cloud58-consul-sync-{cluster}"])
        status, policy = work.request(
            "lab1-m1", "GET", f"/v1/acl/policy/name/cloud58-consul-sync-{cluster}", token=work.token
        )
        assert (status, policy["Rules"]) == (
            200,
            f'node "k8s-{cluster}" {{ policy = "write" }}\nservice_prefix "" {{ policy = "write" }}\n',
        )

    def register(node, secret):
        ops = _web_instance_ops(node, "198.18.40.1")
        status, value = work.request("lab1-m1", "PUT", "/v1/txn", ops, token=secret)
        return status, [e["What"] for e in value["Errors"]] if status == 409 else None

    secret = sync(work.token, "lab1-k8s")["SecretID"]
    accessor = sync(work.token, "lab1-k8s")["AccessorID"]
    # A transaction is refused as a whole (409), its first operation naming the permission.
    assert [register(n, secret) for n in ("k8s-lab1-k8s", "k8s-lab2-k8s", "lab1-w1")] == [
        (200, None),
        *[
            (
                409,
                [
                    f"Permission denied: token with AccessorID '{accessor}' "
                    f"lacks permission 'node:write' on \"{n}\""
                ],
            )
            for n in ("k8s-lab2-k8s", "lab1-w1")
        ],
    ]
    status, node = work.request("lab1-m1", "GET", "/v1/catalog/node/k8s-lab1-k8s", token=secret)
    assert (status, sorted(node["Services"])) == (200, ["web-198.18.40.1-80"])
    body = {"Node": "k8s-lab1-k8s"}
    status, _ = work.request("lab1-m1", "PUT", "/v1/catalog/deregister", body, token=secret)
    assert status == 200


def _token_nodes(work, hosts) -> dict:
    """Per host: the node identities of its agent token as Consul holds it, or the status."""
    found = {}
    for host in hosts:
        accessor = agent_token(work.token, host[:4], host)["AccessorID"]
        status, token = work.request("lab1-m1", "GET", f"/v1/acl/token/{accessor}", token=work.token)
        found[host] = token["NodeIdentities"] if status == 200 else status
    return found


@pytest.mark.parametrize(
    ("limit", "creator"),
    [
        # site.yml run with a secondary datacenter's inventory: its servers forward to the primary
        pytest.param(",".join(SERVERS2), "lab2-m1", id="secondary-datacenter"),
        # scale-out with --limit to a new agent: the agent forwards to its servers
        pytest.param(AGENT, AGENT, id="limit-to-an-agent"),
    ],
)
def test_a_run_without_a_primary_server_creates_its_hosts_agent_tokens(work, net, limit, creator):
    hosts = limit.split(",")
    for host in hosts:  # as if these hosts were new: their tokens do not exist yet
        accessor = agent_token(work.token, host[:4], host)["AccessorID"]
        status, _ = work.request("lab1-m1", "DELETE", f"/v1/acl/token/{accessor}", token=work.token)
        assert status == 200
    assert _token_nodes(work, hosts) == {h: 403 for h in hosts}  # Consul 1.14: "ACL not found"
    stats, failed, _diffs, stdout = work.play(consul_create_tokens=True, limit=limit)
    # One host of the run creates the missing agent tokens: one changed task, on it alone.
    assert (stats, failed) == ({h: {"changed": 1 if h == creator else 0, "failures": 0} for h in hosts}, {})
    assert [s for s in _secrets(work) if s in stdout] == []
    assert _token_nodes(work, hosts) == {h: [{"NodeName": h, "Datacenter": h[:4]}] for h in hosts}


def test_a_cluster_that_left_the_plan_loses_its_sync_token_and_old_policies_get_their_datacenter(work, net):
    """A cluster of lab1 that left the plan (its policy and token as an earlier run wrote them) is
    revoked; one of bj1, a datacenter this inventory does not plan, is kept; lab2-k8s's policy,
    as a run wrote it before descriptions recorded the datacenter, is brought to the new one."""
    sync = FilterModule().filters()["consul_sync_token"]
    gone, other = sync(work.token, "lab1-gone", "lab1"), sync(work.token, "bj1-k8s", "bj1")
    for token in (gone, other):
        body = {"Name": token["Policy"], "Description": token["PolicyDescription"], "Rules": token["Rules"]}
        assert work.request("lab1-m1", "PUT", "/v1/acl/policy", body, token=work.token)[0] == 200
        body = {k: token[k] for k in ("AccessorID", "SecretID")} | {"Policies": [{"Name": token["Policy"]}]}
        assert work.request("lab1-m1", "PUT", "/v1/acl/token", body, token=work.token)[0] == 200
    path = "/v1/acl/policy/name/cloud58-consul-sync-lab2-k8s"
    status, lab2 = work.request("lab1-m1", "GET", path, token=work.token)
    assert status == 200
    old = "cloud58-consul-sync of cluster lab2-k8s: its node k8s-lab2-k8s and services"
    body = {k: lab2[k] for k in ("ID", "Name", "Rules")} | {"Description": old}
    assert work.request("lab1-m1", "PUT", f"/v1/acl/policy/{lab2['ID']}", body, token=work.token)[0] == 200

    stats, failed, _diffs, stdout = work.play(consul_create_tokens=True)
    # on the token host: the description brought back, the token revoked, the policy deleted
    assert (stats, failed) == ({h: {"changed": 3 if h == "lab1-m1" else 0, "failures": 0} for h in HOSTS}, {})
    assert [s for s in _secrets(work) if s in stdout] == []
    status, _ = work.request("lab1-m1", "GET", f"/v1/acl/token/{gone['AccessorID']}", token=work.token)
    assert status == 403  # Consul 1.14: "ACL not found"
    status, _ = work.request(
        "lab1-m1", "GET", "/v1/acl/policy/name/cloud58-consul-sync-lab1-gone", token=work.token
    )
    assert status == 403
    status, kept = work.request("lab1-m1", "GET", f"/v1/acl/token/{other['AccessorID']}", token=work.token)
    assert (status, [p["Name"] for p in kept["Policies"]]) == (200, ["cloud58-consul-sync-bj1-k8s"])
    status, lab2 = work.request("lab1-m1", "GET", path, token=work.token)
    assert (status, lab2["Description"]) == (
        200,
        "cloud58-consul-sync of cluster lab2-k8s in datacenter lab2: its node k8s-lab2-k8s and services "
        "(role cloud58.platform.consul)",
    )
    # bj1's, made by this test, goes: the next test's run must find nothing to do
    assert (
        work.request("lab1-m1", "DELETE", f"/v1/acl/token/{other['AccessorID']}", token=work.token)[0] == 200
    )
    status, policy = work.request(
        "lab1-m1", "GET", "/v1/acl/policy/name/cloud58-consul-sync-bj1-k8s", token=work.token
    )
    assert work.request("lab1-m1", "DELETE", f"/v1/acl/policy/{policy['ID']}", token=work.token)[0] == 200


def test_a_host_that_left_the_plan_loses_its_agent_token(work, net):
    """The agent token of a lab1 host that left the plan (as the role made it) is revoked; the one
    of a bj1 host (a datacenter this inventory does not plan) and one made by hand are kept."""
    gone, other = agent_token(work.token, "lab1", "lab1-w9"), agent_token(work.token, "bj1", "bj1-w1")
    by_hand = {"AccessorID": str(uuid.uuid4()), "SecretID": str(uuid.uuid4())}
    for token, node, dc, description in (
        (gone, "lab1-w9", "lab1", "cloud58 agent token of lab1-w9"),
        (other, "bj1-w1", "bj1", "cloud58 agent token of bj1-w1"),
        (by_hand, "lab1-w8", "lab1", "lab1-w8, made by hand"),
    ):
        body = {**token, "Description": description, "NodeIdentities": [{"NodeName": node, "Datacenter": dc}]}
        assert work.request("lab1-m1", "PUT", "/v1/acl/token", body, token=work.token)[0] == 200

    stats, failed, _diffs, stdout = work.play(consul_create_tokens=True)
    assert (stats, failed) == ({h: {"changed": 1 if h == "lab1-m1" else 0, "failures": 0} for h in HOSTS}, {})
    assert [s for s in (*_secrets(work), gone["SecretID"]) if s in stdout] == []
    statuses = [
        work.request("lab1-m1", "GET", f"/v1/acl/token/{t['AccessorID']}", token=work.token)[0]
        for t in (gone, other, by_hand)
    ]
    assert statuses == [403, 200, 200]  # Consul 1.14: "ACL not found" is 403
    # the revoked token no longer reads anything: ACLs are default-deny
    assert work.request("lab1-m1", "GET", "/v1/agent/self", token=gone["SecretID"])[0] == 403
    # the two kept, made by this test, go: the next test's run must find nothing to do
    for token in (other, by_hand):
        path = f"/v1/acl/token/{token['AccessorID']}"
        assert work.request("lab1-m1", "DELETE", path, token=work.token)[0] == 200


def test_a_second_run_changes_nothing(work, net):
    stats, failed, diffs, _stdout = work.play(consul_create_tokens=True)
    assert (stats, failed, diffs) == ({h: {"changed": 0, "failures": 0} for h in HOSTS}, {}, {})


def _two_servers(plan):
    plan = copy.deepcopy(plan)
    plan["hosts"]["lab1-m3"]["roles"].remove("consul_server")
    return plan


@pytest.mark.parametrize(
    ("case", "message"),
    [
        pytest.param(
            "two-servers",
            "consul_node_config: datacenter 'lab1': 2 consul servers (lab1-m1, lab1-m2); expected 3 or 5",
            id="two-servers",
        ),
        pytest.param(
            "bad-key",
            "{host}: consul_encrypt_key: expected 32 bytes in base64 (consul keygen); the value is not shown",
            id="bad-key",
        ),
        pytest.param(
            "bad-sha256",
            "{host}: consul_url {url} could not be installed with consul_sha256 {sha}: The checksum for ",
            id="bad-sha256",
        ),
    ],
)
def test_bad_input_fails_before_anything_changes(work, net, case, message):
    before = work.files()
    extra, plan = {}, None
    if case == "two-servers":
        plan = _two_servers(work.plan)
    elif case == "bad-key":
        extra = {"consul_encrypt_key": "c2VjcmV0LWtleQ=="}
    else:
        # Another version, so the download is not the file already there.
        extra = {"consul_version": "1.14.10", "consul_sha256": "0" * 64}
    stats, failed, _diffs, stdout = work.play(plan=plan, **extra)
    assert stats == {h: {"changed": 0, "failures": 1} for h in HOSTS}
    for host in HOSTS:
        # A download refused by its checksum is the rescued task before the role's message.
        assert len(failed[host]) == (2 if case == "bad-sha256" else 1)
        expected = message.format(host=host, url=work.url, sha="0" * 64)
        assert expected in failed[host][-1], failed[host][-1]
    assert "c2VjcmV0LWtleQ==" not in stdout
    assert work.files() == before
    assert all(work.procs[h].poll() is None for h in HOSTS)


def test_a_secondary_datacenter_replicates_the_tokens_and_resolves_them_without_the_primary(work, net):
    """lab2's servers replicate lab1's ACLs with the role's replication token (a run created it
    in lab1): the replication status of lab2 reports tokens replicated from lab1. Then lab1's
    three servers are stopped: a server of lab2 still resolves lab2-k8s' sync token, never
    used in lab2 before, and registers with it on its node k8s-lab2-k8s, while an unknown token
    is refused (without replication a secondary datacenter asks the primary for every token).
    With replication off in consul.json, the wait for the replication status times out (tried
    once, 2026-12-06). Last in this module: lab1's servers stay stopped."""

    def replicating():
        status, value = work.request("lab2-m1", "GET", "/v1/acl/replication")
        done = status == 200 and value["Running"] and value["ReplicatedTokenIndex"] > 0
        return value if done else None

    # Replication retries with a backoff of up to 64 s after failing while the token was missing.
    status = wait_until(replicating, WAIT, what="lab2 replicating lab1's tokens")
    assert {k: status[k] for k in ("Enabled", "Running", "SourceDatacenter", "ReplicationType")} == {
        "Enabled": True,
        "Running": True,
        "SourceDatacenter": "lab1",
        "ReplicationType": "tokens",
    }
    for host in SERVERS:
        work.procs[host].terminate()
    for host in SERVERS:
        work.procs[host].wait(timeout=60)

    sync = FilterModule().filters()["consul_sync_token"](work.token, "lab2-k8s")
    status, token = work.request("lab2-m1", "GET", "/v1/acl/token/self", token=sync["SecretID"])
    assert (status, [p["Name"] for p in token["Policies"]]) == (200, ["cloud58-consul-sync-lab2-k8s"])
    ops = _web_instance_ops("k8s-lab2-k8s", "198.19.40.1")
    status, _ = work.request("lab2-m2", "PUT", "/v1/txn", ops, token=sync["SecretID"])
    assert status == 200
    status, node = work.request("lab2-m3", "GET", "/v1/catalog/node/k8s-lab2-k8s", token=sync["SecretID"])
    assert (status, sorted(node["Services"])) == (200, ["web-198.19.40.1-80"])
    status, value = work.request("lab2-m1", "GET", "/v1/acl/token/self", token=str(uuid.uuid4()))
    assert (status, value.replace("rpc error making call: ", "")) == (403, "ACL not found")
