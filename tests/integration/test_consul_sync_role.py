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
  registers the endpoints of an annotated Service in Consul;
* with site.yml's identities (the token of policy cloud58-consul-sync-c1 derived from the
  management token, the user cloud58:consul-sync of a certificate of the cluster's CA bound
  to the rendered ClusterRole, the kubeconfig naming its pair by path, the certificates copied
  by consul_sync_pki_files: keys 0600) the role's second run changes nothing and the sync
  registers a Service's endpoint on node k8s-c1; with the ClusterRole narrowed to Services,
  every list is refused (403 naming the user) and the sync exits 1; check mode writes
  nothing; a pki file with a slash in its name or a missing source fails naming it before any
  file is written.

Consul and the sync are stopped by PID; the test's namespaces, ClusterRole and binding are deleted.
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

from ansible_collections.cloud58.platform.plugins.filter.consul import consul_sync_token
from ansible_collections.cloud58.platform.plugins.filter.controlplane import consul_sync_kubeconfig
from ansible_collections.cloud58.platform.plugins.module_utils.controlplane.pki_plan import CONSUL_SYNC_USER
from ansible_collections.cloud58.platform.plugins.module_utils.render.platform import consul_sync_rbac
from cloud58_lab import programs, roleplay
from cloud58_lab.consulsync import Consul
from cloud58_lab.netlab import wait_until
from cloud58_lab.pki import CertificateAuthority

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
            "consul_sync_metrics_address": "127.0.0.1",
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


@contextlib.contextmanager
def _running(run: Run, api):
    """The unit's ExecStart, run from the files the role wrote (no source tree on the path),
    and a namespace of the test's; both gone at the end (the process by PID)."""
    core = client.CoreV1Api(api)
    namespace = f"consul-sync-role-{uuid.uuid4().hex[:8]}"
    core.create_namespace({"metadata": {"name": namespace}})
    proc, log_path = _start(run)
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


@pytest.fixture
def sync(run, kube_clusters):
    api = config.new_client_from_config(config_file=str(kube_clusters.kubeconfig), context="c1")
    with _running(run, api) as started:
        yield started


def _annotated_service(core, discovery, namespace, *, name, consul_name, ready, labels=None):
    """Service ``name`` (port http 80 -> 8080) annotated ``consul_name`` and its EndpointSlice
    with an endpoint per address of ``ready`` ({address: ready})."""
    meta = {"name": name, "annotations": {"consul.cloud58.io/service": consul_name}, "labels": labels or {}}
    core.create_namespaced_service(
        namespace,
        {
            "metadata": meta,
            "spec": {"ports": [{"name": "http", "port": 80, "targetPort": 8080, "protocol": "TCP"}]},
        },
    )
    discovery.create_namespaced_endpoint_slice(
        namespace,
        {
            "apiVersion": "discovery.k8s.io/v1",
            "kind": "EndpointSlice",
            "metadata": {
                "name": f"{name}-1",
                "labels": {
                    "kubernetes.io/service-name": name,
                    "endpointslice.kubernetes.io/managed-by": "cloud58-test",
                },
            },
            "addressType": "IPv4",
            "endpoints": [{"addresses": [a], "conditions": {"ready": r}} for a, r in ready.items()],
            "ports": [{"name": "http", "port": 8080, "protocol": "TCP"}],
        },
    )


def test_the_unit_s_command_registers_an_annotated_service_in_consul(run, sync):
    proc, log_path, core, discovery, namespace = sync
    _annotated_service(
        core,
        discovery,
        namespace,
        name="shop",
        consul_name="shop-role",
        ready={"198.18.9.20": True, "198.18.9.21": False},
        labels={"app.kubernetes.io/version": "2.0.1"},
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


# ---- identities of its own, as site.yml's consul_sync stage gives them ---------------------
# The Consul token of policy cloud58-consul-sync-<cluster> (filter consul_sync_token, created
# through the API as the consul role creates it), the Kubernetes user cloud58:consul-sync (a
# client certificate of the cluster's CA, as the cluster PKI issues it; the rendered ClusterRole
# and binding applied), the kubeconfig naming its pair by path (filter consul_sync_kubeconfig),
# and the certificates copied from a stand-in of the controller's PKI (consul_sync_pki_files).


def _may_list_endpointslices(api) -> bool:
    review = client.AuthorizationV1Api(api).create_subject_access_review(
        {
            "spec": {
                "user": CONSUL_SYNC_USER,
                "resourceAttributes": {
                    "group": "discovery.k8s.io",
                    "resource": "endpointslices",
                    "verb": "list",
                },
            }
        }
    )
    return bool(review.status.allowed)


@pytest.fixture(scope="module")
def identity(consul, kube_clusters, tmp_path_factory):
    """A Run whose variables are site.yml's: the cluster's own token and Kubernetes user."""
    root = tmp_path_factory.mktemp("identity")
    # the controller's PKI: the cluster's (control_plane) and Consul's (consul stage)
    controller = root / "controller"
    CertificateAuthority.load(kube_clusters["c1"].pki).issue(CONSUL_SYNC_USER, client=True).write(
        controller / "c1", "consul-sync"
    )
    (controller / "c1/ca.crt").write_bytes((kube_clusters["c1"].pki / "ca.crt").read_bytes())
    (controller / "consul").mkdir()
    (controller / "consul/ca.crt").write_bytes(consul.ca_file.read_bytes())
    for source, stem in zip(consul.sync_cert, ("consul-sync.crt", "consul-sync.key"), strict=True):
        (controller / "consul" / stem).write_bytes(Path(source).read_bytes())
    # the token, as the consul role creates it: derived from the management token
    token = consul_sync_token(consul.management, "c1")
    status, _, value = consul.request(
        "PUT", "/v1/acl/policy", {"Name": token["Policy"], "Rules": token["Rules"]}
    )
    assert status == 200, value
    body = {k: token[k] for k in ("AccessorID", "SecretID")} | {"Policies": [{"Name": token["Policy"]}]}
    status, _, value = consul.request("PUT", "/v1/acl/token", body)
    assert status == 200, value
    # the ClusterRole and its binding as clusters/<cluster>/ holds them
    api = config.new_client_from_config(config_file=str(kube_clusters.kubeconfig), context="c1")
    rbac = client.RbacAuthorizationV1Api(api)
    role, binding = consul_sync_rbac("c1")
    rbac.create_cluster_role(role)
    rbac.create_cluster_role_binding(binding)
    run = Run(root / "run", consul, token["SecretID"], "")
    config_dir = run.host / "etc/consul-sync"
    run.kubeconfig = yaml.safe_dump(
        consul_sync_kubeconfig({"name": "c1"}, kube_clusters["c1"].server, str(config_dir)), sort_keys=True
    )
    pki = config_dir / "pki"
    run.site_variables = {
        "consul_sync_ca_file": str(pki / "consul-ca.crt"),
        "consul_sync_cert_file": str(pki / "consul.crt"),
        "consul_sync_key_file": str(pki / "consul.key"),
        "consul_sync_pki_files": [
            {"src": str(controller / "c1/ca.crt"), "dest": "ca.crt", "secret": False},
            {"src": str(controller / "c1/consul-sync.crt"), "dest": "consul-sync.crt", "secret": False},
            {"src": str(controller / "c1/consul-sync.key"), "dest": "consul-sync.key", "secret": True},
            {"src": str(controller / "consul/ca.crt"), "dest": "consul-ca.crt", "secret": False},
            {"src": str(controller / "consul/consul-sync.crt"), "dest": "consul.crt", "secret": False},
            {"src": str(controller / "consul/consul-sync.key"), "dest": "consul.key", "secret": True},
        ],
    }
    try:
        yield run, api, rbac
    finally:
        with contextlib.suppress(client.exceptions.ApiException):
            rbac.delete_cluster_role_binding("cloud58-consul-sync")
        with contextlib.suppress(client.exceptions.ApiException):
            rbac.delete_cluster_role("cloud58-consul-sync")


def _start(run: Run, *args: str):
    """The unit's ExecStart (plus ``args``) from the files the role wrote: (process, log path)."""
    unit = (run.host / "systemd/cloud58-consul-sync.service").read_text()
    exec_start = next(line for line in unit.splitlines() if line.startswith("ExecStart="))
    argv = [*shlex.split(exec_start[len("ExecStart=") :]), *args]
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    log_path = run.root / f"sync-{uuid.uuid4().hex[:6]}.log"
    with log_path.open("w") as log:
        return subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, env=env, cwd=run.root), log_path


def test_with_its_own_token_and_user_the_sync_registers_a_services_endpoints(identity, kube_clusters):
    run, api, _rbac = identity
    key = run.root.parent / "controller/c1/consul-sync.key"
    # check mode: nothing written, the key not shown
    stats, failed, _, output = run.play(check=True, **run.site_variables)
    assert (failed, stats["failures"], run.files()) == ([], 0, {})
    assert key.read_text().strip().splitlines()[1] not in output
    stats, failed, _, output = run.play(**run.site_variables)
    assert (failed, stats["failures"]) == ([], 0)
    files = run.files()
    assert {k: v for k, v in files.items() if "/pki/" in k} == {
        "etc/consul-sync/pki/ca.crt": 0o644,
        "etc/consul-sync/pki/consul-sync.crt": 0o644,
        "etc/consul-sync/pki/consul-sync.key": 0o600,
        "etc/consul-sync/pki/consul-ca.crt": 0o644,
        "etc/consul-sync/pki/consul.crt": 0o644,
        "etc/consul-sync/pki/consul.key": 0o600,
    }
    pki = run.host / "etc/consul-sync/pki"
    assert (pki / "consul-sync.key").read_bytes() == key.read_bytes()
    assert stat.S_IMODE(pki.stat().st_mode) == 0o750
    # the kubeconfig names the user and its files; no key or certificate inside
    kubeconfig = yaml.safe_load((run.host / "etc/consul-sync/consul-sync.kubeconfig").read_text())
    assert kubeconfig["users"] == [
        {
            "name": "cloud58:consul-sync",
            "user": {"client-certificate": f"{pki}/consul-sync.crt", "client-key": f"{pki}/consul-sync.key"},
        }
    ]
    for secret in (run.token, key.read_text().strip().splitlines()[1]):
        assert secret not in output
    stats, failed, _, _ = run.play(**run.site_variables)
    assert (failed, stats) == ([], {"changed": 0, "failures": 0})

    wait_until(lambda: _may_list_endpointslices(api), WAIT, what="RBAC allowing cloud58:consul-sync")
    with _running(run, api) as (proc, log_path, core, discovery, namespace):
        _annotated_service(
            core, discovery, namespace, name="cart", consul_name="cart-identity", ready={"198.18.9.30": True}
        )

        def registered():
            assert proc.poll() is None, f"the sync exited ({proc.returncode}):\n{log_path.read_text()}"
            return bool(run.consul.instances("cart-identity"))

        wait_until(registered, WAIT, interval=0.2, what="cart-identity's instance in Consul")
        assert run.consul.instances("cart-identity") == {
            "cart-identity-198.18.9.30-8080": (
                "k8s-c1",
                "198.18.9.30",
                8080,
                ["cluster=c1", "datacenter=bj1"],
                "passing",
                False,
            )
        }
        assert run.token not in log_path.read_text()


def test_with_rbac_too_narrow_the_sync_is_refused_and_exits(identity):
    run, api, rbac = identity
    # the ClusterRole without its EndpointSlices rule: Services only
    narrow = consul_sync_rbac("c1")[0]
    narrow["rules"] = narrow["rules"][:1]
    rbac.replace_cluster_role("cloud58-consul-sync", narrow)
    try:
        wait_until(lambda: not _may_list_endpointslices(api), WAIT, what="RBAC refusing EndpointSlices")
        proc, log_path = _start(run, "--once")
        assert proc.wait(timeout=WAIT) == 1
        log = log_path.read_text()
        # the apiserver's status, reason and Status message, one line per attempt
        refused = (
            ': 403 Forbidden: endpointslices.discovery.k8s.io is forbidden: User "cloud58:consul-sync" '
            'cannot list resource "endpointslices" in API group "discovery.k8s.io" at the cluster scope\n'
        )
        assert log.count(refused) == 5, log  # every attempt (consul_sync_retries: 5)
        assert "HTTP response headers" not in log, log
        assert log.rstrip().endswith(
            f"{run.host}/etc/consul-sync/consul-sync.kubeconfig: cannot list Services and EndpointSlices"
        ), log
    finally:
        rbac.replace_cluster_role("cloud58-consul-sync", consul_sync_rbac("c1")[0])


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"dest": "../ca.crt"}, 'consul_sync_pki_files: "../ca.crt" is not a plain file name'),
        (
            {"src": "/nonexistent/ca.crt"},
            'consul_sync_pki_files: "ca.crt": source /nonexistent/ca.crt is not a file on the controller',
        ),
    ],
    ids=["dest-with-a-slash", "missing-source"],
)
def test_a_bad_pki_file_fails_naming_it_before_any_file(identity, tmp_path, change, message):
    run, _api, _rbac = identity
    fresh = Run(tmp_path, run.consul, run.token, run.kubeconfig)
    files = [
        dict(run.site_variables["consul_sync_pki_files"][0], **change),
        *run.site_variables["consul_sync_pki_files"][1:],
    ]
    stats, failed, _, output = fresh.play(**{**run.site_variables, "consul_sync_pki_files": files})
    assert stats == {"changed": 0, "failures": 1}
    items = roleplay.failed_items(output)
    assert (failed, items) == (["One or more items failed"], [f"{HOST}: {message}"])
    assert fresh.files() == {}
    assert run.token not in output
