"""A private containerd for cloud58-crashkeeper's tests and benchmark, and a tiny image to run.

``CrashLab`` starts Debian's containerd on its own root, state and socket under a temporary
directory (the CRI plugin off: no kubelet talks to it), imports an image built here from the
controller's own ``dash`` and coreutils (no registry, no podman store), and starts containers
with ``ctr run`` the way the kubelet's CRI would leave them: the pod's labels
(``io.kubernetes.pod.namespace`` ...) and the pass-through annotation ``cloud58.io/crash``
(containerd's ``pod_annotations`` setting) on the container, the output in a log file.

Everything it starts is stopped and removed by ``close()``.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import shutil
import signal
import subprocess
import tarfile
import tempfile
import time
from pathlib import Path

from cloud58_lab import programs

IMAGE = "localhost/c58crash/tiny:1"
NAMESPACE = "k8s.io"
# What the tiny image holds: a shell and what a dump command or a crashing app uses.
TOOLS = ("sh", "cat", "head", "sleep", "ls", "echo", "mkdir", "tar")


class CrashLabError(RuntimeError):
    pass


def _libraries(binary: str) -> list[str]:
    out = subprocess.run(programs.argv("ldd", binary), capture_output=True, text=True, check=False).stdout
    found = []
    for line in out.splitlines():
        parts = line.split()
        for part in parts:
            if part.startswith("/"):
                found.append(part)
                break
    return found


def image_archive() -> bytes:
    """An OCI image archive (for ``ctr images import``) of TOOLS from this machine, one layer."""
    files: dict[str, str] = {}  # path in the image -> path here
    for tool in TOOLS:
        here = shutil.which(tool)
        if here is None:
            raise CrashLabError(f"{tool} is missing on this machine; the crash lab's image copies it")
        real = os.path.realpath(here)
        files[f"bin/{tool}"] = real
        for lib in _libraries(real):
            files[lib.lstrip("/")] = os.path.realpath(lib)
    layer_buf = io.BytesIO()
    with tarfile.open(fileobj=layer_buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        dirs = {"bin", "tmp", "dev", "proc", "sys", "etc", "var", "work"}
        for name in files:
            parts = name.split("/")[:-1]
            dirs.update("/".join(parts[: i + 1]) for i in range(len(parts)))
        for d in sorted(dirs):
            info = tarfile.TarInfo(d)
            info.type = tarfile.DIRTYPE
            info.mode = 0o1777 if d == "tmp" else 0o755
            tar.addfile(info)
        for name, real in sorted(files.items()):
            info = tar.gettarinfo(real, arcname=name)
            info.uid = info.gid = 0
            info.uname = info.gname = ""
            with open(real, "rb") as handle:
                tar.addfile(info, handle)
    layer = layer_buf.getvalue()
    layer_digest = "sha256:" + hashlib.sha256(layer).hexdigest()
    config = json.dumps(
        {
            "architecture": "amd64",
            "os": "linux",
            "config": {"Env": ["PATH=/bin"], "WorkingDir": "/"},
            "rootfs": {"type": "layers", "diff_ids": [layer_digest]},
        }
    ).encode()
    config_digest = "sha256:" + hashlib.sha256(config).hexdigest()
    manifest = json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": {
                "mediaType": "application/vnd.oci.image.config.v1+json",
                "digest": config_digest,
                "size": len(config),
            },
            "layers": [
                {
                    "mediaType": "application/vnd.oci.image.layer.v1.tar",
                    "digest": layer_digest,
                    "size": len(layer),
                }
            ],
        }
    ).encode()
    manifest_digest = "sha256:" + hashlib.sha256(manifest).hexdigest()
    index = json.dumps(
        {
            "schemaVersion": 2,
            "manifests": [
                {
                    "mediaType": "application/vnd.oci.image.manifest.v1+json",
                    "digest": manifest_digest,
                    "size": len(manifest),
                    "annotations": {
                        "io.containerd.image.name": IMAGE,
                        "org.opencontainers.image.ref.name": "1",
                    },
                    "platform": {"architecture": "amd64", "os": "linux"},
                }
            ],
        }
    ).encode()
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w") as tar:
        for name, data in (
            ("oci-layout", b'{"imageLayoutVersion": "1.0.0"}'),
            ("index.json", index),
            (f"blobs/sha256/{layer_digest[7:]}", layer),
            (f"blobs/sha256/{config_digest[7:]}", config),
            (f"blobs/sha256/{manifest_digest[7:]}", manifest),
        ):
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return out.getvalue()


class CrashLab:
    """containerd on its own socket, the tiny image imported, containers started on demand."""

    def __init__(self, workdir: str | Path | None = None) -> None:
        programs.require("containerd", "ctr", "containerd-shim-runc-v2", "runc")
        self.dir = Path(workdir or tempfile.mkdtemp(prefix="c58crash-"))
        self.address = str(self.dir / "containerd.sock")
        self.containers: list[str] = []
        self.pod_logs = self.dir / "pods"  # the kubelet's /var/log/pods
        config = self.dir / "config.toml"
        config.write_text(
            "version = 2\n"
            f'root = "{self.dir}/root"\n'
            f'state = "{self.dir}/state"\n'
            'disabled_plugins = ["io.containerd.grpc.v1.cri"]\n'
            f'[grpc]\n  address = "{self.address}"\n'
            f'[ttrpc]\n  address = "{self.address}.ttrpc"\n'
            f'[debug]\n  address = "{self.dir}/debug.sock"\n',
            encoding="utf-8",
        )
        self._log = open(self.dir / "containerd.log", "wb")  # noqa: SIM115 - closed in close()
        self.daemon = subprocess.Popen(
            programs.argv("containerd", "--config", config),
            stdout=self._log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        deadline = time.monotonic() + 30
        while self.ctr("version", check=False).returncode != 0:
            if self.daemon.poll() is not None or time.monotonic() > deadline:
                self.close()
                raise CrashLabError(f"containerd did not start; see {self.dir}/containerd.log")
            time.sleep(0.1)
        archive = self.dir / "image.tar"
        archive.write_bytes(image_archive())
        self.ctr("images", "import", archive)

    def ctr(self, *args, check: bool = True, **kwargs) -> subprocess.CompletedProcess:
        done = subprocess.run(
            programs.argv("ctr", "--address", self.address, "--namespace", NAMESPACE, *args),
            capture_output=True,
            text=True,
            check=False,
            **kwargs,
        )
        if check and done.returncode != 0:
            raise CrashLabError(f"ctr {' '.join(map(str, args))}: {done.stderr.strip()}")
        return done

    def start(
        self,
        cid: str,
        script: str,
        pod: str,
        *,
        container: str = "app",
        annotations: dict | None = None,
        netns: str | None = None,
    ) -> Path:
        """A detached container running ``sh -c script`` with the CRI's pod labels, in the network
        namespace ``netns`` (a name of ``ip netns``) if given; its log file, where the kubelet
        keeps it (``pods/<namespace>_<pod>_<uid>/<container>/0.log`` under the lab's directory)."""
        namespace, name = pod.split("/", 1)
        log = self.dir / "pods" / f"{namespace}_{name}_{cid}" / container / "0.log"
        log.parent.mkdir(parents=True, exist_ok=True)
        # runc's state under the lab's directory and a cgroup named after it: their defaults
        # (/run/containerd/runc/<namespace>/<id>, cgroup /<namespace>/<id>) are shared by every
        # containerd of the machine, so two labs (a CI lane each) that start the same container
        # id would take each other's container.
        args = [
            "run",
            "-d",
            "--runc-root",
            str(self.dir / "runc"),
            "--cgroup",
            f"/{NAMESPACE}/{self.dir.name}-{cid}",
            "--log-uri",
            f"file://{log}",
        ]
        if netns:
            args += ["--with-ns", f"network:/run/netns/{netns}"]
        for key, value in (
            ("io.kubernetes.pod.namespace", namespace),
            ("io.kubernetes.pod.name", name),
            ("io.kubernetes.container.name", container),
        ):
            args += ["--label", f"{key}={value}"]
        for key, value in (annotations or {}).items():
            args += ["--annotation", f"{key}={value}"]
        self.ctr(*args, IMAGE, cid, "sh", "-c", script)
        self.containers.append(cid)
        return log

    def pid(self, cid: str) -> int:
        for line in self.ctr("tasks", "ls").stdout.splitlines()[1:]:
            parts = line.split()
            if parts and parts[0] == cid:
                return int(parts[1])
        raise CrashLabError(f"container {cid} has no task")

    def status(self, cid: str) -> str:
        for line in self.ctr("tasks", "ls").stdout.splitlines()[1:]:
            parts = line.split()
            if parts and parts[0] == cid:
                return parts[2]
        return "NONE"

    def close(self) -> None:
        for cid in reversed(self.containers):
            self.ctr("tasks", "kill", "--signal", "SIGKILL", cid, check=False)
        for cid in reversed(self.containers):
            for _ in range(50):
                if self.status(cid) in ("STOPPED", "NONE"):
                    break
                time.sleep(0.1)
            self.ctr("tasks", "delete", "--force", cid, check=False)
            self.ctr("containers", "delete", cid, check=False)
        if self.daemon.poll() is None:
            os.killpg(self.daemon.pid, signal.SIGTERM)
            try:
                self.daemon.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(self.daemon.pid, signal.SIGKILL)
                self.daemon.wait()
        self._log.close()
        # containerd's overlay snapshots may still be mounted when a shim was killed hard.
        subprocess.run(
            programs.argv("umount", "-R", "-l", self.dir / "root"), capture_output=True, check=False
        )
        shutil.rmtree(self.dir, ignore_errors=True)

    def __enter__(self) -> CrashLab:
        return self

    def __exit__(self, *exc) -> None:
        self.close()
