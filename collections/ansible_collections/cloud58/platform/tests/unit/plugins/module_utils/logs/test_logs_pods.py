"""cloud58-podlogs' pure logic: CRI paths and lines, partial lines, rotation, offsets, the
bounded buffer, the store's URL and body, the retry delay."""

from __future__ import annotations

import json

import pytest

from ansible_collections.cloud58.platform.plugins.module_utils.logs import pods

ROOT = "/var/log/pods"
T1 = "2026-12-05T00:17:09.669794202Z"
T2 = "2026-12-05T00:17:10.000000001Z"


def test_path_labels_take_namespace_pod_and_container_from_the_path() -> None:
    path = f"{ROOT}/kube-system_coredns-7db6d8ff4d-x2v9q_5f1c3a4e-0b1d-4d6e-9a7c-2f8e6b1d3c4a/coredns/0.log"
    assert pods.path_labels(ROOT + "/", path) == {
        "namespace": "kube-system",
        "pod": "coredns-7db6d8ff4d-x2v9q",
        "uid": "5f1c3a4e-0b1d-4d6e-9a7c-2f8e6b1d3c4a",
        "container": "coredns",
    }


@pytest.mark.parametrize(
    "rest",
    [
        "ns_pod_uid/c/0.log.20261205-001709",  # a rotated copy: read only through recovery
        "ns_pod_uid/c/0.log.gz",
        "ns_pod/c/0.log",  # no uid
        "ns_pod_uid_x/c/0.log",
        "ns_pod_uid/c/x.log",
        "ns_pod_uid/0.log",
        "ns_pod_uid/c/d/0.log",
        "NS_pod_uid/c/0.log",  # not a namespace name
    ],
)
def test_path_labels_refuse_what_is_not_a_container_log(rest: str) -> None:
    assert pods.path_labels(ROOT, f"{ROOT}/{rest}") is None
    assert pods.path_labels(ROOT, f"/elsewhere/{rest}") is None


def test_parse_line_reads_the_four_cri_fields() -> None:
    assert pods.parse_line(f"{T1} stdout F hello world".encode()) == (T1, "stdout", True, b"hello world")
    assert pods.parse_line(f"{T1} stderr P  two  spaces ".encode()) == (T1, "stderr", False, b" two  spaces ")
    # an empty line of the container, and a tag with more after ':'
    assert pods.parse_line(f"{T1} stdout F".encode()) == (T1, "stdout", True, b"")
    assert pods.parse_line(f"{T1} stdout F:x msg".encode()) == (T1, "stdout", True, b"msg")
    assert pods.parse_line(b"2026-12-05T00:17:09+01:00 stdout F m") == (
        "2026-12-05T00:17:09+01:00",
        "stdout",
        True,
        b"m",
    )


@pytest.mark.parametrize(
    "line",
    [
        b"",
        b"hello",
        f"{T1} stdin F m".encode(),
        f"{T1} stdout X m".encode(),
        b"2026-12-05 stdout F m",
        b"yesterday stdout F m",
    ],
)
def test_parse_line_refuses_what_is_not_cri(line: bytes) -> None:
    assert pods.parse_line(line) is None


def test_joiner_joins_partial_chunks_per_stream_and_keeps_the_first_time() -> None:
    j = pods.Joiner()
    assert j.feed((T1, "stdout", False, b"abc"), 0, 40) is None
    assert j.feed((T1, "stderr", False, b"err-"), 40, 80) is None
    # stdout finishes first: a restart must go back to stderr's unfinished line at 40
    assert j.feed((T2, "stdout", True, b"def"), 80, 120) == (T1, "stdout", b"abcdef", 40)
    assert j.resume_offset(120) == 40
    assert j.feed((T2, "stderr", True, b"end"), 120, 160) == (T1, "stderr", b"err-end", 160)
    assert j.feed((T2, "stdout", True, b"whole"), 160, 200) == (T2, "stdout", b"whole", 200)
    assert j.pending == {}


def test_joiner_cuts_a_line_longer_than_its_limit_and_counts_it_once() -> None:
    j = pods.Joiner(max_bytes=5)
    assert j.feed((T1, "stdout", False, b"abcd"), 0, 10) is None
    assert j.feed((T1, "stdout", False, b"efgh"), 10, 20) is None
    assert j.feed((T1, "stdout", True, b"ijkl"), 20, 30) == (T1, "stdout", b"abcde", 30)
    assert j.cut == 1


def test_joiner_flush_ends_the_unfinished_lines_of_a_file_that_is_gone() -> None:
    j = pods.Joiner()
    j.feed((T2, "stdout", False, b"out"), 0, 10)
    j.feed((T1, "stderr", False, b"err"), 10, 20)
    assert j.flush(20) == [(T1, "stderr", b"err", 20), (T2, "stdout", b"out", 20)]
    assert j.pending == {}


@pytest.mark.parametrize(
    ("known", "offset", "inode", "size", "change"),
    [
        (None, 0, 7, 100, "new"),
        (7, 100, 8, 0, "rotated"),  # kubelet renamed 0.log and the runtime opened a new one
        (7, 100, 8, 500, "rotated"),
        (7, 100, 7, 10, "truncated"),  # copytruncate
        (7, 100, 7, 0, "truncated"),
        (7, 100, 7, 150, "grown"),
        (7, 100, 7, 100, "same"),
    ],
)
def test_file_change_tells_rotation_from_truncation(known, offset, inode, size, change) -> None:
    assert pods.file_change(known, offset, inode, size) == change


def test_rotated_name_matches_the_kubelets_uncompressed_copies_only() -> None:
    path = f"{ROOT}/ns_p_u/c/0.log"
    assert pods.rotated_name(path, "0.log.20261205-001709")
    assert not pods.rotated_name(path, "0.log.20261205-001709.gz")
    assert not pods.rotated_name(path, "0.log.20261205-001709.tmp")
    assert not pods.rotated_name(path, "0.log")
    assert not pods.rotated_name(path, "10.log.20261205-001709")


def test_offsets_round_trip_and_forget_files_no_longer_followed() -> None:
    o = pods.Offsets()
    o.set(12, "/p/a/c/0.log", 300)
    o.set(5, "/p/b/c/0.log", 40)
    text = o.dumps()
    assert json.loads(text) == {
        "files": {"12": {"path": "/p/a/c/0.log", "offset": 300}, "5": {"path": "/p/b/c/0.log", "offset": 40}}
    }
    again = pods.Offsets.loads(text, "/state.json")
    assert again.get(12) == {"path": "/p/a/c/0.log", "offset": 300}
    again.keep_only({5})
    assert again.entries == {5: {"path": "/p/b/c/0.log", "offset": 40}}
    assert pods.Offsets.loads("", "/s").entries == {}


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[1]", "state file /s.json: expected an object with 'files'"),
        (
            '{"files": {"x": {"path": "/p", "offset": 1}}}',
            "state file /s.json: invalid literal for int() with base 10: 'x'",
        ),
        (
            "{",
            "state file /s.json: Expecting property name enclosed in double quotes: line 1 column 2 (char 1)",
        ),
    ],
)
def test_a_bad_state_file_is_named(text: str, message: str) -> None:
    with pytest.raises(pods.PodLogsError) as e:
        pods.Offsets.loads(text, "/s.json")
    assert str(e.value) == message


def test_buffer_drops_the_oldest_beyond_its_bound_and_returns_their_positions() -> None:
    b = pods.Buffer(3)
    for i in range(5):
        b.add(f"r{i}".encode(), ("pos", i))
    assert len(b) == 3
    assert b.dropped == 2
    assert [body for body, _p in b.peek(10)] == [b"r2", b"r3", b"r4"]
    assert b.take(2) == [("pos", 0), ("pos", 1), ("pos", 2), ("pos", 3)]
    assert [body for body, _p in b.items] == [b"r4"]
    assert b.take_dropped() == []
    with pytest.raises(pods.PodLogsError, match=r"^--buffer-records=0: expected at least 1$"):
        pods.Buffer(0)


def test_buffer_drops_the_oldest_beyond_its_bytes_but_keeps_the_newest_record() -> None:
    b = pods.Buffer(100, max_bytes=10)
    b.add(b"aaaa", 1)
    b.add(b"bbbb", 2)
    assert (b.bytes, b.dropped) == (8, 0)
    b.add(b"cccc", 3)  # 12 bytes: the oldest goes
    assert ([body for body, _p in b.items], b.bytes, b.dropped) == ([b"bbbb", b"cccc"], 8, 1)
    b.add(b"x" * 50, 4)  # alone over the bound: kept, everything older dropped
    assert ([body for body, _p in b.items], b.bytes, b.dropped) == ([b"x" * 50], 50, 3)
    assert b.take(1) == [1, 2, 3, 4]
    assert (len(b), b.bytes) == (0, 0)
    with pytest.raises(pods.PodLogsError, match=r"^--buffer-bytes=0: expected at least 1$"):
        pods.Buffer(1, max_bytes=0)


def test_insert_url_names_the_stream_time_and_message_fields() -> None:
    assert pods.insert_url("http://10.0.0.1:9428/") == (
        "http://10.0.0.1:9428/insert/jsonline"
        "?_stream_fields=datacenter,cluster,node,namespace,pod,container&_time_field=_time&_msg_field=_msg"
    )
    with pytest.raises(pods.PodLogsError) as e:
        pods.insert_url("http://10.0.0.1:9428/insert")
    assert (
        str(e.value)
        == "--store-url='http://10.0.0.1:9428/insert': expected http(s)://host[:port] without a path"
    )


def test_labels_are_checked_and_an_empty_cluster_left_out() -> None:
    assert pods.labels("lab1", "lab1-k8s", "lab1-n1") == {
        "datacenter": "lab1",
        "cluster": "lab1-k8s",
        "node": "lab1-n1",
    }
    assert pods.labels("lab1", "", "lab1-n1") == {"datacenter": "lab1", "node": "lab1-n1"}
    with pytest.raises(pods.PodLogsError) as e:
        pods.labels("lab1", "a,b", "n")
    assert str(e.value) == "--cluster='a,b': not a DNS-label-like value"


def test_record_line_is_one_json_line_with_the_six_labels() -> None:
    line = pods.record_line(
        {"datacenter": "lab1", "cluster": "c1", "node": "n1"},
        {"namespace": "ns", "pod": "p", "uid": "u", "container": "c"},
        T1,
        "stderr",
        'grüße "q"\n'.encode() + b"\xff",
    )
    assert line.endswith(b"\n")
    assert line.count(b"\n") == 1
    assert json.loads(line) == {
        "_time": T1,
        "_msg": 'grüße "q"\n\ufffd',
        "stream": "stderr",
        "datacenter": "lab1",
        "cluster": "c1",
        "node": "n1",
        "namespace": "ns",
        "pod": "p",
        "container": "c",
    }


def test_retry_delay_doubles_up_to_its_cap() -> None:
    assert [pods.retry_delay(n, 0.5, 3.0) for n in range(6)] == [0.0, 0.5, 1.0, 2.0, 3.0, 3.0]
    assert pods.retry_delay(10_000, 1.0, 30.0) == 30.0
