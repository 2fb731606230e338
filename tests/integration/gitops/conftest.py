"""Fixtures of the GitOps integration tests, on the shared real clusters c1 c2 c3 (tests/conftest.py)."""

from __future__ import annotations

import pytest

from .helpers import Workspace


@pytest.fixture(scope="session")
def gitops_clusters(kube_clusters, tmp_path_factory):
    """The shared clusters, each holding its identity (bootstrapped once, as on a new cluster)."""
    for name in kube_clusters:
        kube_clusters[name].start()  # a test that stopped an apiserver restarts it; be sure
    root = tmp_path_factory.mktemp("gitops-bootstrap") / "clusters"
    ws = Workspace(root, kube_clusters)
    for name in kube_clusters:
        ws.write(name, [])
    result = ws.reconcile(bootstrap_identity=True)
    assert result["failed_clusters"] == [], result["summary"]
    return kube_clusters


@pytest.fixture
def workspace(gitops_clusters, tmp_path):
    ws = Workspace(tmp_path / "clusters", gitops_clusters)
    yield ws
    for name in gitops_clusters:
        gitops_clusters[name].start()
    ws.clean()
