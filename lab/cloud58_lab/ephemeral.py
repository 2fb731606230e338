"""One throwaway kube-apiserver for a check that has no cluster of its own to ask.

The merge-request job (``scripts/ci/mr_check.py``) dry-runs a cluster directory whose
kubeconfig context is missing or unreachable against this instead: etcd and kube-apiserver
of the pinned version on loopback (``controlplane.start_clusters``: no controllers, no
nodes), given the CRDs the directory needs and the namespaces its objects live in, so that
a server-side dry run validates every object as a real API server of that version would.

Nothing else is written to it. ``close()`` ends both programs by PID (SIGTERM, then
SIGKILL) and removes the working directory; the programs also get SIGTERM when the
thread that started them ends, so a killed job leaves none behind.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from pathlib import Path

import yaml

from cloud58_lab import controlplane
from cloud58_lab.calico import install_calico_crds

NAME = "ephemeral"
FIELD_MANAGER = "cloud58-ephemeral"


class EphemeralApiserver:
    """A started etcd + kube-apiserver pair; a context manager that closes it."""

    def __init__(self, cset: controlplane.ClusterSet) -> None:
        self._cset = cset
        self.cluster = cset[NAME]
        self.version: str = self.cluster.api("GET", "/version")["gitVersion"]

    def __enter__(self) -> EphemeralApiserver:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def server(self) -> str:
        return self.cluster.server

    def pids(self) -> dict[str, int]:
        """PIDs of the running programs, by component (``etcd``, ``kube-apiserver``)."""
        return self.cluster.pids()

    def close(self) -> None:
        """End both programs by PID and remove the working directory. Raises
        ControlPlaneError if one survives SIGKILL."""
        self._cset.close()

    def write_kubeconfig(self, path: Path, contexts: Iterable[str]) -> Path:
        """A kubeconfig at ``path`` whose contexts, one per name in ``contexts``, all lead to
        this apiserver as its admin, so that code which switches contexts by a cluster's
        name reaches it unchanged."""
        config = yaml.safe_load(self._cset.kubeconfig.read_text())
        names = sorted(set(contexts))
        config["contexts"] = [{"name": name, "context": {"cluster": NAME, "user": NAME}} for name in names]
        config["current-context"] = names[0] if names else ""
        path.touch(mode=0o600)
        path.write_text(yaml.safe_dump(config, sort_keys=True))
        return path

    def install_calico_crds(self, timeout: int = 60) -> list[str]:
        """crds/calico/ (the project's Calico CRDs), Established; their names."""
        return install_calico_crds(self.cluster, timeout=timeout)

    def install_crds(self, files: Sequence[Path], timeout: int = 60) -> list[str]:
        """Apply each file (one CustomResourceDefinition) server-side, forcing conflicts (a later
        file of the same name wins), and wait until all are Established; their names.
        Raises ControlPlaneError naming the file and the server's answer."""
        names = []
        for path in files:
            obj = yaml.safe_load(Path(path).read_text())
            result = self.cluster.kubectl(
                "apply",
                "--server-side",
                "--force-conflicts",
                f"--field-manager={FIELD_MANAGER}",
                "-f",
                str(path),
                check=False,
            )
            if result.returncode != 0:
                raise controlplane.ControlPlaneError(
                    f"{path}: the apiserver refused the CRD: {result.stderr.strip()}"
                )
            names.append(obj["metadata"]["name"])
        if names:
            self.cluster.kubectl(
                "wait", "--for=condition=Established", f"--timeout={timeout}s", *[f"crd/{n}" for n in names]
            )
        return names

    def remove_crds(self, names: Sequence[str], timeout: int = 60) -> None:
        """Delete these CRDs and wait until they are gone, so that the next check does not
        find kinds it would not find on its own cluster."""
        if names:
            self.cluster.kubectl("delete", "--wait", f"--timeout={timeout}s", *[f"crd/{n}" for n in names])

    def create_namespaces(self, names: Iterable[str]) -> list[str]:
        """Create each namespace that does not exist yet, bare (a name, nothing else); the
        names created, sorted."""
        existing = {ns["metadata"]["name"] for ns in self.cluster.api("GET", "/api/v1/namespaces")["items"]}
        created = sorted(set(names) - existing)
        for name in created:
            self.cluster.api(
                "POST",
                f"/api/v1/namespaces?fieldManager={FIELD_MANAGER}",
                {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}},
            )
        return created


def start_ephemeral(
    workdir: Path | str, bin_dir: Path | str, timeout: float = controlplane.DEFAULT_TIMEOUT
) -> EphemeralApiserver:
    """Start etcd + kube-apiserver from ``bin_dir`` with their files in ``workdir`` (absent or
    empty) and wait until the apiserver is ready. Raises ControlPlaneError (with the end
    of the failing program's log) and leaves nothing running when it fails."""
    cset = controlplane.start_clusters([NAME], workdir, bin_dir, timeout=timeout, die_with_parent=True)
    try:
        return EphemeralApiserver(cset)
    except BaseException:
        cset.close()
        raise
