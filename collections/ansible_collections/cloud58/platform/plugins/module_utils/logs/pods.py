# -*- coding: utf-8 -*-
# Copyright: cloud58 platform team
# Apache License 2.0
"""Container logs (issue 17 item 4): the pure logic of ``cloud58-podlogs``.

The kubelet keeps each container's output as CRI log files
``<pods dir>/<namespace>_<pod>_<uid>/<container>/<n>.log``, one line per chunk::

    <RFC 3339 time> <stdout|stderr> <P|F>[:more tags] <message>

``P`` marks a partial chunk of a longer line, ``F`` its last (or only) chunk. The kubelet
rotates a file by renaming ``0.log`` to ``0.log.<timestamp>`` and asking the runtime to open a
new ``0.log``; a copytruncate rotation empties the file in place instead.

Here: the path's labels (:func:`path_labels`), a line's fields (:func:`parse_line`), partial
chunks joined per stream (:class:`Joiner`), what a file's ``stat`` means for the reader
(:func:`file_change`), the offsets kept across restarts (:class:`Offsets`), the bounded buffer
of records (:class:`Buffer`), the store's ``/insert/jsonline`` URL and body, and the bounded
retry delay. The program (``roles/log_shipper/files/cloud58-podlogs``) does the I/O.
Standard library only: the program runs with the host's python3.
"""

from __future__ import annotations

import json
import re
import urllib.parse
from collections import deque

# The labels of every record, in the order of VictoriaLogs' _stream_fields.
STREAM_FIELDS = ("datacenter", "cluster", "node", "namespace", "pod", "container")
# A Kubernetes namespace or pod name (DNS subdomain: no '_'), a pod UID, a container name.
_NAME = re.compile(r"^[a-z0-9]([a-z0-9.-]{0,251}[a-z0-9])?$")
_UID = re.compile(r"^[A-Za-z0-9-]{1,64}$")
_LOG = re.compile(r"^[0-9]+\.log$")
# RFC 3339 with an optional fraction and a Z or numeric offset, as the CRI writes it.
_TIME = re.compile(
    rb"^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]{1,9})?(Z|[+-][0-9]{2}:[0-9]{2})$"
)
_STORE = re.compile(r"^https?://[A-Za-z0-9.\-\[\]:]+$")
_VALUE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$")


class PodLogsError(ValueError):
    """A bad setting of cloud58-podlogs (one line naming the option and the value)."""


def path_labels(pods_dir: str, path: str) -> dict | None:
    """``{"namespace", "pod", "uid", "container"}`` of a CRI log file ``path`` under
    ``pods_dir``, or None when the path is not ``<ns>_<pod>_<uid>/<container>/<n>.log``."""
    root = pods_dir.rstrip("/") + "/"
    if not path.startswith(root):
        return None
    parts = path[len(root) :].split("/")
    if len(parts) != 3 or not _LOG.match(parts[2]):
        return None
    pod_dir = parts[0].split("_")
    if len(pod_dir) != 3:
        return None
    namespace, pod, uid = pod_dir
    container = parts[1]
    if not (_NAME.match(namespace) and _NAME.match(pod) and _UID.match(uid) and _NAME.match(container)):
        return None
    return {"namespace": namespace, "pod": pod, "uid": uid, "container": container}


def parse_line(line: bytes) -> tuple[str, str, bool, bytes] | None:
    """``(time, stream, full, message)`` of one CRI line without its newline; None when the
    line is not in CRI format. ``full`` is False for a partial chunk (tag ``P``)."""
    fields = line.split(b" ", 3)
    if len(fields) < 3:
        return None
    stamp, stream, tags = fields[0], fields[1], fields[2]
    message = fields[3] if len(fields) == 4 else b""
    if stream not in (b"stdout", b"stderr") or not _TIME.match(stamp):
        return None
    kind = tags.split(b":", 1)[0]
    if kind not in (b"P", b"F"):
        return None
    return stamp.decode(), stream.decode(), kind == b"F", message


class Joiner:
    """Joins the partial chunks of one file into lines, per stream (the runtime writes stdout
    and stderr into the same file, so their chunks may interleave).

    :meth:`feed` takes a parsed line and the file offsets where it starts and ends; it returns
    a finished record ``(time, stream, message, safe_offset)`` or None. ``safe_offset`` is the
    offset a restart may resume from once this record is delivered: the end of its last chunk,
    or the start of an unfinished line of the other stream when that comes first. A line longer
    than ``max_bytes`` is cut there (the rest of its chunks dropped, counted in ``cut``); its
    time is its first chunk's."""

    def __init__(self, max_bytes: int = 1024 * 1024) -> None:
        self.max_bytes = max_bytes
        self.pending: dict[str, tuple] = {}
        self.cut = 0

    def feed(self, parsed: tuple[str, str, bool, bytes], start: int, end: int):
        stamp, stream, full, message = parsed
        first_time, first_start, chunks, size, cut = self.pending.pop(stream, (stamp, start, [], 0, False))
        room = self.max_bytes - size
        if len(message) > room:
            message = message[:room]
            if not cut:
                self.cut += 1
                cut = True
        chunks.append(message)
        size += len(message)
        if not full:
            self.pending[stream] = (first_time, first_start, chunks, size, cut)
            return None
        return first_time, stream, b"".join(chunks), self.resume_offset(end)

    def resume_offset(self, end: int) -> int:
        """Where a restart must resume when every finished record up to ``end`` is delivered."""
        return min([end] + [p[1] for p in self.pending.values()])

    def flush(self, end: int) -> list:
        """The unfinished lines as records (a file that is gone ends them), oldest first."""
        out = [(p[0], stream, b"".join(p[2]), end) for stream, p in self.pending.items()]
        self.pending.clear()
        return sorted(out, key=lambda r: r[0])


def file_change(known_inode: int | None, read_offset: int, inode: int, size: int) -> str:
    """What the reader of a path does after a ``stat`` of it: ``"new"`` (a file it does not
    follow: start it), ``"rotated"`` (another inode under the name: finish the old file through
    its open descriptor, then start the new one from 0), ``"truncated"`` (same inode, smaller
    than what was read: copytruncate; read again from 0), ``"grown"`` or ``"same"``."""
    if known_inode is None:
        return "new"
    if inode != known_inode:
        return "rotated"
    if size < read_offset:
        return "truncated"
    return "grown" if size > read_offset else "same"


def rotated_name(path: str, name: str) -> bool:
    """True when ``name`` (in the directory of ``path``) is a rotated, uncompressed copy of it:
    ``0.log.<timestamp>`` for ``0.log``."""
    base = path.rsplit("/", 1)[-1]
    return name.startswith(base + ".") and not name.endswith(".gz") and not name.endswith(".tmp")


class Offsets:
    """The delivered offset of each followed file, by inode, with the path it was last seen
    under; saved as JSON so a restart resumes after the last delivered line."""

    def __init__(self, entries: dict | None = None) -> None:
        self.entries: dict[int, dict] = {}
        for key, value in (entries or {}).items():
            self.entries[int(key)] = {"path": value["path"], "offset": int(value["offset"])}

    @classmethod
    def loads(cls, text: str, where: str) -> Offsets:
        try:
            data = json.loads(text) if text.strip() else {}
            if not isinstance(data, dict) or not isinstance(data.get("files", {}), dict):
                raise ValueError("expected an object with 'files'")
            return cls(data.get("files", {}))
        except (ValueError, KeyError, TypeError) as e:
            raise PodLogsError(f"state file {where}: {e}") from e

    def dumps(self) -> str:
        files = {str(k): v for k, v in sorted(self.entries.items())}
        return json.dumps({"files": files}, sort_keys=True) + "\n"

    def get(self, inode: int) -> dict | None:
        return self.entries.get(inode)

    def set(self, inode: int, path: str, offset: int) -> None:
        self.entries[inode] = {"path": path, "offset": offset}

    def keep_only(self, inodes) -> None:
        """Forget the files no longer followed (deleted, or finished after a rotation)."""
        for inode in [i for i in self.entries if i not in inodes]:
            del self.entries[inode]


class Buffer:
    """Records waiting for the store, at most ``max_records`` of them and ``max_bytes`` of
    their JSON: a new record beyond either drops the oldest (counted in ``dropped``), so
    memory stays bounded while the store is down, whatever the lines' length.

    Each record carries a position (the program's: inode, path, offset, generation);
    :meth:`take` removes delivered records and returns their positions and those of the records
    dropped since, oldest first."""

    def __init__(self, max_records: int, max_bytes: int = 1 << 62) -> None:
        if max_records < 1:
            raise PodLogsError(f"--buffer-records={max_records}: expected at least 1")
        if max_bytes < 1:
            raise PodLogsError(f"--buffer-bytes={max_bytes}: expected at least 1")
        self.max_records = max_records
        self.max_bytes = max_bytes
        self.items: deque = deque()
        self.bytes = 0
        self.dropped = 0
        self.dropped_positions: list = []

    def __len__(self) -> int:
        return len(self.items)

    def add(self, body: bytes, position: tuple) -> None:
        self.items.append((body, position))
        self.bytes += len(body)
        while len(self.items) > self.max_records or (self.bytes > self.max_bytes and len(self.items) > 1):
            old_body, old_position = self.items.popleft()
            self.bytes -= len(old_body)
            self.dropped += 1
            self.dropped_positions.append(old_position)

    def peek(self, count: int) -> list:
        return [self.items[i] for i in range(min(count, len(self.items)))]

    def take(self, count: int) -> list:
        """Remove the ``count`` oldest records (delivered); their positions and those of the
        records dropped since the last call, oldest first."""
        positions, self.dropped_positions = self.dropped_positions, []
        for _index in range(min(count, len(self.items))):
            body, position = self.items.popleft()
            self.bytes -= len(body)
            positions.append(position)
        return positions

    def take_dropped(self) -> list:
        positions, self.dropped_positions = self.dropped_positions, []
        return positions


def labels(datacenter: str, cluster: str, node: str) -> dict:
    """The host's labels from the command line, checked like the journal shipper's fields;
    an empty cluster is left out (a host in no cluster)."""
    out = {}
    for name, value in (("datacenter", datacenter), ("cluster", cluster), ("node", node)):
        if name == "cluster" and value == "":
            continue
        if not isinstance(value, str) or not _VALUE.match(value):
            raise PodLogsError(f"--{name}={value!r}: not a DNS-label-like value")
        out[name] = value
    return out


def insert_url(store: str) -> str:
    """The store's ``/insert/jsonline`` URL: the six labels are the stream fields, ``_time``
    and ``_msg`` the time and message fields of each JSON line."""
    if not isinstance(store, str) or not _STORE.match(store.rstrip("/")):
        raise PodLogsError(f"--store-url={store!r}: expected http(s)://host[:port] without a path")
    query = urllib.parse.urlencode(
        {"_stream_fields": ",".join(STREAM_FIELDS), "_time_field": "_time", "_msg_field": "_msg"},
        safe=",",
    )
    return f"{store.rstrip('/')}/insert/jsonline?{query}"


def record_line(host_labels: dict, file_labels: dict, stamp: str, stream: str, message: bytes) -> bytes:
    """One JSON line of the store's body: time, message, stream and the six labels (the pod's
    UID is not a label: a new pod of the same name is the same stream)."""
    record = {"_time": stamp, "_msg": message.decode("utf-8", "replace"), "stream": stream}
    record.update(host_labels)
    record["namespace"] = file_labels["namespace"]
    record["pod"] = file_labels["pod"]
    record["container"] = file_labels["container"]
    return json.dumps(record, ensure_ascii=False, separators=(",", ":")).encode() + b"\n"


def retry_delay(failures: int, base: float, cap: float) -> float:
    """Seconds before the next try after ``failures`` failed sends in a row: doubling from
    ``base``, at most ``cap``."""
    if failures <= 0:
        return 0.0
    return min(cap, base * (2 ** min(failures - 1, 30)))
