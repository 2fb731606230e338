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

import base64
import json
import os
import re
import subprocess
import time
import urllib.request
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


# Retention by size. VictoriaLogs v1.52.2 (lib/logstorage/storage.go, watchMaxDiskSpaceUsage)
# checks at start and every 10 s (plus up to 1 s of jitter; no flag changes it): it sums the
# size of each per-day partition (its data parts written to files, not those still in memory,
# plus its index), newest day first, and drops every older partition from the first one that
# takes the sum over the limit, but never the newest two. Rows reach files within two
# -inmemoryDataFlushInterval (5 s) of ingestion; /internal/force_flush only makes them
# searchable. Random base64 does not compress, so a day of RECORDS_PER_DAY messages of 1,024
# characters takes about 1.09 MB (measured: 5,428,312 bytes of data parts for five days), and
# THREE_DAYS_LIMIT holds three such days but not four.
RECORDS_PER_DAY = 1000
THREE_DAYS_LIMIT = 3_800_000
BELOW_ONE_DAY_LIMIT = 500_000
_SIZE_DROP = re.compile(
    r"the partition \S+/partitions/(\d{8}) is scheduled to be deleted because the total size of "
    r"partitions exceeds -retention\.maxDiskSpaceUsageBytes=(\d+)$",
    re.MULTILINE,
)


def _day(days_ago: int) -> str:
    """The UTC day ``days_ago`` before today as VictoriaLogs names its partition (YYYYMMDD)."""
    return time.strftime("%Y%m%d", time.gmtime(time.time() - days_ago * 86_400))


def _record(day: str, i: int) -> dict:
    stamp = f"{day[:4]}-{day[4:6]}-{day[6:]}T12:00:00.{i:06d}Z"
    return {"_time": stamp, "day": day, "_msg": base64.b64encode(os.urandom(768)).decode()}


def _ingest(store: logstore.LogStore, records: list[dict]) -> None:
    """POST ``records`` to the JSON-lines endpoint (``day`` is the stream), then make them
    searchable."""
    body = "".join(json.dumps(r) + "\n" for r in records).encode()
    request = urllib.request.Request(
        f"{store.url}/insert/jsonline?_stream_fields=day",
        data=body,
        headers={"Content-Type": "application/stream+json"},
    )
    with urllib.request.urlopen(request, timeout=60) as r:
        assert r.status == 200
    with urllib.request.urlopen(f"{store.url}/internal/force_flush", timeout=60) as r:
        assert r.status == 200


def _counts(store: logstore.LogStore) -> dict[str, int]:
    """Records in the store per day, over all time."""
    return {r["day"]: int(r["n"]) for r in store.query("* | stats by (day) count() n")}


def _wait_dropped(store: logstore.LogStore, days: list[str]) -> None:
    """Wait until no record of ``days`` is left; fail naming them, the records per day and the
    size of the data on disk."""
    last: dict[str, int] = {}

    def gone() -> bool:
        nonlocal last
        last = _counts(store)
        return bool(last) and not last.keys() & set(days)

    try:
        wait_until(gone, 180, what=f"days {days} dropped by size")
    except TimeoutError:
        on_disk = sum(v for k, v in store.metrics().items() if k.startswith("vl_compressed_data_size_bytes"))
        raise AssertionError(
            f"days {days} not dropped by size within 180 s: records per day {last}, {on_disk:.0f} bytes "
            f"of data parts, flags {[f for f in store.flags if f.startswith('-retention')]}"
        ) from None


def _partitions(store: logstore.LogStore) -> list[str]:
    return sorted(p.name for p in (store.directory / "data" / "partitions").iterdir())


def _size_drops(store: logstore.LogStore) -> list[tuple[str, int]]:
    """(partition, limit) for each partition the store's log says it dropped by size."""
    text = (store.directory / "victoria-logs.log").read_text()
    return sorted((day, int(limit)) for day, limit in _SIZE_DROP.findall(text))


def test_retention_by_size_drops_the_oldest_days_first_and_keeps_the_newest_two(tmp_path: Path) -> None:
    days = [_day(n) for n in (5, 4, 3, 2, 1)]  # oldest first, all inside -retentionPeriod=7d
    oldest, second, third, newer, newest = days
    directory = tmp_path / "sized"
    store = logstore.LogStore(directory, retention_period="7d", max_disk_bytes=THREE_DAYS_LIMIT)
    try:
        _ingest(store, [_record(day, i) for day in days for i in range(RECORDS_PER_DAY)])
        _wait_dropped(store, [oldest, second])
        assert _counts(store) == {third: RECORDS_PER_DAY, newer: RECORDS_PER_DAY, newest: RECORDS_PER_DAY}
        # A partition is logged, then its directory removed, once no query holds it.
        wait_until(
            lambda: _partitions(store) == [third, newer, newest],
            60,
            what=f"the directories of {oldest} and {second} to be removed",
        )
        assert _size_drops(store) == [(oldest, THREE_DAYS_LIMIT), (second, THREE_DAYS_LIMIT)]

        # A late record for a day dropped by size is skipped (the day is remembered until a
        # restart); one for a kept day in the same request is stored.
        _ingest(store, [_record(oldest, RECORDS_PER_DAY), _record(newest, RECORDS_PER_DAY)])
        wait_until(
            lambda: _counts(store).get(newest) == RECORDS_PER_DAY + 1, 60, what=f"the late record of {newest}"
        )
        assert _counts(store) == {
            third: RECORDS_PER_DAY,
            newer: RECORDS_PER_DAY,
            newest: RECORDS_PER_DAY + 1,
        }
        log = (directory / "victoria-logs.log").read_text()
        assert "cannot be saved into inactive per-day partition" in log
        assert _partitions(store) == [third, newer, newest]
    finally:
        store.stop()

    # Under a limit smaller than one day, the newest two days stay all the same.
    store = logstore.LogStore(directory, retention_period="7d", max_disk_bytes=BELOW_ONE_DAY_LIMIT)
    try:
        _wait_dropped(store, [third])
        assert _counts(store) == {newer: RECORDS_PER_DAY, newest: RECORDS_PER_DAY + 1}
        wait_until(
            lambda: _partitions(store) == [newer, newest], 60, what=f"the directory of {third} to be removed"
        )
        assert _size_drops(store) == [(third, BELOW_ONE_DAY_LIMIT)]
    finally:
        store.stop()


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
