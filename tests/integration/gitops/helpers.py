"""Helpers of the GitOps integration tests: object builders and a test's clusters/ workspace.

``Workspace`` gives a test its own clusters/ root in tmp_path, a way to write cluster
directories (cluster.yml, the identity object, one object per file) and to reconcile
them with the real engine. When the test ends, everything it left labelled for the
clusters it touched is pruned (through the engine) and Terminating namespaces are
finalised (the shared clusters run no namespace controller), so the next test starts from
clusters that hold only their identity.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import yaml

from ansible_collections.cloud58.platform.plugins.module_utils.gitops.runner import run_reconcile
from ansible_collections.cloud58.platform.plugins.module_utils.kube.clusters_format import dump_yaml
from ansible_collections.cloud58.platform.plugins.module_utils.kube.objects import labels_for, selector_for
from ansible_collections.cloud58.platform.plugins.module_utils.render.file_names import file_name
from ansible_collections.cloud58.platform.plugins.module_utils.render.platform import identity_configmap

DATACENTER = "dc-test"
PRUNE_KINDS = [
    "v1/ConfigMap",
    "v1/Namespace",
    "v1/Service",
    "apps/v1/Deployment",
    "apiextensions.k8s.io/v1/CustomResourceDefinition",
]


def uid_of(cluster: str) -> str:
    return f"uid-{cluster}"


# -- object builders ----------------------------------------------------------------------
def namespace(name: str, cluster: str) -> dict:
    return {
        "apiVersion": "v1",
        "kind": "Namespace",
        "metadata": {"name": name, "labels": labels_for(cluster)},
    }


def configmap(name: str, ns: str, cluster: str, data: dict | None = None, labels: dict | None = None) -> dict:
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": name, "namespace": ns, "labels": labels_for(cluster, labels)},
        "data": dict(data or {"key": "value"}),
    }


def deployment(
    name: str, ns: str, cluster: str, replicas: int = 2, image: str = "registry.example/app:1.0"
) -> dict:
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name, "namespace": ns, "labels": labels_for(cluster)},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": name}},
            "template": {
                "metadata": {"labels": {"app": name}},
                "spec": {
                    "containers": [
                        {
                            "name": name,
                            "image": image,
                            "ports": [{"name": "http", "containerPort": 8080}],
                            # written the way people write them; the API stores 500m and 1Gi
                            "resources": {
                                "requests": {"cpu": "0.5", "memory": "1024Mi"},
                                "limits": {"cpu": 1},
                            },
                        }
                    ]
                },
            },
        },
    }


def service(name: str, ns: str, cluster: str) -> dict:
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": name, "namespace": ns, "labels": labels_for(cluster)},
        "spec": {"selector": {"app": name}, "ports": [{"name": "http", "port": 80, "targetPort": "http"}]},
    }


class Workspace:
    """A clusters/ root of one test, reconciled against the shared clusters."""

    def __init__(self, root: Path, cset) -> None:
        self.root = root
        self.cset = cset
        self.kubeconfig = str(cset.kubeconfig)
        self.touched: set[str] = set()

    def write(
        self,
        cluster: str,
        objects: list[dict],
        *,
        context: str | None = None,
        options: dict | None = None,
        identity: dict | None = None,
        with_identity_object: bool = True,
        node_annotations: dict | None = None,
    ) -> Path:
        """Replace ``root/cluster`` with cluster.yml, the identity ConfigMap and ``objects``."""
        directory = self.root / cluster
        shutil.rmtree(directory, ignore_errors=True)
        directory.mkdir(parents=True)
        spec = {
            "cluster": cluster,
            "context": context or cluster,
            "datacenter": DATACENTER,
            "identity": identity or {"uid": uid_of(cluster)},
            "options": options or {},
            "prune_kinds": PRUNE_KINDS,
        }
        if node_annotations is not None:
            spec["node_annotations"] = node_annotations
        (directory / "cluster.yml").write_text(yaml.safe_dump(spec))
        objs = list(objects)
        if with_identity_object:
            objs.append(identity_configmap(cluster, DATACENTER, uid_of(cluster)))
        for obj in objs:
            (directory / file_name(obj)).write_text(dump_yaml(obj))
        if (context or cluster) in self.cset:  # a directory may name a context no cluster has
            self.touched.add(context or cluster)
        return directory

    def reconcile(self, clusters=None, *, check: bool = False, diff: bool = False, **params) -> dict:
        params = {
            "clusters_dir": str(self.root),
            "clusters": clusters or [],
            "kubeconfig": self.kubeconfig,
            **params,
        }
        return run_reconcile(params, check_mode=check, diff=diff)

    def get(self, cluster: str, path: str) -> dict | None:
        """GET through the cluster's own admin client (not the engine); None when absent."""
        from cloud58_lab.controlplane import ControlPlaneError

        try:
            return self.cset[cluster].api("GET", path)
        except ControlPlaneError as e:
            if "HTTP 404" in str(e):
                return None
            raise

    def clean(self) -> None:
        cleanup = self.root.parent / f"{self.root.name}-cleanup"
        shutil.rmtree(cleanup, ignore_errors=True)
        helper = Workspace(cleanup, self.cset)
        for cluster in sorted(self.touched):
            helper.write(cluster, [])
        result = helper.reconcile(
            sorted(self.touched),
            prune=True,
            max_prune=100000,
            allow_prune_kinds=["Namespace", "CustomResourceDefinition", "PersistentVolume"],
        )
        problems = {name: c["error"] for name, c in result["clusters"].items() if c["status"] != "ok"}
        for cluster in sorted(self.touched):
            finalize_terminating_namespaces(self.cset[cluster])
        assert not problems, f"cleanup of the test's objects failed: {problems}"


def finalize_terminating_namespaces(cluster) -> None:
    """Finish the deletion of our namespaces: without kube-controller-manager nobody else does."""
    listed = cluster.api("GET", f"/api/v1/namespaces?labelSelector={selector_for(cluster.name)}")
    for ns in listed.get("items", []):
        if ns["metadata"].get("deletionTimestamp"):
            ns["spec"]["finalizers"] = []
            cluster.api("PUT", f"/api/v1/namespaces/{ns['metadata']['name']}/finalize", ns)
