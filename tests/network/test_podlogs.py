"""Container logs (issue 17 item 4): cloud58-podlogs against a real VictoriaLogs on loopback.

The program (``roles/log_shipper/files/cloud58-podlogs``, from the source tree) follows CRI log
files that the test writes under a temporary pods directory, as the kubelet and the runtime lay
them out (``<namespace>_<pod>_<uid>/<container>/0.log``), and ships them to a real
``victoria-logs`` (lab/cloud58_lab/logstore.py); LogsQL must return every line once, with
exactly its labels, through partial lines, rotation by rename, copytruncate, a restart, and a
store that is down. Every process is stopped by its PID.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from cloud58_lab import logstore
from cloud58_lab.netlab import wait_until

pytestmark = pytest.mark.slow

LABELS = {"datacenter": "lab1", "cluster": "lab1-c1", "node": "lab1-n1"}
FAST = (
    "--poll-seconds=0.05",
    "--scan-seconds=0.1",
    "--flush-seconds=0.2",
    "--retry-seconds=0.2",
    "--retry-max-seconds=1",
)
UID = "0b1d4d6e-9a7c-2f8e-6b1d-3c4a5f1c3a4e"
# An hour ago, to the second, when the module loads: inside the store's retention.
BASE = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(time.time() - 3600))


@pytest.fixture
def store(tmp_path: Path):
    s = logstore.LogStore(tmp_path / "store", retention_period="7d", max_disk_bytes=512 * 1024 * 1024)
    yield s
    s.stop()


def _stamp(n: int) -> str:
    """A distinct CRI time per n, with a 9-digit fraction whose last digit is not 0."""
    return f"{BASE}.{n:08d}1Z"


def _log(pods: Path, namespace: str, pod: str, container: str) -> Path:
    path = pods / f"{namespace}_{pod}_{UID}" / container / "0.log"
    path.parent.mkdir(parents=True, exist_ok=True)
    return path


def _append(path: Path, *lines: bytes) -> None:
    with path.open("ab") as f:
        f.write(b"".join(lines))


def _messages(store, logsql: str) -> list[str]:
    return [r["_msg"] for r in store.query(f"{logsql} | sort by (_time)")]


def _wait_count(store, logsql: str, count: int) -> list[str]:
    return wait_until(
        lambda: len(got := _messages(store, logsql)) >= count and got, 60, what=f"{count} records of {logsql}"
    )


def test_container_lines_arrive_with_exactly_their_labels_and_partial_lines_joined(
    tmp_path: Path, store
) -> None:
    pods = tmp_path / "pods"
    web = _log(pods, "shop", "web-7d9f", "nginx")
    side = _log(pods, "kube-system", "coredns-x2v9q", "coredns")
    _append(
        web,
        logstore.cri_line(_stamp(1), "stdout", "GET / 200"),
        logstore.cri_line(_stamp(2), "stdout", "a long ", partial=True),
        logstore.cri_line(_stamp(3), "stderr", "warning: slow"),  # interleaved with stdout's chunks
        logstore.cri_line(_stamp(4), "stdout", "line in ", partial=True),
        logstore.cri_line(_stamp(5), "stdout", "three chunks"),
        b"not a CRI line\n",
    )
    _append(side, logstore.cri_line(_stamp(6), "stdout", "[INFO] plugin/reload"))
    tailer = logstore.PodLogs(tmp_path / "podlogs", pods, store.url, LABELS, *FAST)
    try:
        got = wait_until(
            lambda: len(r := store.query("* | sort by (_time)")) == 4 and r, 60, what="4 records"
        )
        metrics = wait_until(lambda: (m := tailer.metrics()).get("records_sent_total") == 4 and m, 30)
    finally:
        assert tailer.stop() == 0
    web = {"namespace": "shop", "pod": "web-7d9f", "container": "nginx"}
    side = {"namespace": "kube-system", "pod": "coredns-x2v9q", "container": "coredns"}
    web_stream = (
        '{cluster="lab1-c1",container="nginx",datacenter="lab1",namespace="shop",'
        'node="lab1-n1",pod="web-7d9f"}'
    )
    side_stream = (
        '{cluster="lab1-c1",container="coredns",datacenter="lab1",namespace="kube-system",'
        'node="lab1-n1",pod="coredns-x2v9q"}'
    )
    for record in got:
        assert record.pop("_stream_id")
    assert got == [
        {"_msg": "GET / 200", "_stream": web_stream, "_time": _stamp(1), "stream": "stdout", **LABELS, **web},
        # the joined line carries the time of its first chunk
        {"_msg": "a long line in three chunks", "_stream": web_stream, "_time": _stamp(2), "stream": "stdout",
         **LABELS, **web},
        {"_msg": "warning: slow", "_stream": web_stream, "_time": _stamp(3), "stream": "stderr",
         **LABELS, **web},
        {"_msg": "[INFO] plugin/reload", "_stream": side_stream, "_time": _stamp(6), "stream": "stdout",
         **LABELS, **side},
    ]  # fmt: skip
    assert _messages(store, '{namespace="kube-system", container="coredns"}') == ["[INFO] plugin/reload"]
    assert _messages(store, "pod:=web-7d9f stream:=stderr") == ["warning: slow"]
    assert metrics["malformed_lines_total"] == 1
    assert metrics["lines_read_total"] == 7
    assert metrics["records_dropped_total"] == 0


def test_rotation_copytruncate_and_a_restart_lose_and_repeat_nothing(tmp_path: Path, store) -> None:
    pods = tmp_path / "pods"
    app = _log(pods, "shop", "api-1", "app")
    trunc = _log(pods, "shop", "batch-1", "job")
    n = 0

    def write(path: Path, count: int) -> None:
        nonlocal n
        lines = []
        for _ in range(count):
            n += 1
            lines.append(logstore.cri_line(_stamp(n), "stdout", f"tok-rot {n}"))
        _append(path, *lines)

    def rotate(path: Path, suffix: str) -> None:
        os.rename(path, path.with_name(f"0.log.{suffix}"))  # as the kubelet does
        path.touch()  # the runtime reopens 0.log

    write(app, 50)
    tailer = logstore.PodLogs(tmp_path / "podlogs", pods, store.url, LABELS, *FAST)
    _wait_count(store, "tok-rot", 50)
    write(app, 30)  # 51-80: left in the file as it is renamed
    rotate(app, "20261205-000001")
    write(app, 20)  # 81-100 in the new 0.log
    write(trunc, 10)  # 101-110
    _wait_count(store, "tok-rot", 110)
    with trunc.open("r+b") as f:  # copytruncate: the copy is elsewhere, the file emptied in place
        f.truncate(0)
    write(trunc, 5)  # 111-115
    _wait_count(store, "tok-rot", 115)
    metrics = tailer.metrics()
    assert tailer.stop() == 0
    assert (metrics["rotations_total"], metrics["truncations_total"]) == (1, 1)

    # While the tailer is stopped: lines in 0.log, a rotation, lines in the new 0.log.
    write(app, 10)  # 116-125
    rotate(app, "20261205-000002")
    write(app, 10)  # 126-135
    tailer = logstore.PodLogs(tmp_path / "podlogs", pods, store.url, LABELS, *FAST)
    try:
        got = _wait_count(store, "tok-rot", 135)
        wait_until(
            lambda: tailer.metrics().get("records_sent_total") == 20, 30, what="20 sent after the restart"
        )
        time.sleep(1)  # a repeat, if any, would arrive within the flush interval
        got = _messages(store, "tok-rot")
    finally:
        assert tailer.stop() == 0
    assert sorted(got, key=lambda m: int(m.split()[1])) == [f"tok-rot {i}" for i in range(1, 136)]


def test_a_store_that_is_down_gets_every_line_once_it_is_up(tmp_path: Path) -> None:
    pods = tmp_path / "pods"
    app = _log(pods, "shop", "api-2", "app")
    port = logstore.free_port()
    tailer = logstore.PodLogs(tmp_path / "podlogs", pods, f"http://127.0.0.1:{port}", LABELS, *FAST)
    store = None
    try:
        _append(app, *(logstore.cri_line(_stamp(i), "stdout", f"tok-down {i}") for i in range(1, 41)))
        wait_until(lambda: tailer.metrics().get("send_failures_total", 0) >= 3, 60, what="failed sends")
        assert tailer.metrics()["buffered_records"] == 40
        store = logstore.LogStore(
            tmp_path / "store", retention_period="7d", max_disk_bytes=512 * 1024 * 1024, port=port
        )
        got = _wait_count(store, "tok-down", 40)
        wait_until(lambda: tailer.metrics().get("buffered_records") == 0, 30, what="an empty buffer")
    finally:
        assert tailer.stop() == 0
        if store:
            store.stop()
    assert got == [f"tok-down {i}" for i in range(1, 41)]


def test_the_buffer_stays_bounded_dropping_the_oldest_while_the_store_is_down(tmp_path: Path) -> None:
    pods = tmp_path / "pods"
    app = _log(pods, "shop", "api-3", "app")
    port = logstore.free_port()
    tailer = logstore.PodLogs(
        tmp_path / "podlogs", pods, f"http://127.0.0.1:{port}", LABELS, *FAST, "--buffer-records=10"
    )
    store = None
    try:
        _append(app, *(logstore.cri_line(_stamp(i), "stdout", f"tok-drop {i}") for i in range(1, 51)))
        metrics = wait_until(lambda: (m := tailer.metrics()).get("lines_read_total") == 50 and m, 60)
        assert (metrics["buffered_records"], metrics["records_dropped_total"]) == (10, 40)
        store = logstore.LogStore(
            tmp_path / "store", retention_period="7d", max_disk_bytes=512 * 1024 * 1024, port=port
        )
        got = _wait_count(store, "tok-drop", 10)
    finally:
        assert tailer.stop() == 0
        if store:
            store.stop()
    assert got == [f"tok-drop {i}" for i in range(41, 51)]


@pytest.mark.parametrize(
    ("option", "message"),
    [
        ("--store-url=http://127.0.0.1:9428/insert", "--store-url='http://127.0.0.1:9428/insert': expected"),
        ("--pods-dir=var/log/pods", "--pods-dir='var/log/pods': expected an absolute path"),
        ("--node=n,1", "--node='n,1': not a DNS-label-like value"),
        ("--buffer-records=0", "--buffer-records=0: expected at least 1"),
        ("--flush-seconds=0", "--flush-seconds=0.0: expected a positive number"),
    ],
)
def test_a_bad_option_exits_2_with_one_line_naming_it(tmp_path: Path, option: str, message: str) -> None:
    argv = [
        sys.executable,
        str(logstore.PODLOGS),
        "--store-url=http://127.0.0.1:9428",
        "--datacenter=lab1",
        "--node=n1",
        f"--pods-dir={tmp_path}",
        f"--state-file={tmp_path / 'state.json'}",
        option,
    ]
    done = subprocess.run(
        argv, capture_output=True, text=True, check=False, timeout=60, env=logstore.podlogs_env()
    )
    assert done.returncode == 2
    last = done.stderr.strip().splitlines()[-1]
    assert last.startswith(f"cloud58-podlogs: error: {message}")
    assert not (tmp_path / "state.json").exists()
