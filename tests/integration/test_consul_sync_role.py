"""The role cloud58.platform.consul_sync run by ansible-playbook on this machine (connection
local, every path redirected into a temporary directory, no package installed, no service
touched), then the program started with the ExecStart of the unit the role wrote, against a
real Consul 1.14.11 server (``cloud58_lab.consulsync``: ACLs default-deny, the API on HTTPS only
verifying client certificates) and the apiserver of ``kube_clusters`` (context c1):

* check mode writes nothing and shows no secret (the token, the kubeconfig's credentials);
* a run writes exactly the program (0755), its discovery package (0644), consul-sync.json
  (0640, equal to the configuration written out below), the token and the kubeconfig (0600)
  and the unit (0644); a second run changes nothing;
* a missing or empty required variable fails with one line naming it, before any file is
  written, never showing a secret;
* the unit's command, with the files the role wrote and no source tree on the path,
  registers the endpoints of an annotated Service in Consul.

Consul and the sync are stopped by PID; the test's namespace is deleted.
"""

from __future__ import annotations

import contextlib
import json
import os
import shlex
import signal
import stat
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
import yaml
from kubernetes import client, config

from cloud58_lab import programs, roleplay
from cloud58_lab.consulsync import Consul
from cloud58_lab.netlab import wait_until

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[2]
ROLE = REPO / "collections/ansible_collections/cloud58/platform/roles/consul_sync"
DISCOVERY = REPO / "collections/ansible_collections/cloud58/platform/plugins/module_utils/discovery"
DATACENTER = "bj1"
HOST = "c58csrole-h1"
PLAYBOOK = """\
- name: Run consul_sync
  hosts: all
  gather_facts: false
  roles:
    - cloud58.platform.consul_sync
"""
WAIT = 120  # bounds against a hang only


class Run:
    """One host's directory, its variables and ansible-playbook runs of the role on it."""

    def __init__(self, root: Path, consul: Consul, token: str, kubeconfig: str) -> None:
        self.root = root
        self.consul = consul
        self.token = token
        self.kubeconfig = kubeconfig
        self.host = root / "host"
        # The stand-in for /etc/systemd/system, which a host has.
        (self.host / "systemd").mkdir(parents=True, exist_ok=True)

    def variables(self) -> dict:
        return {
            "consul_sync_cluster": "c1",
            "consul_sync_datacenter": DATACENTER,
            "consul_sync_consul_address": self.consul.address,
            "consul_sync_token": self.token,
            "consul_sync_kubeconfig": self.kubeconfig,
            "consul_sync_context": "c1",
            "consul_sync_ca_file": str(self.consul.ca_file),
            "consul_sync_cert_file": str(self.consul.sync_cert[0]),
            "consul_sync_key_file": str(self.consul.sync_cert[1]),
            "consul_sync_grace_s": 3,
            "consul_sync_metrics_port": 0,
            "consul_sync_dir": str(self.host / "lib"),
            "consul_sync_config_dir": str(self.host / "etc/consul-sync"),
            "consul_sync_unit_dir": str(self.host / "systemd"),
            "consul_sync_python": sys.executable,
            "consul_sync_install_package": False,
            "consul_sync_manage_service": False,
            "ansible_connection": "local",
            "ansible_python_interpreter": sys.executable,
        }

    def play(self, check: bool = False, drop: tuple = (), **extra):
        """``(stats, failed task messages, diffs by file name, whole output)`` of one run."""
        variables = {k: v for k, v in {**self.variables(), **extra}.items() if k not in drop}
        stats, failed, stdout = roleplay.play(self.root, PLAYBOOK, HOST, variables, check=check)
        diffs = {}
        for result in roleplay.task_results(stdout):
            for item in [result, *(result.get("results") or [])]:
                diff = item.get("diff")
                for d in diff if isinstance(diff, list) else []:
                    if d.get("after_header"):
                        diffs[Path(d["after_header"]).name] = d.get("after", "")
        return stats, failed, diffs, stdout

    def files(self) -> dict:
        """Every file under the host's directory: relative path -> mode."""
        return {
            str(p.relative_to(self.host)): stat.S_IMODE(p.stat().st_mode)
            for p in sorted(self.host.rglob("*"))
            if p.is_file()
        }


def _secrets(token: str, kubeconfig: str) -> list[str]:
    """The token and every credential of the kubeconfig (what must never be printed)."""
    users = yaml.safe_load(kubeconfig)["users"]
    creds = [v for u in users for k, v in u["user"].items() if k in ("client-key-data", "token", "password")]
    assert creds, "the kubeconfig carries no credential to look for"
    return [token, *creds]


@pytest.fixture(scope="module")
def consul(tmp_path_factory):
    programs.require("consul")
    consul = Consul(
        tmp_path_factory.mktemp("consul"),
        DATACENTER,
        node="c58csrole-s1",
        ca_name="cloud58-consul-sync-role-ca",
    )
    try:
        consul.start()
        consul.bootstrap(WAIT)
        yield consul
    except BaseException:
        print(f"--- consul\n{consul.log()}")
        raise
    finally:
        consul.stop()


@pytest.fixture(scope="module")
def run(consul, kube_clusters, tmp_path_factory):
    _, token = consul.sync_token()
    return Run(tmp_path_factory.mktemp("role"), consul, token, kube_clusters.kubeconfig.read_text())


def test_check_mode_writes_nothing_and_shows_no_secret(run):
    stats, failed, diffs, output = run.play(check=True)
    assert (failed, stats["failures"]) == ([], 0)
    assert stats["changed"] > 0
    assert run.files() == {}
    # the diff shows the configuration and the unit, never the token or the kubeconfig
    assert json.loads(diffs["consul-sync.json"])["token_file"] == str(
        run.host / "etc/consul-sync/consul-sync.token"
    )
    assert "ExecStart=" in diffs["cloud58-consul-sync.service.j2"]
    for secret in _secrets(run.token, run.kubeconfig):
        assert secret not in output


def test_a_run_writes_exactly_the_files_with_their_modes_and_the_configuration(run, consul):
    stats, failed, _, output = run.play()
    assert (failed, stats["failures"]) == ([], 0)
    assert stats["changed"] > 0
    assert run.files() == {
        "lib/cloud58-consul-sync": 0o755,
        "lib/cloud58_discovery/__init__.py": 0o644,
        "lib/cloud58_discovery/catalog.py": 0o644,
        "lib/cloud58_discovery/syncconfig.py": 0o644,
        "etc/consul-sync/consul-sync.json": 0o640,
        "etc/consul-sync/consul-sync.token": 0o600,
        "etc/consul-sync/consul-sync.kubeconfig": 0o600,
        "systemd/cloud58-consul-sync.service": 0o644,
    }
    h = run.host
    assert stat.S_IMODE((h / "etc/consul-sync").stat().st_mode) == 0o750
    assert json.loads((h / "etc/consul-sync/consul-sync.json").read_text()) == {
        "cluster": "c1",
        "datacenter": "bj1",
        "consul_address": consul.address,
        "token_file": f"{h}/etc/consul-sync/consul-sync.token",
        "kubeconfig": f"{h}/etc/consul-sync/consul-sync.kubeconfig",
        "context": "c1",
        "ca_file": str(consul.ca_file),
        "cert_file": str(consul.sync_cert[0]),
        "key_file": str(consul.sync_cert[1]),
        "grace_s": 3,
        "debounce_ms": 20,
        "max_batch_ms": 200,
        "max_txn_per_s": 50,
        "retries": 5,
        "metrics_address": "127.0.0.1",
        "metrics_port": 0,
    }
    assert (h / "etc/consul-sync/consul-sync.token").read_text() == run.token + "\n"
    assert (h / "etc/consul-sync/consul-sync.kubeconfig").read_text() == run.kubeconfig
    assert (h / "lib/cloud58-consul-sync").read_bytes() == (ROLE / "files/cloud58-consul-sync").read_bytes()
    for name in ("__init__.py", "catalog.py", "syncconfig.py"):
        assert (h / "lib/cloud58_discovery" / name).read_bytes() == (DISCOVERY / name).read_bytes()
    unit = (h / "systemd/cloud58-consul-sync.service").read_text().splitlines()
    assert [line for line in unit if line.startswith(("ExecStart=", "Restart="))] == [
        f"ExecStart={sys.executable} {h}/lib/cloud58-consul-sync"
        f" --config {h}/etc/consul-sync/consul-sync.json",
        "Restart=on-failure",
    ]
    for secret in _secrets(run.token, run.kubeconfig):
        assert secret not in output


def test_a_second_run_changes_nothing(run):
    stats, failed, _, _ = run.play()
    assert (failed, stats) == ([], {"changed": 0, "failures": 0})


@pytest.mark.parametrize(
    ("drop", "empty", "variable"),
    [
        ((), "consul_sync_cluster", "consul_sync_cluster"),
        ((), "consul_sync_datacenter", "consul_sync_datacenter"),
        ((), "consul_sync_consul_address", "consul_sync_consul_address"),
        ((), "consul_sync_token", "consul_sync_token"),
        ((), "consul_sync_kubeconfig", "consul_sync_kubeconfig"),
        (("consul_sync_token",), None, "consul_sync_token"),
        (("consul_sync_kubeconfig",), None, "consul_sync_kubeconfig"),
    ],
    ids=[
        "empty-cluster",
        "empty-datacenter",
        "empty-consul-address",
        "empty-token",
        "empty-kubeconfig",
        "missing-token",
        "missing-kubeconfig",
    ],
)
def test_a_missing_or_empty_variable_fails_naming_it_before_any_file(run, tmp_path, drop, empty, variable):
    fresh = Run(tmp_path, run.consul, run.token, run.kubeconfig)
    stats, failed, _, output = fresh.play(drop=drop, **({empty: ""} if empty else {}))
    assert stats == {"changed": 0, "failures": 1}
    assert len(failed) == 1
    message = failed[0]
    if empty:  # the filter: one line naming the variable
        assert "\n" not in message.strip()
        assert message.strip().endswith(f"consul_sync_config: {variable} is missing or empty")
    else:  # Ansible's own check of meta/argument_specs.yml, before the first task
        assert message.splitlines() == [
            "Validation of arguments failed:",
            f"missing required arguments: {variable}",
        ]
    assert fresh.files() == {}
    for secret in _secrets(run.token, run.kubeconfig):
        assert secret not in output


@pytest.fixture
def sync(run, kube_clusters):
    """The unit's ExecStart, run from the files the role wrote (no source tree on the path),
    and a namespace of the test's; both gone at the end (the process by PID)."""
    unit = (run.host / "systemd/cloud58-consul-sync.service").read_text()
    exec_start = next(line for line in unit.splitlines() if line.startswith("ExecStart="))
    argv = shlex.split(exec_start[len("ExecStart=") :])
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    log_path = run.root / "sync.log"
    api = config.new_client_from_config(config_file=str(kube_clusters.kubeconfig), context="c1")
    core = client.CoreV1Api(api)
    namespace = f"consul-sync-role-{uuid.uuid4().hex[:8]}"
    core.create_namespace({"metadata": {"name": namespace}})
    with log_path.open("w") as log:
        proc = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, env=env, cwd=run.root)
    try:
        yield proc, log_path, core, client.DiscoveryV1Api(api), namespace
    except BaseException:
        print(f"--- sync\n{log_path.read_text()}\n--- consul\n{run.consul.log()}")
        raise
    finally:
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGTERM)
            proc.wait(timeout=30)
        with contextlib.suppress(client.exceptions.ApiException):
            core.delete_namespace(namespace)


def test_the_unit_s_command_registers_an_annotated_service_in_consul(run, sync):
    proc, log_path, core, discovery, namespace = sync
    core.create_namespaced_service(
        namespace,
        {
            "metadata": {
                "name": "shop",
                "annotations": {"consul.cloud58.io/service": "shop-role"},
                "labels": {"app.kubernetes.io/version": "2.0.1"},
            },
            "spec": {"ports": [{"name": "http", "port": 80, "targetPort": 8080, "protocol": "TCP"}]},
        },
    )
    discovery.create_namespaced_endpoint_slice(
        namespace,
        {
            "apiVersion": "discovery.k8s.io/v1",
            "kind": "EndpointSlice",
            "metadata": {
                "name": "shop-1",
                "labels": {
                    "kubernetes.io/service-name": "shop",
                    "endpointslice.kubernetes.io/managed-by": "cloud58-test",
                },
            },
            "addressType": "IPv4",
            "endpoints": [
                {"addresses": ["198.18.9.20"], "conditions": {"ready": True}},
                {"addresses": ["198.18.9.21"], "conditions": {"ready": False}},
            ],
            "ports": [{"name": "http", "port": 8080, "protocol": "TCP"}],
        },
    )

    def registered():
        assert proc.poll() is None, f"the sync exited ({proc.returncode}):\n{log_path.read_text()}"
        return len(run.consul.instances("shop-role")) == 2

    wait_until(registered, WAIT, interval=0.2, what="shop-role's two instances in Consul")
    tags = ["cluster=c1", "datacenter=bj1", "version=2.0.1"]
    assert run.consul.instances("shop-role") == {
        "shop-role-198.18.9.20-8080": ("k8s-c1", "198.18.9.20", 8080, tags, "passing", False),
        "shop-role-198.18.9.21-8080": ("k8s-c1", "198.18.9.21", 8080, tags, "critical", False),
    }
    assert run.token not in log_path.read_text()
