#!/usr/bin/env python3
"""Central logs (issue 17 items 4 and 7): what cloud58-podlogs costs at 1,000 lines/s.

One VictoriaLogs (the pinned build of scripts/setup/victorialogs.sh) runs on 127.0.0.1; one
``cloud58-podlogs`` (roles/log_shipper/files, from the source tree, its default intervals:
poll 0.25 s, scan 2 s, flush 1 s) follows a temporary pods directory of 10 containers. The
benchmark writes CRI lines of about 130 bytes into their 0.log files, paced at 1,000 lines/s in
all (100 per container), for SECONDS seconds, then waits until the store holds every line.
    BENCH pod_log_shipper_cpu_cores <cores>  user+sys CPU of the tailer (/proc/<pid>/stat)
                                             from the first line written to the last one
                                             stored, divided by that wall time
    BENCH pod_log_shipper_rss_mib <MiB>      its largest VmRSS, sampled every 100 ms in the
                                             same window
    BENCH pod_log_shipper_lines_per_s <n>    the rate the writer kept (a check of the pacing)
    BENCH pod_log_shipper_full_buffer_rss_mib <MiB>
                                             its VmRSS with no store to send to, once it has
                                             read 30,000 lines (unpaced) and holds its default
                                             buffer's 20,000 records, the rest dropped: the
                                             most it keeps in memory with lines of this size
Sizes (CLOUD58_BENCH_SIZE): full = 30 s x 3 runs; ci = 8 s x 2 runs; the full buffer 2 runs at
both sizes. Each figure is the median of the runs, with every run and the spread. The machine
is shared: expect wide spreads.
"""

from __future__ import annotations

import os
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO / "lab"), str(REPO / "benchmarks")]

from benchstats import bench_size, figure  # noqa: E402

from cloud58_lab import logstore  # noqa: E402
from cloud58_lab.netlab import wait_until  # noqa: E402

LABELS = {"datacenter": "bench", "cluster": "bench-c1", "node": "bench-n1"}
SIZES = {"full": (30, 3), "ci": (8, 2)}
RATE = 1000
CONTAINERS = 10
TICK = 0.01  # the writer writes RATE * TICK lines every TICK seconds
CLK_TCK = os.sysconf("SC_CLK_TCK")


def _cpu_s(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK  # utime, stime


def _rss_mib(pid: int) -> float:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


def _count(store: logstore.LogStore, tag: str) -> int:
    rows = store.query(f"{tag} | stats count() n")
    return int(rows[0]["n"]) if rows else 0


def one_run(work: Path, store: logstore.LogStore, seconds: int, run: int) -> tuple[float, float, float]:
    """(CPU cores, peak RSS MiB, lines/s written) of the tailer in one paced run."""
    pods = work / f"pods{run}"
    files = []
    for c in range(CONTAINERS):
        path = pods / f"bench_app-{c}_{c:08d}-0000-0000-0000-000000000000" / "app" / "0.log"
        path.parent.mkdir(parents=True)
        files.append(path.open("ab", buffering=0))
    tag = f"podrun{run}"
    tailer = logstore.PodLogs(work / f"podlogs{run}", pods, store.url, LABELS)
    try:
        files[0].write(logstore.cri_line("2026-12-05T00:00:00.000000001Z", "stdout", f"{tag}warm"))
        wait_until(lambda: _count(store, f"{tag}warm") == 1, 60, what="the tailer's first line")
        total = seconds * RATE
        per_tick = int(RATE * TICK)
        cpu0, rss, start = _cpu_s(tailer.process.pid), 0.0, time.monotonic()
        next_sample = start
        written = 0
        while written < total:
            now = time.time()
            stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(now)) + f".{int(now % 1 * 1e9):09d}Z"
            for _ in range(per_tick):
                files[written % CONTAINERS].write(
                    logstore.cri_line(
                        stamp,
                        "stdout",
                        f"{tag} {written:08d} GET /api/v1/items?page=3 200 1532 bytes in 4.2 ms",
                    )
                )
                written += 1
            if time.monotonic() >= next_sample:
                rss = max(rss, _rss_mib(tailer.process.pid))
                next_sample += 0.1
            time.sleep(max(0.0, start + written / RATE - time.monotonic()))
        wrote_for = time.monotonic() - start
        while _count(store, tag) < total:
            rss = max(rss, _rss_mib(tailer.process.pid))
            time.sleep(0.1)
            if time.monotonic() - start > seconds + 120:
                raise SystemExit(
                    f"{tag}: {_count(store, tag)} of {total} lines stored after {seconds + 120} s"
                )
        wall = time.monotonic() - start
        cores = (_cpu_s(tailer.process.pid) - cpu0) / wall
    finally:
        tailer.stop()
        for f in files:
            f.close()
    return cores, rss, total / wrote_for


def full_buffer(work: Path, run: int) -> float:
    """VmRSS MiB of a tailer whose store is down once its buffer is full."""
    pods = work / f"full{run}"
    path = pods / f"bench_app-0_{0:08d}-0000-0000-0000-000000000000" / "app" / "0.log"
    path.parent.mkdir(parents=True)
    lines = 30_000
    stamp = "2026-12-05T00:00:00.000000001Z"
    path.write_bytes(
        b"".join(
            logstore.cri_line(
                stamp, "stdout", f"full{run} {i:08d} GET /api/v1/items?page=3 200 1532 bytes in 4.2 ms"
            )
            for i in range(lines)
        )
    )
    down = f"http://127.0.0.1:{logstore.free_port()}"
    tailer = logstore.PodLogs(work / f"fullpodlogs{run}", pods, down, LABELS)
    try:
        metrics = wait_until(
            lambda: (m := tailer.metrics()).get("lines_read_total") == lines and m,
            120,
            what="every line read",
        )
        if (metrics["buffered_records"], metrics["records_dropped_total"]) != (20_000, lines - 20_000):
            raise SystemExit(f"full buffer: unexpected counters {metrics}")
        time.sleep(0.5)
        return _rss_mib(tailer.process.pid)
    finally:
        tailer.stop()


def main() -> None:
    size = bench_size()
    seconds, runs = SIZES[size]
    print(f"size {size}: {RATE} lines/s into {CONTAINERS} containers for {seconds} s x {runs} runs")
    with tempfile.TemporaryDirectory(prefix="cloud58-bench-podlogs-") as tmp:
        work = Path(tmp)
        store = logstore.LogStore(work / "store", retention_period="7d", max_disk_bytes=1 << 30)
        try:
            results = [one_run(work, store, seconds, run) for run in range(runs)]
        finally:
            store.stop()
        full = [full_buffer(work, run) for run in range(2)]
    print(figure("pod_log_shipper_cpu_cores", [c for c, _, _ in results], 4))
    print(figure("pod_log_shipper_rss_mib", [r for _, r, _ in results], 1))
    print(figure("pod_log_shipper_lines_per_s", [w for _, _, w in results], 0))
    print(figure("pod_log_shipper_full_buffer_rss_mib", full, 1))


if __name__ == "__main__":
    main()
