"""The control planes of cloud58_lab.controlplane behave like independent real clusters."""

from __future__ import annotations

import ipaddress
import json
import os
import re
import time
import uuid
from collections.abc import Callable
from pathlib import Path

import pytest
from kubernetes import client as k8s
from kubernetes import config as k8s_config

from cloud58_lab.controlplane import (
    PROGRAMS,
    ClusterNetwork,
    ClusterSet,
    ControlPlaneError,
    check_bin_dir,
    start_clusters,
)

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[2]
WAIT = 120.0  # bound of every wait for an eventual state; failing it names what was awaited


def _pinned_kubernetes() -> str:
    text = (REPO / "upstream/go.mod").read_text()
    return re.search(r"^\s*k8s\.io/kubernetes (v\S+)", text, re.MULTILINE).group(1)


def _eventually(check: Callable[[], object], what: str) -> object:
    """Poll ``check`` until it returns a true value; fail naming ``what`` and the last value."""
    deadline = time.monotonic() + WAIT
    while True:
        last = check()
        if last:
            return last
        if time.monotonic() > deadline:
            pytest.fail(f"after {WAIT:.0f}s still not {what}; last observation: {last!r}")
        time.sleep(0.3)


def _core(cset: ClusterSet, name: str) -> k8s.CoreV1Api:
    return k8s.CoreV1Api(k8s_config.new_client_from_config(config_file=str(cset.kubeconfig), context=name))


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


# ---- three plain control planes (session fixture) ----------------------------------------


def test_kubeconfig_has_one_context_per_cluster(kube_clusters):
    out = kube_clusters["c1"].kubectl("config", "get-contexts", "-o", "name").stdout.split()
    assert sorted(out) == ["c1", "c2", "c3"]
    servers = {name: kube_clusters[name].server for name in kube_clusters}
    assert len(set(servers.values())) == 3
    assert all(re.fullmatch(r"https://127\.0\.0\.1:\d+", s) for s in servers.values()), servers


@pytest.mark.parametrize("name", ["c1", "c2", "c3"])
def test_every_context_reports_the_pinned_version(kube_clusters, name):
    pinned = _pinned_kubernetes()
    version = json.loads(kube_clusters[name].kubectl("version", "-o", "json").stdout)
    assert version["clientVersion"]["gitVersion"] == pinned
    assert version["serverVersion"]["gitVersion"] == pinned
    major, minor = pinned[1:].split(".")[:2]
    assert (version["serverVersion"]["major"], version["serverVersion"]["minor"]) == (major, minor)


@pytest.mark.parametrize(
    ("name", "service_ip"), [("c1", "198.19.0.1"), ("c2", "198.19.1.1"), ("c3", "198.19.2.1")]
)
def test_each_cluster_allocates_from_its_own_service_cidr(kube_clusters, name, service_ip):
    svc = _core(kube_clusters, name).read_namespaced_service("kubernetes", "default")
    assert svc.spec.cluster_ip == service_ip
    assert ipaddress.ip_address(service_ip) in kube_clusters[name].network.service_cidr


def test_namespace_created_in_c1_exists_only_in_c1(kube_clusters):
    ns = f"only-c1-{uuid.uuid4().hex[:8]}"
    c1 = kube_clusters["c1"]
    c1.kubectl("create", "namespace", ns)
    try:
        assert c1.kubectl("get", "namespace", ns, "-o", "name").stdout.strip() == f"namespace/{ns}"
        for other in ("c2", "c3"):
            result = kube_clusters[other].kubectl("get", "namespace", ns, check=False)
            assert result.returncode == 1
            assert f'namespaces "{ns}" not found' in result.stderr
    finally:
        c1.kubectl("delete", "namespace", ns, "--wait=false")


def test_stopped_apiserver_fails_alone_and_returns_with_its_data(kube_clusters):
    c2 = kube_clusters["c2"]
    name = f"survives-{uuid.uuid4().hex[:8]}"
    c2.kubectl("create", "configmap", name, "-n", "default", "--from-literal=color=teal")
    pids_before = c2.pids()
    try:
        c2.stop()
        assert "kube-apiserver" not in c2.pids()
        assert c2.pids()["etcd"] == pids_before["etcd"]
        down = c2.kubectl("get", "configmap", name, "-n", "default", check=False)
        assert down.returncode == 1
        assert down.stderr.splitlines()[-1] == (
            f"The connection to the server {c2.server.removeprefix('https://')} was refused"
            " - did you specify the right host or port?"
        )
        for other in ("c1", "c3"):
            up = kube_clusters[other].kubectl("get", "namespace", "default", "-o", "name")
            assert up.stdout.strip() == "namespace/default"
    finally:
        c2.start()
    assert c2.pids()["kube-apiserver"] != pids_before["kube-apiserver"]
    data = json.loads(c2.kubectl("get", "configmap", name, "-n", "default", "-o", "json").stdout)["data"]
    assert data == {"color": "teal"}
    c2.kubectl("delete", "configmap", name, "-n", "default")


def test_state_file_lets_another_process_find_the_same_pids(kube_clusters):
    attached = ClusterSet.load(kube_clusters.workdir)
    assert attached.pids() == kube_clusters.pids()
    assert {c: set(p) for c, p in attached.pids().items()} == {
        c: {"etcd", "kube-apiserver"} for c in ("c1", "c2", "c3")
    }
    assert attached["c3"].server == kube_clusters["c3"].server


# ---- argument checks (no processes) -------------------------------------------------------


def test_start_refuses_a_workdir_that_is_not_empty(upstream_bin_dir, tmp_path):
    (tmp_path / "something").write_text("x")
    with pytest.raises(ControlPlaneError, match="is not empty"):
        start_clusters(["x1"], tmp_path, upstream_bin_dir)


def test_missing_programs_are_named(tmp_path):
    (tmp_path / "etcd").write_text("#!/bin/sh\n")
    (tmp_path / "etcd").chmod(0o755)
    (tmp_path / "kwok").write_text("not executable")
    with pytest.raises(ControlPlaneError) as err:
        check_bin_dir(tmp_path)
    missing = [p for p in PROGRAMS if p != "etcd"]
    assert f"{tmp_path} lacks {', '.join(missing)};" in str(err.value)
    assert "make setup-upstream" in str(err.value)


@pytest.mark.parametrize(
    ("network", "message"),
    [
        (
            ClusterNetwork(
                ipaddress.IPv4Network("10.96.0.0/24"),
                ipaddress.IPv4Network("198.18.0.0/20"),
                ipaddress.IPv4Network("198.19.128.0/24"),
            ),
            "service_cidr 10.96.0.0/24 is outside 198.18.0.0/15",
        ),
        (
            ClusterNetwork(
                ipaddress.IPv4Network("198.19.0.0/24"),
                ipaddress.IPv4Network("198.18.0.0/24"),
                ipaddress.IPv4Network("198.19.128.0/24"),
            ),
            "pod_cidr 198.18.0.0/24 must be /23 or larger",
        ),
        (
            ClusterNetwork(
                ipaddress.IPv4Network("198.18.0.0/24"),
                ipaddress.IPv4Network("198.18.0.0/20"),
                ipaddress.IPv4Network("198.19.128.0/24"),
            ),
            "198.18.0.0/24 overlaps 198.18.0.0/20",
        ),
    ],
    ids=["outside-lab-range", "pod-cidr-too-small", "overlap"],
)
def test_bad_networks_are_refused_before_anything_starts(upstream_bin_dir, tmp_path, network, message):
    with pytest.raises(ControlPlaneError, match=re.escape(f"cluster 'x1': {message}")):
        start_clusters(["x1"], tmp_path / "w", upstream_bin_dir, networks={"x1": network})
    assert not (tmp_path / "w").exists()


# ---- controllers and kwok -----------------------------------------------------------------


def _running_pods(core: k8s.CoreV1Api, namespace: str) -> list[k8s.V1Pod] | None:
    pods = core.list_namespaced_pod(namespace, label_selector="app=web").items
    running = [p for p in pods if p.status.phase == "Running" and p.status.pod_ip]
    return running if len(running) == 2 else None


def test_deployment_gets_running_pods_with_addresses_from_the_cluster_pod_cidr(kube_cluster_factory):
    cset = kube_cluster_factory(["k1", "k2"], controllers=True, kwok_nodes=2)
    deployment = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "web", "namespace": "default"},
        "spec": {
            "replicas": 2,
            "selector": {"matchLabels": {"app": "web"}},
            "template": {
                "metadata": {"labels": {"app": "web"}},
                "spec": {"containers": [{"name": "web", "image": "registry.invalid/web:1"}]},
            },
        },
    }
    for name in cset:
        cset[name].kubectl("apply", "-f", "-", stdin=json.dumps(deployment))
    for name in cset:
        cluster, core = cset[name], _core(cset, name)
        nodes = {n.metadata.name: n for n in core.list_node().items}
        assert sorted(nodes) == [f"{name}-kwok-0", f"{name}-kwok-1"]
        pods = _eventually(
            lambda core=core: _running_pods(core, "default"), f"2 Running pods of web in {name}"
        )
        for pod in pods:
            node = nodes[pod.spec.node_name]
            ip = ipaddress.ip_address(pod.status.pod_ip)
            assert ip in cluster.network.pod_cidr
            assert ip in ipaddress.ip_network(node.spec.pod_cidr)
            node_ip = [a.address for a in node.status.addresses if a.type == "InternalIP"]
            assert [pod.status.host_ip] == node_ip
            assert ipaddress.ip_address(pod.status.host_ip) in cluster.network.node_cidr
        assert len({p.status.pod_ip for p in pods}) == 2
        ready = core.read_namespaced_pod_status(pods[0].metadata.name, "default").status.container_statuses
        assert [(s.name, s.ready, s.state.running is not None) for s in ready] == [("web", True, True)]


def test_close_ends_every_process_and_removes_the_workdir(upstream_bin_dir, tmp_path):
    workdir = tmp_path / "set"
    cset = start_clusters(["t1"], workdir, upstream_bin_dir, controllers=True, kwok_nodes=1)
    pids = cset.pids()["t1"]
    assert set(pids) == {"etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler", "kwok"}
    assert all(_alive(pid) for pid in pids.values())
    cset.close()
    assert {c: pid for c, pid in pids.items() if _alive(pid)} == {}
    assert not workdir.exists()
