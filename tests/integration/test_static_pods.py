"""Every static pod manifest the control plane roles write is a valid Pod for a real
kube-apiserver (server-side dry run, strict field validation).

The manifests are rendered for every host that runs a control plane component in every
inventory (lab: events etcd on the masters; bj1/sh1: events etcd on their own hosts),
then dumped with the same YAML writer the static_pods module uses and read back, so what
is validated is byte for byte what lands in /etc/kubernetes/manifests. Negative cases
prove the validation has teeth. A dry run stores nothing: the shared apiserver is left
as it was.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest
import yaml

from ansible_collections.cloud58.platform.plugins.module_utils.controlplane.configs import identity_object
from ansible_collections.cloud58.platform.plugins.module_utils.controlplane.manifests import (
    host_components,
    host_manifests,
)
from ansible_collections.cloud58.platform.plugins.module_utils.controlplane.settings import settings_from
from ansible_collections.cloud58.platform.plugins.module_utils.controlplane.yamlout import dump
from ansible_collections.cloud58.platform.plugins.module_utils.topology import build_plan, load_inventory
from cloud58_lab.controlplane import ControlPlaneError

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[2]
INVENTORIES = ("lab", "bj1", "sh1")
CONTEXT = "c2"
DRY_RUN = "dryRun=All&fieldValidation=Strict"
# Settings that exercise every optional branch of the manifests.
TUNED = {
    "image_registry": "localhost/cloud58",
    "eviction": {
        "node_eviction_rate": 0.5,
        "secondary_node_eviction_rate": 0.05,
        "large_cluster_size_threshold": 20,
    },
    "apiserver_extra_args": {"max-requests-inflight": 800},
    "controller_manager_extra_args": {"concurrent-deployment-syncs": 10},
    "scheduler_extra_args": {"v": 2},
    "etcd_extra_args": {"heartbeat-interval": 250, "election-timeout": 2500},
}


def _rendered():
    """(id, host, Pod) for every manifest of every control plane host of every inventory."""
    out = []
    for inventory in INVENTORIES:
        plan = build_plan(load_inventory(str(REPO / "inventories" / inventory))).as_dict()
        for label, raw in (("default", {}), ("tuned", TUNED)):
            settings = settings_from(raw)
            for cluster in plan["clusters"].values():
                hosts = sorted({*cluster["masters"], *(m["name"] for m in cluster["etcd_events"]["members"])})
                for host in hosts:
                    digests = {c: f"digest-of-{c}" for c in host_components(cluster, host)}
                    for file, pod in sorted(host_manifests(cluster, host, settings, digests=digests).items()):
                        out.append((f"{inventory}-{label}-{host}-{file}", host, yaml.safe_load(dump(pod))))
    return out


RENDERED = _rendered()


def _lost(sent, kept, path="spec"):
    """Paths of values we sent that the apiserver did not keep as sent (its defaults may add more)."""
    if isinstance(sent, dict) and isinstance(kept, dict):
        return [p for k in sent for p in _lost(sent[k], kept.get(k), f"{path}.{k}")]
    if isinstance(sent, list) and isinstance(kept, list) and len(sent) == len(kept):
        return [
            p for i, (a, b) in enumerate(zip(sent, kept, strict=True)) for p in _lost(a, b, f"{path}[{i}]")
        ]
    return [] if sent == kept else [path]


def _mirror(pod, host):
    """The Pod a kubelet posts for a static pod (its mirror pod): named after the node,
    bound to it, marked with the mirror annotations (no service account is involved)."""
    mirror = copy.deepcopy(pod)
    mirror["metadata"]["name"] = f"{pod['metadata']['name']}-{host}"
    mirror["metadata"].setdefault("annotations", {}).update(
        {
            "kubernetes.io/config.mirror": "0123456789abcdef",
            "kubernetes.io/config.hash": "0123456789abcdef",
            "kubernetes.io/config.source": "file",
        }
    )
    mirror["spec"]["nodeName"] = host
    return mirror


def _dry_run_create(cluster, pod, host="lab1-m1"):
    return cluster.api("POST", f"/api/v1/namespaces/kube-system/pods?{DRY_RUN}", _mirror(pod, host))


def test_every_inventory_renders_the_expected_manifests():
    # lab: 2 clusters x 3 masters x 5 pods; bj1/sh1: 3 masters x 4 pods + 3 events hosts x 1.
    counts = {
        inv: sum(1 for pid, _, _ in RENDERED if pid.startswith(f"{inv}-default-")) for inv in INVENTORIES
    }
    assert counts == {"lab": 30, "bj1": 15, "sh1": 15}
    assert len({pid for pid, _, _ in RENDERED}) == len(RENDERED)


@pytest.mark.parametrize(("host", "pod"), [r[1:] for r in RENDERED], ids=[r[0] for r in RENDERED])
def test_static_pod_manifest_is_a_valid_pod(kube_clusters, host, pod):
    created = _dry_run_create(kube_clusters[CONTEXT], pod, host)
    assert created["kind"] == "Pod"
    assert created["metadata"]["name"] == f"{pod['metadata']['name']}-{host}"
    assert created["spec"]["nodeName"] == host
    assert created["metadata"]["labels"] == pod["metadata"]["labels"]
    # The apiserver kept every container field we sent (strict validation drops nothing).
    assert _lost(pod["spec"], created["spec"]) == []
    # Priority admission resolved the class: static pods outrank every workload.
    assert created["spec"]["priority"] == 2000001000


@pytest.mark.parametrize(
    ("mutation", "message"),
    [
        (lambda p: p["spec"]["containers"][0].update(livenessProbe={"httpGet": {"path": "/livez"}}), "port"),
        (lambda p: p["spec"]["containers"][0].update(imagePullPolicy="Sometimes"), "imagePullPolicy"),
        (lambda p: p["spec"]["volumes"][0]["hostPath"].update(type="Folder"), "type"),
        (lambda p: p["spec"]["containers"][0].update(comand=["etcd"]), "comand"),
        (lambda p: p["spec"].update(priorityClassName="cloud58-no-such-class"), "cloud58-no-such-class"),
    ],
    ids=[
        "probe-without-port",
        "bad-pull-policy",
        "bad-hostpath-type",
        "misspelt-field",
        "unknown-priority-class",
    ],
)
def test_broken_manifest_is_rejected(kube_clusters, mutation, message):
    pod = copy.deepcopy(RENDERED[0][2])
    mutation(pod)
    with pytest.raises(ControlPlaneError) as err:
        _dry_run_create(kube_clusters[CONTEXT], pod)
    assert message in str(err.value)


def test_identity_object_is_a_valid_configmap(kube_clusters):
    obj = yaml.safe_load(dump(identity_object("lab1-k8s", "lab1")))
    # the session clusters are shared: another test may have made the real identity object,
    # so the dry-run create validates the same object under a name of this test's own
    obj["metadata"]["name"] = "cloud58-identity-shape-check"
    created = kube_clusters[CONTEXT].api("POST", f"/api/v1/namespaces/kube-system/configmaps?{DRY_RUN}", obj)
    assert created["data"] == obj["data"]
    assert json.loads(json.dumps(created["metadata"]["labels"])) == obj["metadata"]["labels"]
