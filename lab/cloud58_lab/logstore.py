"""A VictoriaLogs process and the systemd-journal-upload shipper, for the log tests and benchmark.

The store is the pinned ``victoria-logs`` (``scripts/setup/victorialogs.sh``) on loopback, its
data in a directory of the caller's; it is stopped by its PID. Journal files are written from
journald's export format by ``systemd-journal-remote``, so a test controls every field and
timestamp; ``systemd-journal-upload`` (Debian's systemd-journal-remote) ships them to the
store's journald endpoint with the platform's fields (datacenter, cluster, node) added by the
store from the upload URL's ``extra_fields``. :func:`query` asks any store (the lab's too).
:class:`PodLogs` runs ``cloud58-podlogs`` (the container-log tailer of the role log_shipper,
from the source tree) and :func:`cri_line` writes a line of a CRI log file for it.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import urllib.parse
import urllib.request
from collections.abc import Iterable, Mapping
from pathlib import Path

from ansible_collections.cloud58.platform.plugins.module_utils.logs import upload_url
from cloud58_lab import programs
from cloud58_lab.netlab import stop_process

__all__ = [
    "PODLOGS",
    "LogStore",
    "PodLogs",
    "cri_line",
    "export_entry",
    "free_port",
    "podlogs_env",
    "query",
    "upload_argv",
    "upload_url",
    "write_journal",
]
PODLOGS = (
    Path(__file__).resolve().parents[2]
    / "collections/ansible_collections/cloud58/platform/roles/log_shipper/files/cloud58-podlogs"
)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def export_entry(fields: Mapping[str, str], realtime_us: int, seqnum: int) -> bytes:
    """One entry in journald's export format (text fields only)."""
    lines = [
        f"__REALTIME_TIMESTAMP={realtime_us}",
        f"__MONOTONIC_TIMESTAMP={seqnum}",
        "_BOOT_ID=0123456789abcdef0123456789abcdef",
    ]
    for k, v in fields.items():
        if "\n" in v:
            raise ValueError(f"{k}: multi-line values are not written by this helper")
        lines.append(f"{k}={v}")
    return ("\n".join(lines) + "\n\n").encode()


def write_journal(path: Path, entries: Iterable[bytes]) -> None:
    """Write export-format ``entries`` into the journal file ``path`` (must end in .journal)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    export = path.with_suffix(".export")
    export.write_bytes(b"".join(entries))
    subprocess.run(
        programs.argv("systemd-journal-remote", f"--output={path}", export),
        check=True,
        capture_output=True,
    )
    export.unlink()


def upload_argv(journal: Path, url: str, state: Path, *, follow: bool) -> list[str]:
    return programs.argv(
        "systemd-journal-upload",
        f"--file={journal}",
        f"--url={url}",
        f"--save-state={state}",
        f"--follow={'yes' if follow else 'no'}",
    )


def query(url: str, logsql: str) -> list[dict]:
    """Run a LogsQL query over the /select/logsql/query of the store at ``url``; one dict per
    matching record."""
    data = urllib.parse.urlencode({"query": logsql}).encode()
    with urllib.request.urlopen(f"{url}/select/logsql/query", data=data, timeout=30) as r:
        return [json.loads(line) for line in r.read().decode().splitlines() if line.strip()]


class LogStore:
    """One ``victoria-logs`` on 127.0.0.1:<free port>, stopped by PID."""

    def __init__(self, directory: Path, *, retention_period: str, max_disk_bytes: int, port: int = 0) -> None:
        self.directory = directory
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        directory.mkdir(parents=True, exist_ok=True)
        self.log = (directory / "victoria-logs.log").open("wb")
        self.flags = [
            f"-storageDataPath={directory / 'data'}",
            f"-httpListenAddr=127.0.0.1:{self.port}",
            f"-retentionPeriod={retention_period}",
            f"-retention.maxDiskSpaceUsageBytes={max_disk_bytes}",
        ]
        self.process = subprocess.Popen(
            programs.argv("victoria-logs", *self.flags), stdout=self.log, stderr=subprocess.STDOUT
        )
        deadline = time.monotonic() + 60
        while not self._healthy():
            if self.process.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"victoria-logs did not start; see {directory / 'victoria-logs.log'}")
            time.sleep(0.05)

    def _healthy(self) -> bool:
        try:
            with urllib.request.urlopen(f"{self.url}/health", timeout=2) as r:
                return r.status == 200
        except OSError:
            return False

    def query(self, logsql: str) -> list[dict]:
        """Run a LogsQL query on this store (:func:`query`)."""
        return query(self.url, logsql)

    def metrics(self) -> dict[str, float]:
        """The store's /metrics as {series: value}."""
        with urllib.request.urlopen(f"{self.url}/metrics", timeout=10) as r:
            out = {}
            for line in r.read().decode().splitlines():
                if line and not line.startswith("#"):
                    series, _, value = line.rpartition(" ")
                    out[series] = float(value)
            return out

    def stop(self) -> None:
        _stop(self.process, self.log, 30)


def cri_line(stamp: str, stream: str, message: str, *, partial: bool = False) -> bytes:
    """One line of a CRI log file as the runtime writes it."""
    return f"{stamp} {stream} {'P' if partial else 'F'} {message}\n".encode()


def podlogs_env() -> dict:
    """The environment to run :data:`PODLOGS` from the repository: the collection on the
    Python path, since the program imports its logs package from there (an installed copy has
    it beside itself as cloud58_logs)."""
    collections = str(PODLOGS.parents[6])
    path = os.pathsep.join(filter(None, [collections, os.environ.get("PYTHONPATH")]))
    return dict(os.environ, PYTHONPATH=path)


class PodLogs:
    """One ``cloud58-podlogs`` following ``pods_dir`` for the store at ``store_url``, with its
    counters on a free loopback port; stopped by its PID (SIGTERM: a last send, state saved)."""

    def __init__(
        self, directory: Path, pods_dir: Path, store_url: str, labels: Mapping[str, str], *extra: str
    ):
        directory.mkdir(parents=True, exist_ok=True)
        self.metrics_port = free_port()
        self.argv = [
            sys.executable,
            str(PODLOGS),
            f"--store-url={store_url}",
            f"--datacenter={labels['datacenter']}",
            f"--cluster={labels.get('cluster', '')}",
            f"--node={labels['node']}",
            f"--pods-dir={pods_dir}",
            f"--state-file={directory / 'state.json'}",
            f"--metrics-listen=127.0.0.1:{self.metrics_port}",
            *extra,
        ]
        self.log_path = directory / "podlogs.log"
        self.log = self.log_path.open("ab")
        self.process = subprocess.Popen(
            self.argv, stdout=self.log, stderr=subprocess.STDOUT, env=podlogs_env()
        )

    def metrics(self) -> dict[str, float]:
        """The tailer's counters as {name without the cloud58_podlogs_ prefix: value}; {} while
        its server is not up yet."""
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.metrics_port}/metrics", timeout=5) as r:
                text = r.read().decode()
        except OSError:
            return {}
        out = {}
        for line in text.splitlines():
            if line and not line.startswith("#"):
                name, _, value = line.partition(" ")
                out[name.removeprefix("cloud58_podlogs_")] = float(value)
        return out

    def stop(self) -> int:
        """SIGTERM and wait; the exit code."""
        return _stop(self.process, self.log, 60)


def _stop(process: subprocess.Popen, log, timeout: float) -> int:
    """SIGTERM ``process`` (by its PID) and wait, SIGKILL after ``timeout`` s; close its log."""
    stop_process(process, timeout=timeout)
    log.close()
    return process.returncode
