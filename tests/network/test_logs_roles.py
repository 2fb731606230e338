"""The roles log_store and log_shipper (issue 17 item 4) by ansible-playbook, against real parts.

Each role runs on this machine (connection local) with its files redirected to a temporary
directory and its service management off: check mode writes nothing, a real run writes the
files, a second run changes nothing, bad input fails by name before anything is written. Then
the binary the store role installed is started with exactly the flags of the unit it wrote,
the real systemd-journal-upload ships a journal file to it with the URL of the drop-in the
shipper role wrote, and the cloud58-podlogs the shipper role installed runs with exactly the
command line of the unit it wrote and ships a CRI log file; LogsQL finds the records with the
fields the roles configured.
"""

from __future__ import annotations

import shlex
import subprocess
import sys
import time
from pathlib import Path

import pytest

from cloud58_lab import logstore, programs, roleplay
from cloud58_lab.netlab import wait_until

pytestmark = pytest.mark.slow

HOST = "lab1-n1"
STORE_PLAY = """\
- name: Run the log store
  hosts: all
  gather_facts: false
  roles:
    - cloud58.platform.log_store
"""
SHIPPER_PLAY = """\
- name: Ship the journal
  hosts: all
  gather_facts: false
  roles:
    - cloud58.platform.log_shipper
"""
LOCAL = {"ansible_connection": "local", "ansible_python_interpreter": sys.executable}


def _store_vars(directory: Path, port: int, **extra) -> dict:
    return {
        "log_store_binary_src": programs.path("victoria-logs"),
        "log_store_binary_dest": str(directory / "bin/victoria-logs"),
        "log_store_data_dir": str(directory / "data"),
        "log_store_unit_dir": str(directory / "units"),
        "log_store_listen": f"127.0.0.1:{port}",
        "log_store_retention_period": "14d",
        "log_store_max_disk_bytes": 1073741824,
        "log_store_manage_service": False,
        **LOCAL,
        **extra,
    }


def _shipper_vars(directory: Path, port: int, **extra) -> dict:
    return {
        "log_shipper_store_url": f"http://127.0.0.1:{port}",
        "log_shipper_datacenter": "lab1",
        "log_shipper_cluster": "lab1-k8s",
        "log_shipper_install_package": False,
        "log_shipper_config_dir": str(directory / "journal-upload.conf.d"),
        "log_shipper_manage_service": False,
        "log_shipper_pods_dir": str(directory.parent / "pods"),
        "log_shipper_podlogs_dir": str(directory / "lib"),
        "log_shipper_podlogs_state_dir": str(directory / "state"),
        "log_shipper_podlogs_unit_dir": str(directory / "units"),
        "log_shipper_podlogs_python": sys.executable,
        "log_shipper_podlogs_metrics_listen": "",
        **LOCAL,
        **extra,
    }


def _files(directory: Path) -> list[str]:
    """The files under ``directory`` but the play's own (directories such as bin/ and units/
    stand for /usr/local/bin and /etc/systemd/system, which exist on every host)."""
    return sorted(
        str(p.relative_to(directory))
        for p in directory.rglob("*")
        if p.is_file() and p.name not in ("play.yml", "vars.json")
    )


def test_roles_install_a_store_and_a_shipper_that_work_together(tmp_path: Path) -> None:
    port = logstore.free_port()
    store_dir, shipper_dir = tmp_path / "store", tmp_path / "shipper"
    for d in (store_dir / "bin", store_dir / "units", shipper_dir / "units"):
        d.mkdir(parents=True)

    stats, failed, _ = roleplay.play(store_dir, STORE_PLAY, HOST, _store_vars(store_dir, port), check=True)
    assert (stats, failed) == ({"changed": 3, "failures": 0}, [])
    assert _files(store_dir) == []
    assert not (store_dir / "data").exists()
    stats, failed, _ = roleplay.play(store_dir, STORE_PLAY, HOST, _store_vars(store_dir, port))
    assert (stats, failed) == ({"changed": 3, "failures": 0}, [])
    stats, failed, _ = roleplay.play(store_dir, STORE_PLAY, HOST, _store_vars(store_dir, port))
    assert (stats, failed) == ({"changed": 0, "failures": 0}, [])

    unit = (store_dir / "units/victoria-logs.service").read_text()
    exec_start = next(line for line in unit.splitlines() if line.startswith("ExecStart="))
    argv = shlex.split(exec_start.removeprefix("ExecStart="))
    assert argv == [
        str(store_dir / "bin/victoria-logs"),
        f"-storageDataPath={store_dir / 'data'}",
        f"-httpListenAddr=127.0.0.1:{port}",
        "-retentionPeriod=14d",
        "-retention.maxDiskSpaceUsageBytes=1073741824",
    ]

    stats, failed, _ = roleplay.play(
        shipper_dir, SHIPPER_PLAY, HOST, _shipper_vars(shipper_dir, port), check=True
    )
    # the drop-in's directory and file; cloud58-podlogs' directories, library, program and unit
    assert (stats, failed) == ({"changed": 6, "failures": 0}, [])
    assert _files(shipper_dir) == []
    stats, failed, _ = roleplay.play(shipper_dir, SHIPPER_PLAY, HOST, _shipper_vars(shipper_dir, port))
    assert (stats, failed) == ({"changed": 6, "failures": 0}, [])
    assert _files(shipper_dir) == [
        "journal-upload.conf.d/cloud58.conf",
        "lib/cloud58-podlogs",
        "lib/cloud58_logs/__init__.py",
        "lib/cloud58_logs/pods.py",
        "units/cloud58-podlogs.service",
    ]
    stats, failed, _ = roleplay.play(shipper_dir, SHIPPER_PLAY, HOST, _shipper_vars(shipper_dir, port))
    assert (stats, failed) == ({"changed": 0, "failures": 0}, [])
    conf = (shipper_dir / "journal-upload.conf.d/cloud58.conf").read_text().splitlines()
    url = next(line for line in conf if line.startswith("URL=")).removeprefix("URL=")
    assert url == (
        f"http://127.0.0.1:{port}/insert/journald/upload"
        "?extra_fields=datacenter=lab1,cluster=lab1-k8s,node=lab1-n1&cloud58="
    )

    unit = (shipper_dir / "units/cloud58-podlogs.service").read_text()
    exec_start = next(line for line in unit.splitlines() if line.startswith("ExecStart="))
    podlogs_argv = shlex.split(exec_start.removeprefix("ExecStart="))
    assert podlogs_argv == [
        sys.executable,
        str(shipper_dir / "lib/cloud58-podlogs"),
        *("--store-url", f"http://127.0.0.1:{port}", "--datacenter", "lab1", "--cluster", "lab1-k8s"),
        *("--node", HOST, "--pods-dir", str(tmp_path / "pods")),
        *("--state-file", str(shipper_dir / "state/state.json"), "--metrics-listen", ""),
        *("--buffer-records", "20000"),
    ]

    log = (tmp_path / "victoria-logs.log").open("wb")
    store = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT)
    podlogs = None
    try:
        journal = tmp_path / "j/node.journal"
        now = time.time_ns() // 1000
        logstore.write_journal(
            journal, [logstore.export_entry({"_HOSTNAME": HOST, "MESSAGE": "tok-role shipped"}, now, 1)]
        )

        def ship() -> bool:
            argv = logstore.upload_argv(journal, url, tmp_path / "state", follow=False)
            return subprocess.run(argv, check=False, capture_output=True).returncode == 0

        wait_until(ship, 60, what="the store to accept the upload")
        client = logstore.LogStore.__new__(logstore.LogStore)
        client.url = f"http://127.0.0.1:{port}"
        got = wait_until(lambda: client.query("tok-role"), 60, what="the shipped record")
        assert [(r["_msg"], r["datacenter"], r["cluster"], r["node"]) for r in got] == [
            ("tok-role shipped", "lab1", "lab1-k8s", "lab1-n1")
        ]
        assert client.metrics()['flag{name="retentionPeriod", value="14d", is_set="true"}'] == 1

        # The installed copy (with its cloud58_logs, not the source tree) ships a container's line.
        cri = tmp_path / f"pods/shop_web-1_{'0' * 8}-aaaa-bbbb-cccc-{'1' * 12}/nginx/0.log"
        cri.parent.mkdir(parents=True)
        cri.write_bytes(logstore.cri_line("2026-12-05T00:00:00.123456789Z", "stdout", "tok-pod shipped"))
        podlogs = subprocess.Popen(
            podlogs_argv, cwd=tmp_path, env={"PATH": "/usr/bin:/bin"}, stderr=subprocess.PIPE, text=True
        )
        got = wait_until(lambda: client.query("tok-pod"), 60, what="the container's line")
        assert [
            (r["_msg"], r["datacenter"], r["cluster"], r["node"], r["namespace"], r["pod"], r["container"])
            for r in got
        ] == [("tok-pod shipped", "lab1", "lab1-k8s", "lab1-n1", "shop", "web-1", "nginx")]
    finally:
        if podlogs:
            podlogs.terminate()
            _out, err = podlogs.communicate()
            assert "cloud58_logs" not in err
        store.terminate()
        store.wait()
        log.close()


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (
            {"log_store_retention_period": "0"},
            "log_store_args: log_store_retention_period='0': expected a positive number"
            " with h, d, w or y (e.g. 30d)",
        ),
        (
            {"log_store_max_disk_bytes": 1000},
            "log_store_args: log_store_max_disk_bytes=1000: expected an integer of at least 67108864",
        ),
        ({"log_store_listen": "nowhere"}, "log_store_args: log_store_listen='nowhere': expected host:port"),
    ],
)
def test_store_bad_input_fails_by_name_before_anything_changes(tmp_path: Path, extra, message) -> None:
    for d in ("bin", "units"):
        (tmp_path / d).mkdir()
    stats, failed, _ = roleplay.play(tmp_path, STORE_PLAY, HOST, _store_vars(tmp_path, 9428, **extra))
    assert stats["failures"] == 1
    assert stats["changed"] == 0
    assert len(failed) == 1
    assert failed[0].endswith(message)
    assert _files(tmp_path) == []
    assert not (tmp_path / "data").exists()


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (
            {"log_shipper_node": "lab1,n1"},
            "log_upload_url: log field node='lab1,n1': not a DNS-label-like value",
        ),
        (
            {"log_shipper_pods_dir": "var/log/pods"},
            'host lab1-n1: log_shipper_pods_dir="var/log/pods" is not an absolute path',
        ),
        (
            {"log_shipper_podlogs_buffer_records": 0},
            "host lab1-n1: log_shipper_podlogs_buffer_records=0 is below 1",
        ),
        (
            {"log_shipper_store_url": "http://10.0.0.1:9428/x"},
            "log_upload_url: log store URL 'http://10.0.0.1:9428/x':"
            " expected http(s)://host[:port] without a path",
        ),
    ],
)
def test_shipper_bad_input_fails_by_name_before_anything_changes(tmp_path: Path, extra, message) -> None:
    stats, failed, _ = roleplay.play(tmp_path, SHIPPER_PLAY, HOST, _shipper_vars(tmp_path, 9428, **extra))
    assert stats["failures"] == 1
    assert stats["changed"] == 0
    assert len(failed) == 1
    assert failed[0].endswith(message)
    assert _files(tmp_path) == []


def test_shipper_without_pod_logs_installs_only_the_journal_drop_in(tmp_path: Path) -> None:
    (tmp_path / "units").mkdir()
    extra = {"log_shipper_pod_logs": False, "log_shipper_pods_dir": "not/checked/when/off"}
    stats, failed, _ = roleplay.play(tmp_path, SHIPPER_PLAY, HOST, _shipper_vars(tmp_path, 9428, **extra))
    assert (stats, failed) == ({"changed": 2, "failures": 0}, [])
    assert _files(tmp_path) == ["journal-upload.conf.d/cloud58.conf"]
    assert not (tmp_path / "lib").exists()
