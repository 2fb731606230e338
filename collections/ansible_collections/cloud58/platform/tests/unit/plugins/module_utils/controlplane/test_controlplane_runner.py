"""The static_pods runner on a directory: writes only what differs, check mode writes
nothing, a PKI change restarts exactly the pods that read the changed file."""

from __future__ import annotations

import os
import stat

import pytest
import yaml

from ansible_collections.cloud58.platform.plugins.module_utils.controlplane.errors import ControlPlaneError
from ansible_collections.cloud58.platform.plugins.module_utils.controlplane.runner import (
    pki_digest,
    run_static_pods,
)


@pytest.fixture
def params(lab_plan, tmp_path):
    cfg = tmp_path / "etc/kubernetes"
    (cfg / "pki/etcd").mkdir(parents=True)
    for rel in ("ca.crt", "etcd/ca.crt", "etcd/server.crt", "scheduler.crt"):
        (cfg / "pki" / rel).write_text(f"pem of {rel}\n")
    return {
        "cluster": lab_plan["clusters"]["lab1-k8s"],
        "host": "lab1-m1",
        "settings": {"config_dir": str(cfg), "image_registry": "localhost/cloud58"},
    }


def _changed(result):
    return sorted(os.path.relpath(f["path"], "/") for f in result["files"] if f["changed"])


def _names(result, root):
    return sorted(os.path.relpath(f["path"], root) for f in result["files"] if f["changed"])


def test_first_run_writes_everything_second_run_nothing(params):
    cfg = params["settings"]["config_dir"]
    first = run_static_pods(params)
    assert first["changed"] is True
    assert _names(first, cfg) == [
        "admin.conf",
        "audit-policy.yaml",
        "controller-manager.conf",
        "manifests/etcd-events.yaml",
        "manifests/etcd.yaml",
        "manifests/kube-apiserver.yaml",
        "manifests/kube-controller-manager.yaml",
        "manifests/kube-scheduler.yaml",
        "scheduler.conf",
    ]
    for f in first["files"]:
        assert stat.S_IMODE(os.stat(f["path"]).st_mode) == 0o600
    assert first["running"] == {}
    assert first["restart"] == [
        "etcd",
        "etcd-events",
        "kube-apiserver",
        "kube-controller-manager",
        "kube-scheduler",
    ]
    second = run_static_pods(params)
    assert second["changed"] is False
    assert second["restart"] == []
    assert _names(second, cfg) == []
    assert second["running"] == {
        "etcd": "v3.6.8",
        "etcd-events": "v3.6.8",
        "kube-apiserver": "v1.36.3",
        "kube-controller-manager": "v1.36.3",
        "kube-scheduler": "v1.36.3",
    }
    with open(os.path.join(cfg, "manifests/etcd.yaml")) as f:
        pod = yaml.safe_load(f)
    # podman kube play refuses annotation values over 63 characters.
    assert len(pod["metadata"]["annotations"]["cloud58.io/pki-digest"]) == 32
    assert pod["metadata"]["annotations"]["cloud58.io/pki-digest"] == pki_digest(
        os.path.join(cfg, "pki"),
        ["etcd/ca.crt", "etcd/server.crt", "etcd/server.key", "etcd/peer.crt", "etcd/peer.key"],
    )


def test_check_mode_reports_and_writes_nothing(params):
    cfg = params["settings"]["config_dir"]
    result = run_static_pods(params, check_mode=True, diff_mode=True)
    assert result["changed"] is True
    assert len(_names(result, cfg)) == 9
    assert not os.path.exists(os.path.join(cfg, "manifests"))
    assert [d["before"] for d in result["diff"]] == [""] * 9
    assert result["diff"][0]["after_header"] == os.path.join(cfg, "admin.conf")


def test_a_new_version_changes_only_the_manifests(params):
    cfg = params["settings"]["config_dir"]
    run_static_pods(params)
    params["settings"]["version"] = "v1.36.4"
    result = run_static_pods(params, diff_mode=True)
    assert _names(result, cfg) == [
        "manifests/kube-apiserver.yaml",
        "manifests/kube-controller-manager.yaml",
        "manifests/kube-scheduler.yaml",
    ]
    assert result["running"]["kube-apiserver"] == "v1.36.3"
    assert result["restart"] == ["kube-apiserver", "kube-controller-manager", "kube-scheduler"]
    assert "kube-apiserver:v1.36.4" in result["diff"][0]["after"]
    assert run_static_pods(params)["running"]["kube-apiserver"] == "v1.36.4"


def test_a_renewed_certificate_restarts_the_pods_that_read_it(params):
    cfg = params["settings"]["config_dir"]
    run_static_pods(params)
    with open(os.path.join(cfg, "pki/etcd/server.crt"), "w") as f:
        f.write("renewed pem\n")
    assert _names(run_static_pods(params), cfg) == ["manifests/etcd.yaml"]
    with open(os.path.join(cfg, "pki/ca.crt"), "w") as f:
        f.write("renewed ca\n")
    assert _names(run_static_pods(params), cfg) == [
        "manifests/kube-apiserver.yaml",
        "manifests/kube-controller-manager.yaml",
        "manifests/kube-scheduler.yaml",
    ]


def test_loose_file_mode_is_repaired(params):
    cfg = params["settings"]["config_dir"]
    run_static_pods(params)
    os.chmod(os.path.join(cfg, "admin.conf"), 0o644)
    result = run_static_pods(params)
    assert _names(result, cfg) == ["admin.conf"]
    assert stat.S_IMODE(os.stat(os.path.join(cfg, "admin.conf")).st_mode) == 0o600


def test_components_restrict_the_files(params):
    cfg = params["settings"]["config_dir"]
    result = run_static_pods({**params, "components": ["etcd", "etcd-events"]})
    assert _names(result, cfg) == ["manifests/etcd-events.yaml", "manifests/etcd.yaml"]


def test_query_reads_versions_and_writes_nothing(params):
    cfg = params["settings"]["config_dir"]
    query = run_static_pods({**params, "state": "query"})
    assert {k: query[k] for k in ("changed", "running", "files", "restart")} == {
        "changed": False,
        "running": {},
        "files": [],
        "restart": [],
    }
    os.makedirs(os.path.join(cfg, "manifests"))
    with open(os.path.join(cfg, "manifests/kube-apiserver.yaml"), "w") as f:
        f.write(
            "spec:\n  containers:\n"
            "  - image: registry.k8s.io/kube-apiserver:v1.35.2\n    name: kube-apiserver\n"
        )
    assert run_static_pods({**params, "state": "query"})["running"] == {"kube-apiserver": "v1.35.2"}
    assert os.listdir(os.path.join(cfg, "manifests")) == ["kube-apiserver.yaml"]


def test_a_host_without_components_is_refused(params):
    with pytest.raises(
        ControlPlaneError, match=r"host 'lab1-w1'.*runs no control plane component of cluster 'lab1-k8s'"
    ):
        run_static_pods({**params, "host": "lab1-w1"})
