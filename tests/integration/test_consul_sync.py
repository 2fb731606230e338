"""cloud58-consul-sync against a real kube-apiserver and a real Consul server (issue 15, item 3).

The program (``roles/consul_sync/files/cloud58-consul-sync``, from the source tree) runs on the
host between the apiserver of ``kube_clusters`` (context c1) and one Consul 1.14.11 server
(``cloud58_lab.programs`` resolves ``consul``, ``make setup-consul``) that this module starts
on 127.0.0.1 with free ports of its own, ACLs on with ``default_policy deny``. The test
bootstraps the ACL system, keeps the management token in memory and gives the sync a token
of a policy that may write ``k8s-`` nodes and services, in a file of mode 0600 (as the role
will). The EndpointSlices are written by the test (the apiserver runs no controllers).
Consul and the sync are stopped by PID.

The tests share the one Consul and sync and run in file order: a Service and its slice become
instances with tags and health; a not-ready endpoint goes critical; a removed endpoint is
marked, then deregistered after the grace period; a restart of the sync, watched with
blocking queries, removes nothing; a bad annotation is one log line and no registration;
a write the token may no longer make is retried with backoff 5 times, then the sync exits 1
(and, started again with the policy back, writes it); a request without token is refused;
removing the Service's annotation marks all its instances, then deregisters them.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import ssl
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
import uuid
from pathlib import Path

import pytest
from kubernetes import client, config

from cloud58_lab import programs
from cloud58_lab.consulsync import SYNC_RULES, Consul
from cloud58_lab.netlab import free_ports, logged_metrics, start_logged, wait_until

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[2]
PROGRAM = (
    REPO / "collections/ansible_collections/cloud58/platform/roles/consul_sync/files/cloud58-consul-sync"
)
CLUSTER, DATACENTER = "c1", "bj1"
GRACE_S = 3
WAIT = 120  # bounds against a hang only
TAGS = ["cluster=c1", "datacenter=bj1", "version=1.4.2"]


class Watcher:
    """Blocking queries on /v1/health/service/web: every state Consul served, in order."""

    def __init__(self, consul):
        self.consul = consul
        self.states = []
        self.stop = threading.Event()
        self.error = None
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self):
        index = 0
        try:
            while not self.stop.is_set():
                status, headers, entries = self.consul.request(
                    "GET", f"/v1/health/service/web?index={index}&wait=1s"
                )
                assert status == 200, entries
                new = int(headers["X-Consul-Index"])
                if new != index:
                    self.states.append(
                        {e["Service"]["ID"]: next(c["Status"] for c in e["Checks"]) for e in entries}
                    )
                index = new
        except Exception as e:  # reported by the test
            self.error = e

    def saw(self, predicate, what):
        """Until the last state Consul served the watcher satisfies ``predicate``: a read of the
        catalog can see a change before the watcher's blocking query has returned it."""
        wait_until(
            lambda: self.states and predicate(self.states[-1]), WAIT, what=f"the watcher seeing {what}"
        )

    def close(self):
        self.stop.set()
        self.thread.join(timeout=30)
        return self.states


class Lab:
    def __init__(self, kubeconfig, consul, workdir, namespace):
        self.consul = consul
        self.workdir = workdir
        self.namespace = namespace
        api = config.new_client_from_config(config_file=str(kubeconfig), context="c1")
        self.core = client.CoreV1Api(api)
        self.discovery = client.DiscoveryV1Api(api)
        self.token_file = workdir / "consul-sync.token"
        self.config = workdir / "consul-sync.json"
        self.config.write_text(
            json.dumps(
                {
                    "cluster": CLUSTER,
                    "datacenter": DATACENTER,
                    "kubeconfig": str(kubeconfig),
                    "context": "c1",
                    "consul_address": consul.address,
                    "ca_file": str(consul.ca_file),
                    "cert_file": str(consul.sync_cert[0]),
                    "key_file": str(consul.sync_cert[1]),
                    "token_file": str(self.token_file),
                    "grace_s": GRACE_S,
                    "metrics_port": 0,
                }
            )
        )
        self.proc = None
        self.log = None
        self.starts = 0
        self.token = ""

    def start(self):
        self.starts += 1
        self.log = self.workdir / f"sync-{self.starts}.log"
        env = dict(os.environ, PYTHONPATH=str(REPO / "collections"))
        with self.log.open("w") as log:
            self.proc = subprocess.Popen(
                [sys.executable, str(PROGRAM), "--config", str(self.config)],
                stdout=log,
                stderr=subprocess.STDOUT,
                env=env,
            )

    def stop(self):
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            self.proc.wait(timeout=30)
        self.proc = None

    def wait_for_log(self, text):
        def seen():
            if self.proc is not None and self.proc.poll() is not None:
                pytest.fail(
                    f"the sync exited ({self.proc.returncode}):\n{self.log.read_text()}", pytrace=False
                )
            return text in self.log.read_text()

        wait_until(seen, WAIT, interval=0.1, what=f"{text!r} in {self.log.name}")

    def write_slice(self, endpoints, name="web-1", service="web", discovery=None):
        body = {
            "apiVersion": "discovery.k8s.io/v1",
            "kind": "EndpointSlice",
            "metadata": {
                "name": name,
                "namespace": self.namespace,
                "labels": {
                    "kubernetes.io/service-name": service,
                    "endpointslice.kubernetes.io/managed-by": "cloud58-test",
                },
            },
            "addressType": "IPv4",
            "endpoints": endpoints,
            "ports": [
                {"name": "http", "port": 8080, "protocol": "TCP"},
                {"name": "metrics", "port": 9090, "protocol": "TCP"},
            ],
        }
        api = discovery or self.discovery
        try:
            api.replace_namespaced_endpoint_slice(name, self.namespace, body)
        except client.exceptions.ApiException as e:
            if e.status != 404:
                raise
            api.create_namespaced_endpoint_slice(self.namespace, body)

    def metrics(self):
        text = logged_metrics(self.log)
        assert text is not None, self.log.read_text()[-2000:]
        return {
            name: int(value)
            for name, value in re.findall(r'^cloud58_consul_sync_(\w+)\{cluster="c1"\} (\d+)$', text, re.M)
        }


def _ep(address, ready=True):
    return {"addresses": [address], "conditions": {"ready": ready}}


def _inst(address, status, gone=False, service="web"):
    return {f"{service}-{address}-8080": ("k8s-c1", address, 8080, TAGS, status, gone)}


@pytest.fixture(scope="module")
def lab(kube_clusters, tmp_path_factory):
    programs.require("consul")
    workdir = tmp_path_factory.mktemp("consul-sync")
    consul = Consul(workdir, DATACENTER)
    lab = None
    try:
        consul.start()

        consul.bootstrap(WAIT)
        _, token = consul.sync_token()
        namespace = f"consul-sync-{uuid.uuid4().hex[:8]}"
        lab = Lab(kube_clusters.kubeconfig, consul, workdir, namespace)
        lab.token = token
        fd = os.open(lab.token_file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as out:
            out.write(lab.token + "\n")
        lab.core.create_namespace({"metadata": {"name": namespace}})
        lab.core.create_namespaced_service(
            namespace,
            {
                "metadata": {
                    "name": "web",
                    "annotations": {"consul.cloud58.io/service": "web", "consul.cloud58.io/port": "http"},
                    "labels": {"app.kubernetes.io/version": "1.4.2"},
                },
                "spec": {
                    "ports": [
                        {"name": "http", "port": 80, "targetPort": 8080, "protocol": "TCP"},
                        {"name": "metrics", "port": 9090, "protocol": "TCP"},
                    ]
                },
            },
        )
        lab.write_slice([_ep("198.18.9.2"), _ep("198.18.9.3"), _ep("198.18.9.4", ready=False)])
        lab.start()
        yield lab
    except BaseException:
        print(f"--- consul\n{consul.log()}")
        if lab is not None and lab.log is not None:
            print(f"--- sync\n{lab.log.read_text()}")
        raise
    finally:
        if lab is not None:
            lab.stop()
            with contextlib.suppress(client.exceptions.ApiException):
                lab.core.delete_namespace(lab.namespace)
        consul.stop()


def test_a_service_and_its_slice_become_instances_with_tags_and_health(lab):
    lab.wait_for_log("catalog updated")
    assert lab.consul.instances() == {
        **_inst("198.18.9.2", "passing"),
        **_inst("198.18.9.3", "passing"),
        **_inst("198.18.9.4", "critical"),
    }
    # one transaction: the node, then a service and its check per instance
    assert "catalog updated in 1 transaction(s): 3 set, 0 marked gone, 0 deregistered; 3 instances" in (
        lab.log.read_text()
    )
    status, _, node = lab.consul.request("GET", "/v1/catalog/node/k8s-c1")
    assert (status, node["Node"]["Address"], sorted(node["Services"])) == (
        200,
        "127.0.0.1",
        ["web-198.18.9.2-8080", "web-198.18.9.3-8080", "web-198.18.9.4-8080"],
    )
    assert lab.token not in lab.log.read_text()


def test_an_endpoint_no_longer_ready_goes_critical(lab):
    lab.write_slice([_ep("198.18.9.2"), _ep("198.18.9.3", ready=False), _ep("198.18.9.4", ready=False)])
    wait_until(
        lambda: lab.consul.instances()["web-198.18.9.3-8080"][4] == "critical", WAIT, what="9.3 critical"
    )
    assert lab.consul.instances() == {
        **_inst("198.18.9.2", "passing"),
        **_inst("198.18.9.3", "critical"),
        **_inst("198.18.9.4", "critical"),
    }


def test_a_removed_endpoint_is_marked_then_deregistered_after_the_grace_period(lab):
    watcher = Watcher(lab.consul)
    lab.write_slice([_ep("198.18.9.2"), _ep("198.18.9.3", ready=False)])
    wait_until(lambda: "web-198.18.9.4-8080" not in lab.consul.instances(), WAIT, what="9.4 deregistered")
    watcher.saw(lambda state: "web-198.18.9.4-8080" not in state, "9.4 gone")
    states = watcher.close()
    assert watcher.error is None, watcher.error
    assert lab.consul.instances() == {**_inst("198.18.9.2", "passing"), **_inst("198.18.9.3", "critical")}
    text = lab.log.read_text()
    assert "1 transaction(s): 0 set, 1 marked gone, 0 deregistered; 3 instances" in text
    assert "1 transaction(s): 0 set, 0 marked gone, 1 deregistered; 2 instances" in text
    # the instance stayed (critical) between the mark and the sweep, then went at once
    with_it = [s for s in states if "web-198.18.9.4-8080" in s]
    assert with_it, states
    assert states[-1] == {"web-198.18.9.2-8080": "passing", "web-198.18.9.3-8080": "critical"}


def test_a_restart_removes_no_instance_not_even_briefly(lab):
    before = lab.consul.instances()
    watcher = Watcher(lab.consul)
    wait_until(lambda: watcher.states, WAIT, what="the watcher's first answer")
    lab.stop()
    lab.start()
    lab.wait_for_log("read 2 instance(s) of node k8s-c1")
    # after the restart the sync works: a new endpoint appears
    lab.write_slice([_ep("198.18.9.2"), _ep("198.18.9.3", ready=False), _ep("198.18.9.5")])
    wait_until(lambda: "web-198.18.9.5-8080" in lab.consul.instances(), WAIT, what="9.5 registered")
    watcher.saw(lambda state: "web-198.18.9.5-8080" in state, "9.5")
    states = watcher.close()
    assert watcher.error is None, watcher.error
    # every state Consul served during the restart still held every instance, unchanged
    assert len(states) >= 2, states
    for state in states:
        assert {k: state.get(k) for k in before} == {k: v[4] for k, v in before.items()}, states
    assert states[-1]["web-198.18.9.5-8080"] == "passing"
    # the restart itself wrote nothing: the first write is the new endpoint
    assert lab.log.read_text().count("catalog updated") == 1
    assert "catalog updated in 1 transaction(s): 1 set, 0 marked gone, 0 deregistered; 3 instances" in (
        lab.log.read_text()
    )
    assert lab.consul.instances() == {**before, **_inst("198.18.9.5", "passing")}


def test_a_bad_annotation_is_one_log_line_and_registers_nothing(lab):
    lab.core.create_namespaced_service(
        lab.namespace,
        {
            "metadata": {"name": "api", "annotations": {"consul.cloud58.io/service": "API_v1"}},
            "spec": {"ports": [{"name": "http", "port": 80, "protocol": "TCP"}]},
        },
    )
    line = (
        f"WARNING Service {lab.namespace}/api: annotation consul.cloud58.io/service: 'API_v1' is not a DNS "
        "label (a-z, 0-9, '-', at most 63); not registered"
    )
    lab.wait_for_log(line)
    text = lab.log.read_text()
    assert "Traceback" not in text
    assert [n for n in lab.consul.request("GET", "/v1/catalog/services")[2] if n != "consul"] == ["web"]
    assert lab.proc.poll() is None


def test_metrics_count_the_transactions_of_this_run(lab):
    got = lab.metrics()
    assert (got["txn_total"], got["registered_total"], got["instances"], got["problems"]) == (1, 1, 3, 1)
    assert got["txn_failures_total"] == 0
    # this run: the two reads of the node at start, then the one transaction
    assert got["requests_total"] == 3


def test_a_refused_write_is_retried_with_backoff_then_the_sync_exits_1(lab):
    consul = lab.consul
    _, _, policies = consul.request("GET", "/v1/acl/policies")
    policy = next(p for p in policies if p["Name"] == "cloud58-sync")

    def rules(text):
        status, _, body = consul.request(
            "PUT", f"/v1/acl/policy/{policy['ID']}", {"Name": "cloud58-sync", "Rules": text}
        )
        assert status == 200, body

    rules(SYNC_RULES.replace('"write"', '"read"'))
    try:
        start = time.monotonic()
        lab.write_slice(
            [_ep("198.18.9.2"), _ep("198.18.9.3", ready=False), _ep("198.18.9.5"), _ep("198.18.9.6")]
        )
        assert lab.proc.wait(timeout=WAIT) == 1
        elapsed = time.monotonic() - start
    finally:
        rules(SYNC_RULES)
    text = lab.log.read_text()
    attempts = re.findall(r"^ERROR attempt (\d) of 5: PUT /v1/txn \(2 operations\): 409: (.*)$", text, re.M)
    assert [number for number, _ in attempts] == ["1", "2", "3", "4", "5"], text
    assert all(what.startswith("op 0: Permission denied") for _, what in attempts), text
    assert (
        text.splitlines()[-1] == f"ERROR {consul.address}: the catalog could not be updated after 5 attempts"
    )
    assert elapsed >= 0.2 + 0.4 + 0.8 + 1.6  # the backoff between the five attempts
    assert "Traceback" not in text
    assert lab.token not in text
    assert "web-198.18.9.6-8080" not in consul.instances()
    # started again (systemd's part) with the policy back: the change is written
    lab.start()
    wait_until(lambda: "web-198.18.9.6-8080" in consul.instances(), WAIT, what="9.6 registered")
    assert consul.instances()["web-198.18.9.6-8080"][4] == "passing"


def test_a_request_without_a_token_is_refused(lab):
    # without a client certificate the API does not answer at all
    bare = ssl.create_default_context(cafile=str(lab.consul.ca_file))
    with pytest.raises((ssl.SSLError, ConnectionError, urllib.error.URLError)):
        urllib.request.urlopen(lab.consul.address + "/v1/status/leader", context=bare, timeout=60).read()
    status, _, body = lab.consul.request(
        "PUT",
        "/v1/catalog/register",
        {"Node": "k8s-c1", "Address": "127.0.0.1", "Service": {"ID": "evil", "Service": "web", "Port": 1}},
        token="",
    )
    assert (status, "Permission denied" in str(body)) == (403, True)
    status, _, entries = lab.consul.request("GET", "/v1/health/service/web", token="")
    assert (status, entries) == (200, [])
    status, _, body = lab.consul.request(
        "PUT",
        "/v1/txn",
        [
            {
                "Service": {
                    "Verb": "delete",
                    "Node": "k8s-c1",
                    "Service": {"ID": "web-198.18.9.2-8080", "Service": "web"},
                }
            }
        ],
        token="",
    )
    assert status == 409, body
    assert "web-198.18.9.2-8080" in lab.consul.instances()


def test_removing_the_annotation_marks_every_instance_then_deregisters_them(lab):
    before = lab.consul.instances()
    assert sorted(before) == [
        "web-198.18.9.2-8080",
        "web-198.18.9.3-8080",
        "web-198.18.9.5-8080",
        "web-198.18.9.6-8080",
    ]
    watcher = Watcher(lab.consul)
    wait_until(lambda: watcher.states, WAIT, what="the watcher's first answer")
    lab.core.patch_namespaced_service(
        "web", lab.namespace, {"metadata": {"annotations": {"consul.cloud58.io/service": None}}}
    )
    wait_until(lambda: lab.consul.instances() == {}, WAIT, what="web deregistered")
    watcher.saw(lambda state: state == {}, "web empty")
    states = watcher.close()
    assert watcher.error is None, watcher.error
    # first all four marked critical in one state, then all gone: never fewer before the sweep
    assert {name: "critical" for name in before} in states, states
    assert states[-1] == {}, states
    assert all(len(state) in (0, 4) for state in states), states
    assert "0 set, 4 marked gone, 0 deregistered; 4 instances" in lab.log.read_text()
    assert "0 set, 0 marked gone, 4 deregistered; 0 instances" in lab.log.read_text()


@contextlib.contextmanager
def _second_apiserver(cluster, workdir):
    """Another kube-apiserver of ``cluster`` on its etcd, as a second master, on a port of its
    own; yields a DiscoveryV1Api through it. Stopped by PID when the block ends."""
    (port,) = free_ports(1)
    argv = [
        f"--secure-port={port}"
        if arg.startswith("--secure-port=")
        else f"--cert-dir={workdir / 'apiserver-2'}"
        if arg.startswith("--cert-dir=")
        else arg
        for arg in cluster.processes["kube-apiserver"].argv
    ]
    tls = ssl.create_default_context(cafile=str(cluster.ca_file))
    tls.load_cert_chain(cluster.pki / "admin.crt", cluster.pki / "admin.key")

    def ready():
        assert proc.poll() is None, (workdir / "apiserver-2.log").read_text()[-3000:]
        try:
            with urllib.request.urlopen(f"https://127.0.0.1:{port}/readyz", context=tls, timeout=5) as r:
                return r.read() == b"ok"
        except OSError:
            return False

    with (workdir / "apiserver-2.log").open("wb") as log:
        proc = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        wait_until(ready, WAIT, what="the second kube-apiserver ready")
        api = config.new_client_from_config(config_file=str(cluster.kubeconfig), context=cluster.name)
        api.configuration.host = f"https://127.0.0.1:{port}"
        yield client.DiscoveryV1Api(api)
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def test_a_slice_without_endpoints_does_not_stop_the_watch(lab):
    """An EndpointSlice of a Service with no ready pod comes as ``"endpoints": null`` (the real
    controller writes it so). Debian 12's python3-kubernetes 22.6.0, which the hosts run the
    sync with, refused it in its typed Watch ("Invalid value for `endpoints`, must not be
    `None`", seen in the lab's journal); the re-watch from the same version met it again, and
    no later change arrived. The sync now reads the watch's JSON itself. Here the sync runs
    with the virtualenv's client (37.0.2), which accepts the null: this test passes with the
    old watch too and guards the new one (a slice after the empty one still arrives); the lab
    test test_consul_sync_registers_a_services_endpoint_with_identities_of_its_own is the one
    that failed with the old watch."""
    seen = len(lab.log.read_text())
    for name in ("quiet", "loud"):
        lab.core.create_namespaced_service(
            lab.namespace,
            {
                "metadata": {
                    "name": name,
                    "annotations": {"consul.cloud58.io/service": name, "consul.cloud58.io/port": "http"},
                    "labels": {"app.kubernetes.io/version": "1.4.2"},
                },
                "spec": {"ports": [{"name": "http", "port": 80, "targetPort": 8080, "protocol": "TCP"}]},
            },
        )
    lab.write_slice(None, name="quiet-1", service="quiet")
    stored = lab.discovery.read_namespaced_endpoint_slice("quiet-1", lab.namespace, _preload_content=False)
    assert json.loads(stored.data)["endpoints"] is None  # what the API serves, what the watch sends
    lab.write_slice([_ep("198.18.9.31")], name="loud-1", service="loud")
    wait_until(
        lambda: lab.consul.instances("loud") == _inst("198.18.9.31", "passing", service="loud"),
        WAIT,
        what="loud's instance, written after quiet's empty slice",
    )
    assert lab.consul.instances("quiet") == {}
    log = lab.log.read_text()[seen:]
    assert "must not be `None`" not in log, log
    assert "Traceback" not in log, log


def test_an_expired_watch_lists_again_and_consul_converges(lab, kube_clusters):
    """The apiserver answers the sync's watch 410 Gone; the sync lists both kinds again, and
    Consul ends up exactly as the cluster is, although the sync saw none of the changes.

    What answers 410 here: the sync's kube-apiserver is restarted (as one master of three is
    on an upgrade) while a second apiserver on the same etcd takes the writes. A restarted
    apiserver's watch cache begins at the revision it listed when it came up, so the sync's
    re-watch from its older resourceVersion is refused: ``410 Expired: too old resource
    version: <rv> (<oldest>)``. No etcd compaction is needed for that (tried: the apiservers'
    own lease writes alone move the revision past it, with no write of ours). With
    ``--watch-cache=false`` the watch would go to etcd, which replays the missed events
    unless they were compacted (then 410 "The resourceVersion for the provided watch is too
    old"). Missed meanwhile: one endpoint removed, one added, and a whole EndpointSlice
    deleted (a DELETED event that no re-watch could bring back, only a full list).
    """
    cp = kube_clusters["c1"]
    a, b, c, d = "198.18.9.21", "198.18.9.22", "198.18.9.23", "198.18.9.24"
    lab.core.create_namespaced_service(
        lab.namespace,
        {
            "metadata": {
                "name": "relist",
                "annotations": {"consul.cloud58.io/service": "relist", "consul.cloud58.io/port": "http"},
                "labels": {"app.kubernetes.io/version": "1.4.2"},
            },
            "spec": {"ports": [{"name": "http", "port": 80, "targetPort": 8080, "protocol": "TCP"}]},
        },
    )
    lab.write_slice([_ep(a), _ep(b)], name="relist-1", service="relist")
    lab.write_slice([_ep(d)], name="relist-2", service="relist")
    before = {k: v for x in (a, b, d) for k, v in _inst(x, "passing", service="relist").items()}
    wait_until(lambda: lab.consul.instances("relist") == before, WAIT, what="relist's three instances")
    owned = len(lab.consul.request("GET", "/v1/catalog/node/k8s-c1")[2]["Services"])
    wait_until(lambda: lab.metrics()["instances"] == owned, WAIT, what="the sync's gauge")
    metrics = lab.metrics()
    seen = len(lab.log.read_text())

    with _second_apiserver(cp, lab.workdir) as other:
        cp.stop()
        try:
            lab.write_slice([_ep(b), _ep(c)], name="relist-1", service="relist", discovery=other)
            other.delete_namespaced_endpoint_slice("relist-2", lab.namespace)
        finally:
            cp.start()

    after = {k: v for x in (b, c) for k, v in _inst(x, "passing", service="relist").items()}
    try:
        wait_until(lambda: lab.consul.instances("relist") == after, WAIT, what="relist converged")
    except TimeoutError:
        pytest.fail(
            f"Consul holds {lab.consul.instances('relist')}, not {after}; the sync logged:\n"
            f"{lab.log.read_text()[seen:]}",
            pytrace=False,
        )
    text = lab.log.read_text()[seen:]
    expired = re.findall(
        r"^WARNING watch of (services|endpointslices) failed \(410 Expired: too old resource version: "
        r"(\d+) \((\d+)\)\)$",
        text,
        re.M,
    )
    assert expired, text
    assert all(int(old) < int(oldest) for _, old, oldest in expired), expired
    relisted = re.findall(
        r"^WARNING watch of (.+) expired: listing Services and EndpointSlices again$", text, re.M
    )
    assert len(relisted) == 1, text
    assert len(re.findall(r"^INFO listed \d+ Service\(s\) and \d+ EndpointSlice\(s\)$", text, re.M)) == 1, (
        text
    )
    # the list's difference in one transaction: c set, a and d marked; then the sweep
    n = metrics["instances"]
    assert (
        f"catalog updated in 1 transaction(s): 1 set, 2 marked gone, 0 deregistered; {n + 1} instances"
        in text
    )
    assert (
        f"catalog updated in 1 transaction(s): 0 set, 0 marked gone, 2 deregistered; {n - 1} instances"
        in text
    )
    assert lab.metrics()["relists_total"] == metrics["relists_total"] + 1
    assert "Traceback" not in text
    assert lab.proc.poll() is None
    assert cp.apiserver_ready()


@pytest.mark.parametrize(
    ("change", "message"),
    [
        pytest.param(
            {"cluster": "C_1"}, "cluster: 'C_1' is not a DNS label (a-z, 0-9, '-', at most 63)", id="cluster"
        ),
        pytest.param(
            {"datacenter": "bj 1"},
            "datacenter: 'bj 1' is not a DNS label (a-z, 0-9, '-', at most 63)",
            id="dc",
        ),
        pytest.param({"grace": 3}, "unknown field(s) grace", id="unknown-field"),
        pytest.param({"max_txn_per_s": 0}, "max_txn_per_s: 0 is not a number of at least 0.01", id="rate"),
        pytest.param({"retries": 0}, "retries: 0 is not a number of at least 1", id="retries"),
        pytest.param({"debounce_ms": 2.5}, "debounce_ms: 2.5 is not a whole number", id="debounce"),
        pytest.param(
            {"consul_address": "127.0.0.1:8501"},
            "consul_address: '127.0.0.1:8501' is not an http:// or https:// URL",
            id="address",
        ),
        pytest.param({"cert_file": "/x.crt"}, "cert_file and key_file go together", id="cert-no-key"),
        pytest.param(
            {"ca_file": "/ca.crt"}, "ca_file given but consul_address is not https://", id="tls-on-http"
        ),
        pytest.param({"token_file": None}, "missing field(s) token_file", id="no-token-file"),
        pytest.param(
            {}, "token_file {token}: cannot read it: No such file or directory", id="token-file-missing"
        ),
    ],
)
def test_a_bad_configuration_is_one_line_before_anything_is_contacted(tmp_path, change, message):
    cfg = {
        "cluster": "c1",
        "datacenter": "bj1",
        "kubeconfig": str(tmp_path / "none"),
        "consul_address": "http://127.0.0.1:1",
        "token_file": str(tmp_path / "token"),
    }
    cfg.update(change)
    cfg = {k: v for k, v in cfg.items() if v is not None}
    path = tmp_path / "consul-sync.json"
    path.write_text(json.dumps(cfg))
    env = dict(os.environ, PYTHONPATH=str(REPO / "collections"))
    out = subprocess.run(
        [sys.executable, str(PROGRAM), "--config", str(path)],
        capture_output=True,
        text=True,
        env=env,
        check=False,
    )
    where = "" if "{token}" in message else f"{path}: "
    line = f"ERROR {where}{message.format(token=tmp_path / 'token')}\n"
    assert (out.returncode, out.stdout, out.stderr) == (1, "", line)


def test_refused_lists_are_counted_on_metrics_from_the_start(unbound_kubeconfig, tmp_path):
    """Before the gitops stage binds its ClusterRole the sync's lists are refused (403) and
    retried with backoff; its /metrics answers from its start and counts each failed list, so
    the refusals show beside its log. The identity is a certificate of the cluster's CA that
    no binding names; no Consul is needed before a list succeeds (the address is closed)."""
    kubeconfig = unbound_kubeconfig("c1", "cloud58:consul-sync-unbound")
    token = tmp_path / "token"
    token.write_text("not-used-before-a-list\n")
    settings = tmp_path / "consul-sync.json"
    settings.write_text(
        json.dumps(
            {
                "cluster": CLUSTER,
                "datacenter": DATACENTER,
                "kubeconfig": str(kubeconfig),
                "consul_address": f"http://127.0.0.1:{free_ports(1)[0]}",
                "token_file": str(token),
                "retries": 50,
                "metrics_port": 0,
            }
        )
    )
    log = tmp_path / "sync.log"
    env = dict(os.environ, PYTHONPATH=str(REPO / "collections"))
    proc = start_logged([sys.executable, str(PROGRAM), "--config", str(settings)], log, env)

    def failures():
        text = logged_metrics(log)
        if text is None:
            return None
        got = dict(re.findall(r'^cloud58_consul_sync_(\w+)\{cluster="c1"\} (\d+)$', text, re.M))
        return got if int(got["kube_list_failures_total"]) >= 2 else None

    try:
        got = wait_until(failures, WAIT, interval=0.2, what="two refused lists on /metrics")
        assert proc.poll() is None, log.read_text()[-2000:]
        assert {k: v for k, v in got.items() if k != "kube_list_failures_total" and v != "0"} == {}
        assert ": 403 Forbidden: services is forbidden: " in log.read_text()
    finally:
        proc.terminate()
        proc.wait(timeout=30)
