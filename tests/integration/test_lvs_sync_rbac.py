"""The identity of cloud58-lvs-sync, as rendered into clusters/, against a real kube-apiserver.

The ClusterRole and ClusterRoleBinding of ``clusters/lab1-k8s/`` (``make render``) are created
in cluster ``c2`` of ``kube_clusters``; a client certificate of that cluster's CA with the CN
``cloud58:lvs-sync`` (what the cluster PKI issues as ``lvs-sync.crt``, the pair site.yml's lvs
stage copies to the directors) is the sync's credential. With it the calls the sync makes
(list and watch Services and EndpointSlices in every namespace) succeed, a watch sees an
EndpointSlice the test creates, and every write, and every read of another resource, is
refused (403). The objects are removed after. Without a binding, the program's lists are
refused and its /metrics counts them.
"""

from __future__ import annotations

import json
import os
import uuid
from pathlib import Path

import pytest
import yaml
from kubernetes import client, config, watch

from ansible_collections.cloud58.platform.plugins.module_utils.controlplane.pki_plan import (
    LVS_SYNC_CERT,
    LVS_SYNC_USER,
)
from ansible_collections.cloud58.platform.plugins.module_utils.topology import build_plan, load_inventory
from cloud58_lab.netlab import logged_metrics, start_logged, stop_process, wait_until
from cloud58_lab.pki import CertificateAuthority

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[2]
RENDERED = REPO / "clusters/lab1-k8s"
PROGRAM = REPO / "collections/ansible_collections/cloud58/platform/roles/lvs_director/files/cloud58-lvs-sync"
NAME = "cloud58-lvs-sync"
FILES = [
    "22_clusterrole_cloud58-lvs-sync.yaml",
    "23_clusterrolebinding_cloud58-lvs-sync.yaml",
]


def _slice(name):
    return {
        "apiVersion": "discovery.k8s.io/v1",
        "kind": "EndpointSlice",
        "metadata": {"name": name, "labels": {"kubernetes.io/service-name": "web"}},
        "addressType": "IPv4",
        "endpoints": [{"addresses": ["198.18.9.2"], "conditions": {"ready": True}}],
        "ports": [{"name": "http", "port": 8080, "protocol": "TCP"}],
    }


def _ignore(status, call):
    try:
        call()
    except client.exceptions.ApiException as e:
        if e.status != status:
            raise


class Clients:
    def __init__(self, admin, sync, namespace):
        self.admin, self.sync, self.namespace = admin, sync, namespace
        self.core = client.CoreV1Api(sync)
        self.discovery = client.DiscoveryV1Api(sync)


@pytest.fixture(scope="module")
def clients(kube_clusters, tmp_path_factory):
    admin = config.new_client_from_config(config_file=str(kube_clusters.kubeconfig), context="c2")
    core, rbac = client.CoreV1Api(admin), client.RbacAuthorizationV1Api(admin)
    namespace = f"lvs-rbac-{uuid.uuid4().hex[:8]}"
    objects = {f: yaml.safe_load((RENDERED / f).read_text()) for f in FILES}
    # the sync's client pair from the cluster's CA, as the cluster PKI issues it
    cert_file, key_file = (
        CertificateAuthority.load(kube_clusters["c2"].pki)
        .issue(LVS_SYNC_USER, client=True)
        .write(tmp_path_factory.mktemp("lvs-sync-pki"), LVS_SYNC_CERT)
    )
    sync = None
    try:
        core.create_namespace({"metadata": {"name": namespace}})
        core.create_namespaced_service(
            namespace, {"metadata": {"name": "web"}, "spec": {"ports": [{"name": "http", "port": 80}]}}
        )
        rbac.create_cluster_role(objects[FILES[0]])
        rbac.create_cluster_role_binding(objects[FILES[1]])
        settings = client.Configuration()
        settings.host = admin.configuration.host
        settings.ssl_ca_cert = admin.configuration.ssl_ca_cert
        settings.cert_file, settings.key_file = str(cert_file), str(key_file)
        sync = client.ApiClient(settings)
        yield Clients(admin, sync, namespace)
    finally:
        if sync is not None:
            sync.close()
        _ignore(404, lambda: rbac.delete_cluster_role_binding(NAME))
        _ignore(404, lambda: rbac.delete_cluster_role(NAME))
        _ignore(404, lambda: core.delete_namespace(namespace))
        admin.close()


def test_the_identity_lists_services_and_endpointslices_everywhere(clients):
    services = clients.core.list_service_for_all_namespaces()
    assert (clients.namespace, "web") in {(s.metadata.namespace, s.metadata.name) for s in services.items}
    assert clients.discovery.list_endpoint_slice_for_all_namespaces().items is not None
    assert clients.core.read_namespaced_service("web", clients.namespace).metadata.name == "web"


def test_the_identity_watches_endpointslices(clients):
    version = clients.discovery.list_endpoint_slice_for_all_namespaces().metadata.resource_version
    admin = client.DiscoveryV1Api(clients.admin)
    admin.create_namespaced_endpoint_slice(clients.namespace, _slice("web-1"))
    stream = watch.Watch()
    seen = None
    # timeout_seconds bounds a hang; the event is already there when the watch starts
    for event in stream.stream(
        clients.discovery.list_endpoint_slice_for_all_namespaces, resource_version=version, timeout_seconds=30
    ):
        meta = event["raw_object"]["metadata"]
        if meta["namespace"] == clients.namespace:
            seen = (event["type"], meta["name"])
            stream.stop()
    assert seen == ("ADDED", "web-1")


USER = f'User "{LVS_SYNC_USER}"'
REFUSED = [
    pytest.param(
        lambda c, ns: c.discovery.create_namespaced_endpoint_slice(ns, _slice("web-2")),
        f"endpointslices.discovery.k8s.io is forbidden: {USER} cannot create resource "
        '"endpointslices" in API group "discovery.k8s.io" in the namespace "{ns}"',
        id="create-slice",
    ),
    pytest.param(
        lambda c, ns: c.discovery.delete_namespaced_endpoint_slice("web-1", ns),
        f'endpointslices.discovery.k8s.io "web-1" is forbidden: {USER} cannot delete resource '
        '"endpointslices" in API group "discovery.k8s.io" in the namespace "{ns}"',
        id="delete-slice",
    ),
    pytest.param(
        lambda c, ns: c.core.patch_namespaced_service("web", ns, {"metadata": {"labels": {"x": "y"}}}),
        f'services "web" is forbidden: {USER} cannot patch resource "services" in API group "" in the '
        'namespace "{ns}"',
        id="patch-service",
    ),
    pytest.param(
        lambda c, ns: c.core.delete_namespaced_service("web", ns),
        f'services "web" is forbidden: {USER} cannot delete resource "services" in API group "" in the '
        'namespace "{ns}"',
        id="delete-service",
    ),
    pytest.param(
        lambda c, ns: c.core.list_pod_for_all_namespaces(),
        f'pods is forbidden: {USER} cannot list resource "pods" in API group "" at the cluster scope',
        id="list-pods",
    ),
    pytest.param(
        lambda c, ns: c.core.list_namespaced_secret(ns),
        f'secrets is forbidden: {USER} cannot list resource "secrets" in API group "" in the namespace '
        '"{ns}"',
        id="list-secrets",
    ),
    pytest.param(
        lambda c, ns: c.core.list_namespaced_endpoints(ns),
        f'endpoints is forbidden: {USER} cannot list resource "endpoints" in API group "" in the namespace '
        '"{ns}"',
        id="list-endpoints",
    ),
]


@pytest.mark.parametrize(("call", "message"), REFUSED)
def test_the_identity_is_refused_anything_else(clients, call, message):
    with pytest.raises(client.exceptions.ApiException) as info:
        call(clients, clients.namespace)
    assert (info.value.status, json.loads(info.value.body)["message"]) == (
        403,
        message.replace("{ns}", clients.namespace),
    )


def test_a_refused_list_is_counted_on_the_syncs_metrics_while_it_retries(unbound_kubeconfig, tmp_path):
    """Before the gitops stage binds its ClusterRole, the sync's lists are refused (403) and it
    retries with backoff (docs/lvs.md). Its /metrics answers from its start and counts each
    refusal by call and status, so the refusals show beside the journal. The identity here is a
    certificate of the cluster's CA that no binding names; ``nft`` is ``false``: nothing gets as
    far as the data plane."""
    kubeconfig = unbound_kubeconfig("c2", "cloud58:lvs-sync-unbound")
    plan = build_plan(load_inventory(str(REPO / "inventories/lab"))).as_dict()
    settings = tmp_path / "lvs-sync.json"
    settings.write_text(
        json.dumps(
            {
                "director": "lab1-lvs1",
                "lvs": plan["datacenters"]["lab1"]["lvs"],
                "kubeconfig": str(kubeconfig),
                "nft": ["false"],
                "retries": 50,
                "metrics_port": 0,
            }
        )
    )
    log = tmp_path / "sync.log"
    env = dict(os.environ, PYTHONPATH=str(REPO / "collections"))
    # As the unit runs it: Debian's python3 and its python3-kubernetes (make setup).
    proc = start_logged(["/usr/bin/python3", str(PROGRAM), "--config", str(settings)], log, env)
    series = 'cloud58_lvs_sync_api_errors_total{director="lab1-lvs1",call="list",status="403"} '

    def refusals():
        text = logged_metrics(log)
        if text is None:
            return None
        lines = [line for line in text.splitlines() if not line.startswith("#")]
        return (
            lines
            if len(lines) == 1 and lines[0].startswith(series) and int(lines[0].split()[-1]) >= 2
            else None
        )

    try:
        lines = wait_until(refusals, 60, interval=0.2, what="two refused lists on /metrics")
        # the one series: the lists' 403s, no other failure
        assert [line.rsplit(" ", 1)[0] for line in lines] == [series.rstrip()]
        assert proc.poll() is None, log.read_text()[-2000:]
        assert "list attempt 1 of 50 through" in log.read_text()
    finally:
        problems = stop_process(proc, timeout=10)
    assert problems == []
