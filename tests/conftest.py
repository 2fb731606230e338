"""Fixtures shared by every test tier: real Kubernetes control planes on loopback.

The programs come from ``scripts/setup/upstream-bin-dir`` (the pinned build, or
$CLOUD58_BIN_DIR). When they are missing the fixtures fail, never skip: a test tier that
silently did nothing would look green.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
if str(REPO / "lab") not in sys.path:  # pytest.ini says so too; this keeps the file self-contained
    sys.path.insert(0, str(REPO / "lab"))

from cloud58_lab.controlplane import ClusterSet, ControlPlaneError, check_bin_dir, start_clusters  # noqa: E402

KUBE_CLUSTERS = ("c1", "c2", "c3")


@pytest.fixture(scope="session")
def upstream_bin_dir() -> Path:
    """The directory holding etcd, kube-apiserver, kubectl, kwok, ... at the pinned versions."""
    result = subprocess.run(
        [REPO / "scripts/setup/upstream-bin-dir"], capture_output=True, text=True, check=False
    )
    if result.returncode != 0:
        pytest.fail(
            f"the pinned upstream programs are missing: {result.stderr.strip()}\n"
            "run `make setup-upstream` (or set CLOUD58_BIN_DIR=/path/to/official/binaries)",
            pytrace=False,
        )
    try:
        return check_bin_dir(result.stdout.strip())
    except ControlPlaneError as e:
        pytest.fail(f"{e}\nrun `make setup-upstream`", pytrace=False)


@pytest.fixture(scope="session")
def kube_clusters(upstream_bin_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ClusterSet]:
    """Three control planes, etcd + kube-apiserver each, contexts ``c1 c2 c3`` in
    ``kube_clusters.kubeconfig``. Shared by the session: tests must leave every
    apiserver running and clean up the objects they create. There is no
    controller-manager here, so a deleted Namespace stays Terminating: prefer
    uniquely named objects."""
    workdir = tmp_path_factory.mktemp("kube-clusters")
    cset = start_clusters(KUBE_CLUSTERS, workdir, upstream_bin_dir)
    yield cset
    cset.close()


@pytest.fixture
def kube_cluster_factory(
    upstream_bin_dir: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Callable[..., ClusterSet]]:
    """``factory(names, *, controllers=False, kwok_nodes=0, etcd_members=1)`` starts a fresh
    ClusterSet (e.g. with kube-controller-manager, kube-scheduler and kwok nodes; ``kwok_nodes``
    is a count, or node names by cluster, as start_clusters takes it; ``etcd_members=3`` gives
    each cluster three etcd members); every set is closed when the test ends."""
    started: list[ClusterSet] = []

    def factory(names, *, controllers: bool = False, kwok_nodes=0, etcd_members: int = 1) -> ClusterSet:
        cset = start_clusters(
            names,
            tmp_path_factory.mktemp("kube-clusters"),
            upstream_bin_dir,
            controllers=controllers,
            kwok_nodes=kwok_nodes,
            etcd_members=etcd_members,
        )
        started.append(cset)
        return cset

    yield factory
    for cset in started:
        cset.close()
