"""Central logs (issue 17 item 4) against real parts: VictoriaLogs and systemd-journal-upload.

A real ``victoria-logs`` (the pinned build of scripts/setup/victorialogs.sh) runs on
loopback with the retention flags the log store uses; journal files are written from
journald's export format by ``systemd-journal-remote``, so every field and timestamp is known;
Debian's ``systemd-journal-upload`` ships them to the store's journald endpoint with the
platform's fields in the upload URL; LogsQL over the store's HTTP API must return each record
with exactly the fields sent. Every process is stopped by its PID.

Container logs (CRI files under /var/log/pods) are tested in test_podlogs.py.
"""

from __future__ import annotations

import subprocess
import time
from pathlib import Path

import pytest

from cloud58_lab import logstore
from cloud58_lab.netlab import wait_until

pytestmark = pytest.mark.slow

FIELDS = {"datacenter": "lab1", "cluster": "lab1-c1", "node": "lab1-n1"}
DAY_US = 86_400 * 1_000_000


@pytest.fixture
def store(tmp_path: Path):
    s = logstore.LogStore(tmp_path / "store", retention_period="7d", max_disk_bytes=512 * 1024 * 1024)
    yield s
    s.stop()


def _now_us() -> int:
    return time.time_ns() // 1000


def _iso(us: int) -> str:
    """RFC 3339 as VictoriaLogs prints _time: trailing zeros of the fraction dropped."""
    fraction = f"{us % 1_000_000:06d}".rstrip("0")
    return (
        time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(us // 1_000_000))
        + (f".{fraction}" if fraction else "")
        + "Z"
    )


def _upload(tmp_path: Path, journal: Path, store: logstore.LogStore) -> None:
    url = logstore.upload_url(store.url, FIELDS)
    argv = logstore.upload_argv(journal, url, tmp_path / "upload.state", follow=False)
    done = subprocess.run(argv, check=False, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr


def test_journal_records_arrive_with_exactly_the_platform_fields(tmp_path: Path, store) -> None:
    t0 = _now_us()
    sent = [
        (
            {
                "_HOSTNAME": "lab1-n1",
                "_SYSTEMD_UNIT": "kubelet.service",
                "PRIORITY": "6",
                "MESSAGE": f"tok-a {i}",
            },
            t0 + i,
        )
        for i in range(3)
    ]
    journal = tmp_path / "j" / "node.journal"
    logstore.write_journal(journal, (logstore.export_entry(f, ts, n + 1) for n, (f, ts) in enumerate(sent)))
    _upload(tmp_path, journal, store)

    got = wait_until(
        lambda: len(r := store.query("tok-a | sort by (_time)")) == 3 and r, 60, what="3 records"
    )
    for (fields, ts), record in zip(sent, got, strict=True):
        stream_id = record.pop("_stream_id")
        assert len(stream_id) == 48
        assert record == {
            "_msg": fields["MESSAGE"],
            "_time": _iso(ts),
            "_stream": '{_HOSTNAME="lab1-n1",_SYSTEMD_UNIT="kubelet.service"}',
            "_BOOT_ID": "0123456789abcdef0123456789abcdef",
            "_HOSTNAME": "lab1-n1",
            "_SYSTEMD_UNIT": "kubelet.service",
            "PRIORITY": "6",
            "level": "info",
            **FIELDS,
        }
    # The platform's fields filter as fields, not as text.
    assert len(store.query('datacenter:=lab1 cluster:="lab1-c1" node:="lab1-n1" tok-a')) == 3
    assert store.query('node:="lab1-n2" tok-a') == []


def test_a_following_shipper_sends_entries_written_after_it_started(tmp_path: Path, store) -> None:
    journal = tmp_path / "j" / "node.journal"
    t0 = _now_us()
    first = {"_HOSTNAME": "lab1-n1", "_SYSTEMD_UNIT": "containerd.service", "MESSAGE": "tok-b first"}
    logstore.write_journal(journal, [logstore.export_entry(first, t0, 1)])
    url = logstore.upload_url(store.url, FIELDS)
    shipper = subprocess.Popen(
        logstore.upload_argv(journal, url, tmp_path / "upload.state", follow=True),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        wait_until(lambda: store.query("tok-b first"), 60, what="the first entry")
        second = {"_HOSTNAME": "lab1-n1", "_SYSTEMD_UNIT": "containerd.service", "MESSAGE": "tok-b second"}
        logstore.write_journal(journal, [logstore.export_entry(second, t0 + 1000, 2)])
        got = wait_until(lambda: store.query("tok-b second"), 60, what="the entry written later")
        assert [r["_msg"] for r in got] == ["tok-b second"]
        assert {k: got[0][k] for k in FIELDS} == FIELDS
        assert shipper.poll() is None
        # The state file holds the cursor of the last entry shipped, so a restart resumes there.
        state = (tmp_path / "upload.state").read_text()
        assert "LAST_CURSOR=" in state
        assert ";i=2;" in state
    finally:
        shipper.terminate()
        shipper.wait()
    assert len(store.query("tok-b")) == 2


def test_retention_by_age_drops_older_records_and_the_size_limit_is_set(tmp_path: Path, store) -> None:
    now = _now_us()
    entries = [
        logstore.export_entry({"_HOSTNAME": "lab1-n1", "MESSAGE": "tok-c old"}, now - 30 * DAY_US, 1),
        logstore.export_entry({"_HOSTNAME": "lab1-n1", "MESSAGE": "tok-c recent"}, now - 2 * DAY_US, 2),
    ]
    journal = tmp_path / "j" / "node.journal"
    logstore.write_journal(journal, entries)
    _upload(tmp_path, journal, store)

    got = wait_until(lambda: store.query("tok-c _time:365d"), 60, what="the recent entry")
    assert [r["_msg"] for r in got] == ["tok-c recent"]
    metrics = store.metrics()
    assert metrics['vl_rows_dropped_total{reason="too_small_timestamp"}'] == 1
    assert metrics['flag{name="retentionPeriod", value="7d", is_set="true"}'] == 1
    assert metrics['flag{name="retention.maxDiskSpaceUsageBytes", value="536870912", is_set="true"}'] == 1


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"node": "lab1,n1"}, "log field node='lab1,n1': not a DNS-label-like value"),
        ({"node": "a&b"}, "log field node='a&b': not a DNS-label-like value"),
        ({"Node": "n1"}, "log field name 'Node' is not a lower-case identifier"),
    ],
)
def test_upload_url_refuses_values_that_would_break_the_fields(fields, message) -> None:
    with pytest.raises(ValueError, match=r"^log field") as e:
        logstore.upload_url("http://127.0.0.1:9428", fields)
    assert str(e.value) == message
