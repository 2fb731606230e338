"""The lab path: render the lab clusters from inventories/lab and apps/, reconcile them, roll out.

The clusters get the Calico CRDs first (crds/calico/), as `make lab` does: the rendered
directories hold Calico objects, and a bare apiserver serves no Calico kinds. Their fake
(kwok) nodes carry the plan's host names, as `make lab`'s do, so cluster.yml's node
annotations are applied, and kept on the second run.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from ansible_collections.cloud58.platform.plugins.module_utils.gitops.kube import KubeClient
from cloud58_lab.calico import install_calico_crds
from cloud58_lab.lab import lab_plan
from cloud58_lab.pipeline import render_and_reconcile

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[3]
LAB = ["lab1-k8s", "lab2-k8s"]


def test_rendered_lab_clusters_are_accepted_by_real_api_servers_and_roll_out(kube_cluster_factory, tmp_path):
    plan = lab_plan(REPO / "inventories/lab")
    # The fake nodes carry the plan's host names, as the kubelets of the lab hosts would.
    cset = kube_cluster_factory(
        LAB, controllers=True, kwok_nodes={n: plan["clusters"][n]["nodes"] for n in LAB}
    )
    for name in LAB:
        install_calico_crds(cset[name])
    printed: list[str] = []
    result = render_and_reconcile(
        str(REPO),
        str(cset.kubeconfig),
        LAB,
        clusters_dir=str(tmp_path / "clusters"),
        wait_rollouts=True,
        wait_timeout=240,
        out=printed.append,
    )
    assert result["failed_clusters"] == [], "\n".join(result["summary"])
    manifests = {name: len(list((tmp_path / "clusters" / name).glob("*.yaml"))) for name in LAB}
    assert manifests == {"lab1-k8s": 42, "lab2-k8s": 41}  # lab1 has a fixed-IP reservation
    for name in LAB:
        cluster = result["clusters"][name]
        # every rendered object but the identity (bootstrapped just before) was created
        assert cluster["counts"]["created"] == manifests[name] - 1
        assert cluster["counts"]["failed"] == 0
        assert cluster["notes"] == [
            "identity bootstrapped: created ConfigMap kube-system/cloud58-identity",
            "1 rollout(s) complete",
        ]
        # every node cluster.yml names is registered and gets its AS number annotation
        wanted = yaml.safe_load((tmp_path / "clusters" / name / "cluster.yml").read_text())[
            "node_annotations"
        ]
        assert sorted(wanted) == plan["clusters"][name]["nodes"]
        assert (cluster["pending_nodes"], cluster["counts"]["nodes_annotated"]) == ([], len(wanted))
        nodes = cset[name].api("GET", "/api/v1/nodes")["items"]
        got = {
            n["metadata"]["name"]: {k: n["metadata"]["annotations"][k] for k in wanted[n["metadata"]["name"]]}
            for n in nodes
        }
        assert got == wanted
        echo = cset[name].api("GET", "/apis/apps/v1/namespaces/lab-demo/deployments/echo")
        assert echo["status"]["availableReplicas"] >= 1
        pools = cset[name].api("GET", "/apis/crd.projectcalico.org/v1/ippools")["items"]
        dc = name.removesuffix("-k8s")
        assert sorted(p["metadata"]["name"] for p in pools) == [f"{name}-{dc}-r1", f"{name}-{dc}-r2"]
    assert printed[0].startswith("render: lab1-k8s 42 objects, lab2-k8s 41 objects")
    assert printed[1].split() == [
        "cluster",
        "status",
        "created",
        "updated",
        "unchanged",
        "pruned",
        "failed",
        "requests",
        "seconds",
    ]

    again = render_and_reconcile(
        str(REPO), str(cset.kubeconfig), LAB, clusters_dir=str(tmp_path / "clusters"), out=printed.append
    )
    for name in LAB:
        assert again["clusters"][name]["counts"]["unchanged"] == manifests[name]
        assert again["clusters"][name]["counts"]["nodes_unchanged"] == len(plan["clusters"][name]["nodes"])
        assert again["clusters"][name]["changed"] is False


def dropped_fields(desired, live, path: str = "") -> list[str]:
    """Paths of ``desired`` that the server did not store in ``live`` (values may be
    normalised, e.g. 0.5 CPU stored as 500m: only presence counts). Lists of named items
    match by name, other lists by position."""
    if isinstance(desired, dict):
        if not isinstance(live, dict):
            return [path]
        out = []
        for key, value in desired.items():
            where = f"{path}.{key}" if path else key
            out += dropped_fields(value, live[key], where) if key in live else [where]
        return out
    if isinstance(desired, list):
        if not isinstance(live, list):
            return [path]
        if all(isinstance(item, dict) and "name" in item for item in desired):
            named = {item.get("name"): item for item in live if isinstance(item, dict)}
            pairs = [(f"{path}[{item['name']}]", item, named.get(item["name"])) for item in desired]
        else:
            pairs = [
                (f"{path}[{i}]", item, live[i] if i < len(live) else None) for i, item in enumerate(desired)
            ]
        out = []
        for where, item, found in pairs:
            out += [where] if found is None else dropped_fields(item, found, where)
        return out
    return []


def test_every_rendered_field_is_stored_so_anyone_may_apply_the_objects_server_side(
    kube_cluster_factory, tmp_path
):
    """A field the server drops (a zero value it does not store) stays owned by cloud58's
    field manager although the object lacks it: anyone else's `kubectl apply --server-side`
    of the same manifest then conflicts. So every rendered field must come back from the
    server (PriorityClass globalDefault: false did not)."""
    cset = kube_cluster_factory(["lab1-k8s"])
    cluster = cset["lab1-k8s"]
    install_calico_crds(cluster)
    clusters_dir = tmp_path / "clusters"
    result = render_and_reconcile(
        str(REPO), str(cset.kubeconfig), ["lab1-k8s"], clusters_dir=str(clusters_dir), out=lambda _line: None
    )
    assert result["failed_clusters"] == [], "\n".join(result["summary"])
    files = sorted((clusters_dir / "lab1-k8s").glob("*.yaml"))
    client = KubeClient("lab1-k8s", str(cset.kubeconfig))
    kinds, dropped = set(), {}
    for path in files:
        desired = yaml.safe_load(path.read_text())
        kinds.add(desired["kind"])
        meta = desired["metadata"]
        res = client.resource(desired["apiVersion"], desired["kind"])
        missing = dropped_fields(desired, client.get(res, meta.get("namespace", ""), meta["name"]))
        if missing:
            dropped[path.name] = missing
    client.close()
    assert dropped == {}
    assert len(files) == 42  # as test_rendered_lab_clusters_... renders them
    assert {"PriorityClass", "Deployment", "ClusterRole", "IPPool"} <= kinds
    applied = cluster.kubectl(
        "apply",
        "--server-side",
        "--field-manager=another-team",
        *[a for p in files for a in ("-f", str(p))],
        check=False,
    )
    assert applied.returncode == 0, applied.stderr
    assert "conflict" not in applied.stderr.lower()
