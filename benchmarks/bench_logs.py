#!/usr/bin/env python3
"""Central logs (issue 17 items 4 and 7): what the shipper costs and how soon a line is queryable.

One VictoriaLogs (the pinned build of scripts/setup/victorialogs.sh) runs on 127.0.0.1 with a
data directory of its own; the shipper is Debian's systemd-journal-upload, as in
tests/network/test_logs_store.py. Journal files are written by systemd-journal-remote from
journald's export format (lines of about 100 bytes, 4 fields each).

    BENCH log_shipper_cpu_s_per_10k <s>     user+sys CPU seconds of systemd-journal-upload per
                                            10,000 lines, from its rusage after it shipped a
                                            journal file of LINES lines and exited (--follow=no)
    BENCH log_shipper_rss_mib <MiB>         its peak RSS (ru_maxrss) over the same runs; this
                                            counts the journal pages it maps, so it grows with
                                            the file shipped
    BENCH log_shipper_anon_rss_mib <MiB>    the largest RssAnon of /proc/<pid>/status sampled
                                            every 10 ms during the same runs: the memory that is
                                            the shipper's own, not reclaimable file pages
    BENCH log_shipper_cpu_cores <cores>     cpu_s_per_10k / 10: the cores it would use at
                                            1,000 lines/s if the cost is linear (derived, not
                                            a paced run)
    BENCH log_ingest_p99_ms <ms>            from the moment a line is in the journal file (the
                                            writer returned) to a LogsQL query finding it, with
                                            a following shipper; p99 of SAMPLES lines per run
    BENCH log_ingest_median_ms <ms>         their median

Sizes (CLOUD58_BENCH_SIZE): full = 100,000 lines x 5 runs, 50 latency samples x 3 runs;
ci = 10,000 lines x 3 runs, 10 latency samples x 2 runs. Each figure is the median of the runs,
with every run and the spread. The machine is shared: expect wide spreads.
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO / "lab"), str(REPO / "benchmarks")]

from benchstats import bench_size, figure  # noqa: E402

from cloud58_lab import logstore  # noqa: E402
from cloud58_lab.netlab import wait_until  # noqa: E402

FIELDS = {"datacenter": "bench", "cluster": "bench-c1", "node": "bench-n1"}
SIZES = {"full": (100_000, 5, 50, 3), "ci": (10_000, 3, 10, 2)}


def _entries(tag: str, lines: int, t0: int, first_seq: int = 1):
    for i in range(lines):
        yield logstore.export_entry(
            {
                "_HOSTNAME": "bench-n1",
                "_SYSTEMD_UNIT": "kubelet.service",
                "PRIORITY": "6",
                "MESSAGE": f"{tag} I1204 kubelet.go:2421] SyncLoop (PLEG): event for pod {i:08d}",
            },
            t0 + i,
            first_seq + i,
        )


def _anon_rss_kib(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("RssAnon:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def shipper_cost(store: logstore.LogStore, work: Path, lines: int, run: int) -> tuple[float, float, float]:
    """(CPU seconds per 10,000 lines, peak RSS MiB, peak anonymous RSS MiB) of one upload of a
    ``lines``-line journal."""
    tag = f"cost{run}"
    journal = work / f"cost{run}" / "node.journal"
    logstore.write_journal(journal, _entries(tag, lines, time.time_ns() // 1000))
    url = logstore.upload_url(store.url, FIELDS)
    argv = logstore.upload_argv(journal, url, work / f"cost{run}.state", follow=False)
    proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    anon = [0]
    done = threading.Event()

    def sample() -> None:
        while not done.is_set():
            anon[0] = max(anon[0], _anon_rss_kib(proc.pid))
            done.wait(0.01)

    sampler = threading.Thread(target=sample)
    sampler.start()
    _, status, usage = os.wait4(proc.pid, 0)
    done.set()
    sampler.join()
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        raise SystemExit(f"systemd-journal-upload exited {proc.returncode}: {proc.stderr.read().decode()}")
    stored = wait_until(
        lambda: (n := _count(store, tag)) == lines and n, 120, what=f"{lines} lines of {tag} in the store"
    )
    assert stored == lines
    cpu = usage.ru_utime + usage.ru_stime
    return cpu * 10_000 / lines, usage.ru_maxrss / 1024, anon[0] / 1024


def _count(store: logstore.LogStore, tag: str) -> int:
    rows = store.query(f"{tag} | stats count() n")
    return int(rows[0]["n"]) if rows else 0


def ingest_latency(store: logstore.LogStore, work: Path, samples: int, run: int) -> list[float]:
    """Milliseconds from a line written to the journal to a query finding it, per line."""
    journal = work / f"lat{run}" / "node.journal"
    t0 = time.time_ns() // 1000
    logstore.write_journal(journal, _entries(f"lat{run}x", 1, t0))
    url = logstore.upload_url(store.url, FIELDS)
    shipper = subprocess.Popen(
        logstore.upload_argv(journal, url, work / f"lat{run}.state", follow=True),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    out = []
    try:
        wait_until(lambda: _count(store, f"lat{run}x"), 60, what="the shipper's first line")
        for i in range(samples):
            tag = f"lat{run}s{i}"
            logstore.write_journal(journal, _entries(tag, 1, time.time_ns() // 1000, i + 2))
            start = time.monotonic()
            while not store.query(tag):
                time.sleep(0.005)
            out.append((time.monotonic() - start) * 1000)
    finally:
        shipper.terminate()
        shipper.wait()
    return out


def main() -> None:
    size = bench_size()
    lines, cost_runs, samples, lat_runs = SIZES[size]
    print(f"size {size}: {lines} lines x {cost_runs} runs; {samples} latency samples x {lat_runs} runs")
    with tempfile.TemporaryDirectory(prefix="cloud58-bench-logs-") as tmp:
        work = Path(tmp)
        store = logstore.LogStore(work / "store", retention_period="7d", max_disk_bytes=1 << 30)
        try:
            costs = [shipper_cost(store, work, lines, run) for run in range(cost_runs)]
            cpu = [c for c, _, _ in costs]
            rss = [r for _, r, _ in costs]
            anon = [a for _, _, a in costs]
            p99s, medians = [], []
            for run in range(lat_runs):
                lat = sorted(ingest_latency(store, work, samples, run))
                p99s.append(lat[min(len(lat) - 1, round(0.99 * (len(lat) - 1)))])
                medians.append(statistics.median(lat))
        finally:
            store.stop()
    print(figure("log_shipper_cpu_s_per_10k", cpu, 3))
    print(figure("log_shipper_rss_mib", rss, 1))
    print(figure("log_shipper_anon_rss_mib", anon, 1))
    print(figure("log_shipper_cpu_cores", [c / 10 for c in cpu], 4))
    print(figure("log_ingest_p99_ms", p99s, 1))
    print(figure("log_ingest_median_ms", medians, 1))


if __name__ == "__main__":
    main()
