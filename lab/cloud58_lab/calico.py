"""The Calico CRDs of a lab or test apiserver: ``crds/calico/*.yaml``, the project's stand-ins.

In production the CRDs come with the cluster's Calico release; they are never rendered into
``clusters/`` (the two would fight over the schema). A lab apiserver runs no Calico, so
whatever reconciles a ``clusters/<cluster>/`` directory holding Calico objects into one
calls :func:`install_calico_crds` first.
"""

from __future__ import annotations

from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[2]
CRD_DIR = REPO / "crds" / "calico"
FIELD_MANAGER = "cloud58-lab"


def calico_crd_names() -> list[str]:
    """``metadata.name`` of every CRD in crds/calico/, in file order."""
    return [yaml.safe_load(path.read_text())["metadata"]["name"] for path in sorted(CRD_DIR.glob("*.yaml"))]


def install_calico_crds(cluster, timeout: int = 60) -> list[str]:
    """Apply crds/calico/ to ``cluster`` (anything with ``kubectl(*args)``: a
    ``controlplane.Cluster``, a context of the lab's kubeconfig) by server-side apply and wait
    until every CRD is Established; returns their names. Raises what its kubectl raises."""
    names = calico_crd_names()
    cluster.kubectl("apply", "--server-side", f"--field-manager={FIELD_MANAGER}", "-f", str(CRD_DIR))
    cluster.kubectl(
        "wait", "--for=condition=Established", f"--timeout={timeout}s", *[f"crd/{n}" for n in names]
    )
    return names
