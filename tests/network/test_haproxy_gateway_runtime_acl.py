"""The gateway's runtime-API path as production runs it: Consul with ACLs default-deny and its
API on HTTPS only, verifying client certificates (``cloud58_lab.consulsync``, one Consul 1.14.11
server on 127.0.0.1), the real haproxy (Debian's 2.6, master-worker in the foreground) and
``cloud58-gateway-sync``:

* the program from the source tree, with Consul's CA, a client certificate of Consul's CA and a
  token (in a 0600 file) whose policy reads every service and node, fills the slots and the
  instances get requests through the gateway; the token never appears in its log;
* a token whose policy reads no service (Consul answers 200 with an empty list marked
  ``X-Consul-Results-Filtered-By-ACLs``), a token Consul does not know (403 ``ACL not found``)
  and no client certificate are each one line per attempt and one ``giving up`` line, exit 1, no
  traceback, the slots untouched; no token at all (no token file, an empty one) is refused
  before Consul is asked;
* the role ``cloud58.platform.haproxy_gateway`` with ``haproxy_gateway_backend_source: runtime``
  run by ansible-playbook on this machine (connection local, every path redirected into a
  temporary directory, no package installed, no service touched): bad values fail by name
  before any file is written; check mode writes nothing and shows no token; a run writes
  exactly haproxy.cfg, the state file, the drop-in, the program and its gateway package, its
  configuration, the token file (0600) and the unit; a second run changes nothing; then the
  files it wrote run: haproxy on the role's haproxy.cfg and the unit's ``ExecStart`` command
  (no source tree on the path) against Consul, and a registered instance gets requests.

Consul, haproxy and the programs are stopped by PID. Waits are bounds against a hang only.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import stat
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest

from ansible_collections.cloud58.platform.plugins.module_utils.gateway import haproxy_config
from ansible_collections.cloud58.platform.plugins.module_utils.gateway.runtime import parse_servers_state
from cloud58_lab import gatewaylab, programs, roleplay
from cloud58_lab.consulsync import Consul

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[2]
GATEWAY = REPO / "collections/ansible_collections/cloud58/platform/plugins/module_utils/gateway"
PROGRAM = gatewaylab.GATEWAY_SYNC
DATACENTER = "bj1"
HOST = "hgwacl-h1"
READ_RULES = 'service_prefix "" { policy = "read" }\nnode_prefix "" { policy = "read" }\n'
NO_READ_RULES = 'key_prefix "" { policy = "read" }\n'
WAIT = 120  # bounds against a hang only
PLAYBOOK = """\
- name: Run the ingress gateway
  hosts: all
  gather_facts: false
  roles:
    - cloud58.platform.haproxy_gateway
"""


class Lab:
    """Consul (ACLs, HTTPS verifying clients), two backends on loopback addresses of their own
    registered in the catalog on nodes of their own, and the client pair of the program."""

    def __init__(self, work: Path) -> None:
        self.work = work
        (work / "consul").mkdir()
        self.consul = Consul(
            work / "consul", DATACENTER, node="hgwacl-s1", ca_name="cloud58-gateway-sync-test-ca"
        )
        self.cert, self.key = self.consul.ca.issue("cloud58-gateway-sync", client=True).write(work, "gateway")
        self.backends = {n: gatewaylab.Backend(n, f"127.0.0.{71 + i}") for i, n in enumerate(("a1", "a2"))}
        self.procs: list[subprocess.Popen] = []
        self.gateways: list[gatewaylab.Gateway] = []

    def register(self, name: str, service: str = "web") -> None:
        backend = self.backends[name]
        status, _, body = self.consul.request(
            "PUT",
            "/v1/catalog/register",
            {
                "Node": f"hgwacl-{name}",
                "Address": backend.address,
                "Service": {"ID": f"{service}-{name}", "Service": service, "Port": backend.port},
            },
        )
        assert (status, body) == (200, True)

    def token(self, rules: str, name: str) -> str:
        return self.consul.sync_token(rules, name=name)[1]

    def stop(self) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                proc.terminate()
                proc.wait(timeout=30)
        for gateway in self.gateways:
            gateway.stop()
        for backend in self.backends.values():
            backend.stop()
        self.consul.stop()


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    programs.require("consul", "haproxy")
    lab = Lab(tmp_path_factory.mktemp("gateway-acl"))
    try:
        lab.consul.start()
        lab.consul.bootstrap(WAIT)
        lab.register("a1")
        yield lab
    except BaseException:
        print(f"--- consul\n{lab.consul.log()}")
        raise
    finally:
        lab.stop()


@pytest.fixture(scope="module")
def gateway(lab):
    """haproxy on a configuration rendered with ``backend_source: runtime`` (2 slots)."""
    work = lab.work / "gw"
    work.mkdir()
    port = gatewaylab.free_ports(1)[0]
    (work / "server-state").write_text("1\n")
    config = work / "haproxy.cfg"
    settings = {
        "backend_source": "runtime",
        "servers": 2,
        "bind_address": "127.0.0.1",
        "metrics_port": 0,
        "maxconn": 1000,
        "rate_limit": 10_000_000,
        "stats_socket": str(work / "admin.sock"),
        "server_state_file": str(work / "server-state"),
    }
    config.write_text(haproxy_config([{"name": "web", "port": port, "check_path": "/healthz"}], settings))
    gw = gatewaylab.Gateway(config, work / "admin.sock")
    lab.gateways.append(gw)
    gw.port = port
    return gw


def _slots(gw) -> dict[tuple[str, int], str]:
    state = parse_servers_state(gw.admin("show servers state web"), "web")
    return {(s.address, s.port): s.name for s in state if s.in_service}


def _config(lab, gw, name: str, token: str | None, **extra) -> Path:
    """A configuration of the program; ``token`` None: no token file, "" an empty one."""
    config = {
        "consul_address": lab.consul.address,
        "stats_socket": str(gw.socket),
        "services": [{"backend": "web"}],
        "ca_file": str(lab.consul.ca_file),
        "cert_file": str(lab.cert),
        "key_file": str(lab.key),
        "wait_s": 2,
        "retries": 2,
        **extra,
    }
    if token is not None:
        token_file = lab.work / f"{name}.token"
        token_file.touch(mode=0o600)
        token_file.write_text(token + "\n")
        config["token_file"] = str(token_file)
    path = lab.work / f"{name}.json"
    path.write_text(json.dumps({k: v for k, v in config.items() if v is not None}))
    return path


def _once(config: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, str(PROGRAM), "--config", str(config), "--once"],
        check=False,
        capture_output=True,
        text=True,
        timeout=600,
        env=gatewaylab.gateway_sync_env(),
    )


def test_a_token_that_reads_services_and_nodes_fills_the_slots(lab, gateway):
    token = lab.token(READ_RULES, "gateway-read")
    result = _once(_config(lab, gateway, "good", token))
    assert (result.returncode, "Traceback" in result.stderr) == (0, False), result.stderr
    a1 = lab.backends["a1"]
    assert _slots(gateway) == {(a1.address, a1.port): "web-1"}
    assert result.stderr.splitlines()[1:] == [
        f"INFO web: set server web/web-1 addr {a1.address} port {a1.port}",
        "INFO web: set server web/web-1 state ready",
        result.stderr.splitlines()[-1],
    ]
    assert result.stderr.splitlines()[-1].startswith("INFO web: 1 passing instance(s) of web (index ")
    assert token not in result.stderr
    gatewaylab.wait_for(
        lambda: gatewaylab.get(gateway.port) == (200, "a1"), "a1 answering through the gateway"
    )
    hits = a1.hits
    assert {gatewaylab.get(gateway.port) for _ in range(10)} == {(200, "a1")}
    assert a1.hits == hits + 10


@pytest.mark.parametrize("case", ["no-read", "unknown-token", "no-client-certificate"])
def test_a_refused_read_is_one_line_per_attempt_then_exit_1_and_the_slots_stay(lab, gateway, case):
    before = _slots(gateway)
    assert before, "the first test fills a slot"
    extra = {}
    if case == "no-read":
        token = lab.token(NO_READ_RULES, "gateway-no-read")
        refusal = (
            "refused by ACLs, the answer is filtered (X-Consul-Results-Filtered-By-ACLs):"
            " the token may not read the service and its nodes"
        )
    elif case == "unknown-token":
        token = "0b7c2a4e-1111-4222-8333-944455556666"
        refusal = "HTTP 403 ACL not found"
    else:
        token = lab.token(READ_RULES, "gateway-no-cert")
        extra = {"cert_file": None, "key_file": None}
        refusal = "TLSV13_ALERT_CERTIFICATE_REQUIRED"
    result = _once(_config(lab, gateway, case, token, **extra))
    lines = result.stderr.splitlines()
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    assert token not in result.stderr
    assert lines[0].startswith("INFO Consul ")
    prefix = f"ERROR Consul {lab.consul.address}: web: "
    assert len(lines) == 4, result.stderr
    assert lines[1:] == [f"{prefix}{refusal} (attempt {n} of 2)" for n in (1, 2)] + [
        f"ERROR web: giving up on Consul after 2 attempts: Consul {lab.consul.address}: web: {refusal}"
    ]
    assert _slots(gateway) == before


def test_no_token_is_refused_before_consul_is_asked(lab, gateway):
    config = _config(lab, gateway, "no-token", None)
    result = _once(config)
    assert (result.returncode, result.stderr) == (
        1,
        f"ERROR {config}: token_file: required with an https:// consul_address\n",
    )
    config = _config(lab, gateway, "empty-token", "")
    result = _once(config)
    assert (result.returncode, result.stderr) == (
        1,
        f"ERROR {lab.work / 'empty-token.token'}: the token file is empty\n",
    )
    config = _config(lab, gateway, "plain", "x", consul_address="http://127.0.0.1:1")
    result = _once(config)
    assert (result.returncode, result.stderr) == (
        1,
        f"ERROR {config}: ca_file, cert_file, key_file: only with an https:// consul_address\n",
    )


# ---- the role -------------------------------------------------------------------------------


class Role:
    def __init__(self, lab: Lab, root: Path, token: str) -> None:
        self.lab, self.root, self.token = lab, root, token
        self.host = root / "host"
        (self.host / "systemd").mkdir(parents=True)
        self.port = gatewaylab.free_ports(1)[0]

    def variables(self) -> dict:
        h = self.host
        return {
            # what the preflight play registers on localhost; the role's default reads it there
            "cloud58_topology": {"plan": {"hosts": {HOST: {"labels": {"function": "ingress"}}}}},
            "haproxy_gateway_backend_source": "runtime",
            "haproxy_gateway_services": [
                {"name": "web", "port": self.port, "check_path": "/healthz", "servers": 2}
            ],
            "haproxy_gateway_bind_address": "127.0.0.1",
            "haproxy_gateway_metrics_port": 0,
            "haproxy_gateway_maxconn": 1000,
            "haproxy_gateway_stats_socket": str(h / "admin.sock"),
            "haproxy_gateway_config_file": str(h / "haproxy.cfg"),
            "haproxy_gateway_server_state_file": str(h / "server-state"),
            "haproxy_gateway_reload_dropin": str(h / "haproxy.service.d/cloud58-reload.conf"),
            "haproxy_gateway_sync_consul_address": self.lab.consul.address,
            "haproxy_gateway_sync_ca_file": str(self.lab.consul.ca_file),
            "haproxy_gateway_sync_cert_file": str(self.lab.cert),
            "haproxy_gateway_sync_key_file": str(self.lab.key),
            "haproxy_gateway_sync_token": self.token,
            "haproxy_gateway_sync_wait_s": 2,
            "haproxy_gateway_sync_metrics_address": "127.0.0.1",
            "haproxy_gateway_sync_metrics_port": 0,
            "haproxy_gateway_sync_dir": str(h / "lib"),
            "haproxy_gateway_sync_config_dir": str(h / "etc/gateway-sync"),
            "haproxy_gateway_sync_unit_dir": str(h / "systemd"),
            "haproxy_gateway_sync_python": sys.executable,
            "haproxy_gateway_install_package": False,
            "haproxy_gateway_manage_service": False,
            "ansible_connection": "local",
            "ansible_python_interpreter": sys.executable,
        }

    def play(self, check: bool = False, **extra):
        variables = {**self.variables(), **extra}
        return roleplay.play(self.root, PLAYBOOK, HOST, variables, check=check)

    def files(self) -> dict[str, int]:
        return {
            str(p.relative_to(self.host)): stat.S_IMODE(p.stat().st_mode)
            for p in sorted(self.host.rglob("*"))
            if p.is_file()
        }


@pytest.fixture(scope="module")
def role(lab, tmp_path_factory):
    return Role(lab, tmp_path_factory.mktemp("role"), lab.token(READ_RULES, "gateway-role"))


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (
            {"haproxy_gateway_backend_source": "srv"},
            "value of haproxy_gateway_backend_source must be one of: dns, runtime, got: srv",
        ),
        (
            {"haproxy_gateway_sync_token": ""},
            f"{HOST}: haproxy_gateway_sync_token is empty"
            " (required with haproxy_gateway_backend_source runtime)",
        ),
        (
            {"haproxy_gateway_sync_consul_address": "127.0.0.1:8501"},
            f'{HOST}: haproxy_gateway_sync_consul_address "127.0.0.1:8501" is not an http:// or https:// URL',
        ),
        (
            {"haproxy_gateway_sync_ca_file": ""},
            f'{HOST}: haproxy_gateway_sync_ca_file "" is not an absolute path'
            " (required with an https:// address)",
        ),
        (
            {"haproxy_gateway_sync_key_file": ""},
            f"{HOST}: haproxy_gateway_sync_cert_file and haproxy_gateway_sync_key_file go together, got [",
        ),
        (
            {"haproxy_gateway_sync_retries": 0},
            f"{HOST}: haproxy_gateway_sync_retries 0 is below 1",
        ),
    ],
    ids=["backend-source", "no-token", "address", "ca-file", "key-file", "retries"],
)
def test_bad_values_fail_by_name_before_any_file_is_written(role, extra, message):
    stats, failed, output = role.play(**extra)
    assert stats["failures"] == 1
    assert len(failed) == 1
    assert message in failed[0], failed
    assert role.files() == {}
    assert role.token not in output


def test_check_mode_writes_nothing_and_shows_no_token(role):
    stats, failed, output = role.play(check=True)
    assert (failed, stats["failures"]) == ([], 0)
    assert stats["changed"] > 0
    assert role.files() == {}
    assert role.token not in output
    diffs = {
        Path(d["after_header"]).name: d.get("after", "")
        for result in roleplay.task_results(output)
        for item in [result, *(result.get("results") or [])]
        for d in (item.get("diff") if isinstance(item.get("diff"), list) else [])
        if d.get("after_header")
    }
    assert json.loads(diffs["gateway-sync.json"])["token_file"] == str(
        role.host / "etc/gateway-sync/gateway-sync.token"
    )
    assert "ExecStart=" in diffs["cloud58-gateway-sync.service.j2"]


def test_a_run_writes_exactly_the_files_and_a_second_changes_nothing(role, lab):
    stats, failed, output = role.play()
    assert (failed, stats["failures"]) == ([], 0)
    assert role.token not in output
    assert role.files() == {
        "haproxy.cfg": 0o644,
        "server-state": 0o644,
        "haproxy.service.d/cloud58-reload.conf": 0o644,
        "lib/cloud58-gateway-sync": 0o644,
        "lib/cloud58_gateway/__init__.py": 0o644,
        "lib/cloud58_gateway/haproxy.py": 0o644,
        "lib/cloud58_gateway/runtime.py": 0o644,
        "etc/gateway-sync/gateway-sync.json": 0o640,
        "etc/gateway-sync/gateway-sync.token": 0o600,
        "systemd/cloud58-gateway-sync.service": 0o644,
    }
    h = role.host
    assert stat.S_IMODE((h / "etc/gateway-sync").stat().st_mode) == 0o750
    assert (h / "lib/cloud58-gateway-sync").read_bytes() == PROGRAM.read_bytes()
    for name in ("__init__.py", "haproxy.py", "runtime.py"):
        assert (h / "lib/cloud58_gateway" / name).read_bytes() == (GATEWAY / name).read_bytes()
    assert (h / "etc/gateway-sync/gateway-sync.token").read_text() == role.token + "\n"
    assert json.loads((h / "etc/gateway-sync/gateway-sync.json").read_text()) == {
        "consul_address": lab.consul.address,
        "stats_socket": str(h / "admin.sock"),
        "services": [{"backend": "web", "consul_service": "web"}],
        "token_file": str(h / "etc/gateway-sync/gateway-sync.token"),
        "ca_file": str(lab.consul.ca_file),
        "cert_file": str(lab.cert),
        "key_file": str(lab.key),
        "wait_s": 2,
        "retries": 5,
        "metrics_address": "127.0.0.1",
        "metrics_port": 0,
    }
    cfg = (h / "haproxy.cfg").read_text()
    assert "resolvers" not in cfg
    assert "server-template web- 2 web.slot.invalid:1 disabled init-addr last,0.0.0.0" in cfg

    stats, failed, _ = role.play()
    assert (failed, stats) == ([], {"changed": 0, "failures": 0})


def test_the_files_the_role_wrote_run_and_an_instance_gets_traffic(role, lab):
    h = role.host
    unit = (h / "systemd/cloud58-gateway-sync.service").read_text()
    assert "After=network-online.target haproxy.service" in unit.splitlines()
    (exec_start,) = [
        line.removeprefix("ExecStart=") for line in unit.splitlines() if line.startswith("ExecStart=")
    ]
    argv = shlex.split(exec_start)
    assert argv == [
        sys.executable,
        str(h / "lib/cloud58-gateway-sync"),
        "--config",
        str(h / "etc/gateway-sync/gateway-sync.json"),
    ]
    gw = gatewaylab.Gateway(h / "haproxy.cfg", h / "admin.sock")
    lab.gateways.append(gw)
    # the installed copy only: no source tree, no PYTHONPATH
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    log = role.root / "sync.log"
    with log.open("w") as out:
        proc = subprocess.Popen(
            argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=out, env=env, cwd=role.root
        )
    lab.procs.append(proc)
    a1, a2 = lab.backends["a1"], lab.backends["a2"]

    def slots(want):
        def check():
            if proc.poll() is not None:
                raise RuntimeError(f"cloud58-gateway-sync exited ({proc.returncode}):\n{log.read_text()}")
            return _slots(gw) == want

        gatewaylab.wait_for(check, f"the slots to be {want}")

    slots({(a1.address, a1.port): "web-1"})
    gatewaylab.wait_for(
        lambda: gatewaylab.get(role.port) == (200, "a1"), "a1 answering through the role's gateway"
    )
    # a registration while it runs is followed, and the new instance gets requests
    lab.register("a2")
    slots({(a1.address, a1.port): "web-1", (a2.address, a2.port): "web-2"})
    gatewaylab.wait_for(
        lambda: {gatewaylab.get(role.port) for _ in range(10)} == {(200, "a1"), (200, "a2")},
        "a1 and a2 both answering",
    )
    text = log.read_text()
    assert "Traceback" not in text
    assert "ERROR" not in text, text
    assert role.token not in text
    # its /metrics (port 0: the one it logged): two instances placed, two commands each
    (url,) = re.findall(r"metrics on (http://\S+/metrics)", text)
    with urllib.request.urlopen(url, timeout=10) as answer:
        series = dict(
            line.rsplit(" ", 1) for line in answer.read().decode().splitlines() if not line.startswith("#")
        )
    assert {k: v for k, v in series.items() if "answers_total" not in k} == {
        'cloud58_gateway_sync_commands_total{backend="web"}': "4",
        'cloud58_gateway_sync_errors_total{backend="web"}': "0",
        'cloud58_gateway_sync_passing_instances{backend="web"}': "2",
        "cloud58_gateway_sync_reloads_total": "0",
    }
    assert int(series['cloud58_gateway_sync_answers_total{backend="web"}']) >= 2


def test_back_to_dns_the_role_removes_the_program_and_its_unit(role, lab):
    for proc in lab.procs:  # the unit's command of the test above, as systemd would stop it
        proc.terminate()
        proc.wait(timeout=30)
    before = role.files()
    stats, failed, _ = role.play(check=True, haproxy_gateway_backend_source="dns")
    assert (failed, stats["failures"]) == ([], 0)
    assert role.files() == before
    stats, failed, _ = role.play(haproxy_gateway_backend_source="dns")
    assert (failed, stats["failures"]) == ([], 0)
    assert role.files() == {
        "haproxy.cfg": 0o644,
        "haproxy.log": 0o644,  # the test's haproxy, above
        "server-state": 0o644,
        "haproxy.service.d/cloud58-reload.conf": 0o644,
    }
    assert not (role.host / "lib").exists()
    assert not (role.host / "etc/gateway-sync").exists()
    assert "\nresolvers consul\n" in (role.host / "haproxy.cfg").read_text()
    stats, failed, _ = role.play(haproxy_gateway_backend_source="dns")
    assert (failed, stats) == ([], {"changed": 0, "failures": 0})
