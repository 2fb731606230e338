# -*- coding: utf-8 -*-
"""cloud58-crashkeeper's pure part: the annotation, the budget, the layout, retention."""

from __future__ import annotations

import datetime

import pytest

from ansible_collections.cloud58.platform.plugins.module_utils.node import crash
from ansible_collections.cloud58.platform.plugins.module_utils.node.crash import Budget, Policy, Site

POD = "shop/shop-7d9c-abcde"
GIB = 1 << 30


# -- the annotation ------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("annotations", "expected"),
    [
        pytest.param({}, None, id="no-annotation-no-policy"),
        pytest.param({"kubernetes.io/ingress-bandwidth": "10M"}, None, id="other-annotations-only"),
        pytest.param(
            {crash.ANNOTATION: '{"app":"shop","dump":["jcmd","1","Thread.print"],"keep":3,"timeout_s":60}'},
            Policy(app="shop", dump=("jcmd", "1", "Thread.print"), timeout_s=60, keep=3),
            id="rendered",
        ),
        pytest.param(
            {crash.ANNOTATION: '{"dump":["true"]}'},
            Policy(app="shop-7d9c-abcde", dump=("true",), timeout_s=60, keep=3),
            id="defaults-app-from-pod",
        ),
    ],
)
def test_policy_from_annotations(annotations, expected):
    assert crash.policy(POD, annotations) == expected


def test_rendered_annotation_reads_back():
    annotations = crash.spec_annotations(
        "shop", {"dump": ["sh", "-c", "cat /tmp/heap"], "timeout_s": 9, "keep": 2}
    )
    assert crash.policy(POD, annotations) == Policy(
        app="shop", dump=("sh", "-c", "cat /tmp/heap"), timeout_s=9, keep=2
    )


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        pytest.param("jcmd 1", "'jcmd 1' is not JSON", id="not-json"),
        pytest.param('["jcmd"]', "'[\"jcmd\"]' is not a JSON object", id="not-object"),
        pytest.param(
            '{"dump":"jcmd 1 Thread.print"}',
            "dump: 'jcmd 1 Thread.print' is not a non-empty list of arguments (argv)",
            id="dump-not-a-list",
        ),
        pytest.param('{"dump":[]}', "dump: [] is not a non-empty list of arguments (argv)", id="dump-empty"),
        pytest.param(
            '{"dump":["a",""]}', "dump: ['a', ''] is not a non-empty list of arguments (argv)", id="empty-arg"
        ),
        pytest.param(
            '{"timeout_s":5}', "dump: None is not a non-empty list of arguments (argv)", id="no-dump"
        ),
        pytest.param(
            '{"dump":["true"],"timeout_s":0}',
            "timeout_s: 0 is not an integer from 1 to 3600",
            id="timeout-zero",
        ),
        pytest.param(
            '{"dump":["true"],"timeout_s":true}',
            "timeout_s: True is not an integer from 1 to 3600",
            id="timeout-bool",
        ),
        pytest.param(
            '{"dump":["true"],"keep":101}', "keep: 101 is not an integer from 1 to 100", id="keep-101"
        ),
        pytest.param('{"dump":["true"],"app":""}', "app: '' is not a name", id="app-empty"),
    ],
)
def test_bad_annotation_names_pod_annotation_and_value(raw, message):
    with pytest.raises(crash.CrashError) as info:
        crash.policy(POD, {crash.ANNOTATION: raw})
    assert str(info.value) == f"pod {POD}: annotation cloud58.io/crash: {message}"


# -- the budget ----------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("budget", "total", "message"),
    [
        pytest.param(Budget(20, 10 * GIB, 5 * GIB), 15 * GIB, None, id="exactly-the-disk"),
        pytest.param(Budget(1, 1, 0), 1, None, id="smallest"),
        pytest.param(
            Budget(20, 10 * GIB, 5 * GIB + 1),
            15 * GIB,
            "--max-bytes: 10737418240 plus --min-free-bytes 5368709121 is larger than the disk under "
            "/var/lib/cloud58/crash (16106127360 bytes)",
            id="one-byte-too-many",
        ),
        pytest.param(
            Budget(20, 2 << 40, 0),
            GIB,
            "--max-bytes: 2199023255552 plus --min-free-bytes 0 is larger than the disk under "
            "/var/lib/cloud58/crash (1073741824 bytes)",
            id="budget-larger-than-disk",
        ),
        pytest.param(Budget(0, GIB, 0), 2 * GIB, "--max-sites: 0 is not a positive integer", id="no-sites"),
        pytest.param(
            Budget(5, -1, 0), 2 * GIB, "--max-bytes: -1 is not a positive integer", id="negative-bytes"
        ),
        pytest.param(
            Budget(5, GIB, -1), 2 * GIB, "--min-free-bytes: -1 is not a positive integer", id="negative-floor"
        ),
    ],
)
def test_check_budget(budget, total, message):
    if message is None:
        assert crash.check_budget(budget, crash.DEFAULT_ROOT, total) is None
    else:
        with pytest.raises(crash.CrashError) as info:
            crash.check_budget(budget, crash.DEFAULT_ROOT, total)
        assert str(info.value) == message


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        pytest.param("10G", 10737418240, id="gib"),
        pytest.param("512M", 536870912, id="mib"),
        pytest.param("1.5GiB", 1610612736, id="fraction-and-suffix"),
        pytest.param(" 2 kb ", 2048, id="lower-case-and-spaces"),
        pytest.param("4096", 4096, id="bare-bytes"),
        pytest.param(4096, 4096, id="an-integer"),
        pytest.param("1P", 1125899906842624, id="pib"),
    ],
)
def test_parse_size(value, expected):
    assert crash.parse_size(value, "--max-bytes") == expected


@pytest.mark.parametrize(
    "value",
    [
        pytest.param("10Mbit/s", id="a-rate"),
        pytest.param("-1", id="negative-text"),
        pytest.param(-1, id="negative-integer"),
        pytest.param("inf", id="infinite"),
        pytest.param("G", id="no-number"),
        pytest.param("10X", id="unknown-unit"),
        pytest.param(True, id="a-boolean"),
        pytest.param(None, id="none"),
    ],
)
def test_parse_size_refuses_what_is_not_a_size(value):
    with pytest.raises(crash.CrashError) as info:
        crash.parse_size(value, "node_agents_crashkeeper_max_bytes")
    assert str(info.value) == (
        f"node_agents_crashkeeper_max_bytes: {value!r} is not a size in bytes (like 10G, 512M)"
    )


def test_check_budget_names_the_figures_as_told():
    names = ("sites_var", "bytes_var", "free_var")
    with pytest.raises(crash.CrashError) as info:
        crash.check_budget(Budget(20, GIB, GIB), "/crash", GIB, names)
    assert str(info.value) == (
        "bytes_var: 1073741824 plus free_var 1073741824 is larger than the disk under /crash "
        "(1073741824 bytes)"
    )


# -- the layout ----------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("when", "expected"),
    [
        pytest.param(
            datetime.datetime(2026, 12, 4, 17, 5, 9, 250, tzinfo=datetime.UTC),
            "/var/lib/cloud58/crash/shop_shop-7d9c-abcde/20261204T170509.000250Z",
            id="utc",
        ),
        pytest.param(
            datetime.datetime(
                2026, 12, 5, 1, 5, 9, 250, tzinfo=datetime.timezone(datetime.timedelta(hours=8))
            ),
            "/var/lib/cloud58/crash/shop_shop-7d9c-abcde/20261204T170509.000250Z",
            id="beijing-time-to-utc",
        ),
    ],
)
def test_site_path(when, expected):
    assert crash.site_path("/var/lib/cloud58/crash/", "shop", "shop-7d9c-abcde", when) == expected


def test_site_path_refuses_naive_time():
    with pytest.raises(crash.CrashError) as info:
        crash.site_path("/r", "ns", "p", datetime.datetime(2026, 12, 4, 17, 5, 9))
    assert str(info.value) == "site time 2026-12-04T17:05:09 has no time zone"


def test_manifest():
    files = [("logs", 10, "b" * 64), ("dump", 100, "a" * 64)]
    assert crash.manifest(
        POD, "app", exit_code=137, started="t0", finished="t1", files=files, app="shop"
    ) == {
        "pod": POD,
        "container": "app",
        "exit_code": 137,
        "started": "t0",
        "finished": "t1",
        "files": [
            {"name": "dump", "size": 100, "sha256": "a" * 64},
            {"name": "logs", "size": 10, "sha256": "b" * 64},
        ],
        "bytes": 110,
        "app": "shop",
    }


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("20261204T170509.000250Z", True),
        ("20261204T170509Z", False),
        ("20261204T170509.000250", False),
        ("manifest.json", False),
    ],
)
def test_is_site_time(name, expected):
    assert crash.is_site_time(name) is expected


# -- retention -----------------------------------------------------------------------------
def _site(n: int, size: int, app: str = "shop") -> Site:
    return Site(
        path=f"/c/ns_p{n}/2026120{n}T000000.000000Z", app=app, time=f"2026120{n}T000000.000000Z", size=size
    )


S1, S2, S3, S4 = _site(1, 40), _site(2, 30), _site(3, 20, "cart"), _site(4, 10)


@pytest.mark.parametrize(
    ("sites", "budget", "free", "keep", "incoming", "expected"),
    [
        pytest.param([S1, S2, S3, S4], Budget(4, 100, 0), 1000, None, 0, [], id="within-everything"),
        pytest.param([S4, S2, S1, S3], Budget(3, 100, 0), 1000, None, 0, [S1], id="count-oldest-first"),
        pytest.param([S1, S2, S3, S4], Budget(4, 100, 0), 1000, None, 1, [S1], id="count-with-incoming"),
        pytest.param([S1, S2, S3, S4], Budget(10, 59, 0), 1000, None, 0, [S1, S2], id="bytes-oldest-first"),
        pytest.param([S1, S2, S3, S4], Budget(10, 60, 0), 1000, None, 0, [S1], id="bytes-exactly-at-budget"),
        pytest.param([S1, S2, S3, S4], Budget(10, 100, 500), 430, None, 0, [S1, S2], id="free-floor"),
        pytest.param([S1, S2, S3, S4], Budget(10, 100, 500), 460, None, 0, [S1], id="free-exactly-at-floor"),
        pytest.param([S1, S2, S3, S4], Budget(10, 1000, 500), 560, None, 100, [S1], id="floor-with-incoming"),
        pytest.param([S1, S2, S3, S4], Budget(10, 100, 0), 1000, {"shop": 1}, 0, [S1, S2], id="keep-per-app"),
        pytest.param(
            [S1, S2, S3, S4],
            Budget(2, 100, 0),
            1000,
            {"shop": 2},
            0,
            [S1, S2],
            id="keep-then-count-oldest-of-any-app",
        ),
        pytest.param(
            [S1, S2, S3, S4], Budget(10, 5, 0), 1000, None, 0, [S1, S2, S3, S4], id="everything-goes"
        ),
        pytest.param([], Budget(1, 5, 0), 1000, None, 0, [], id="no-sites"),
    ],
)
def test_plan_retention(sites, budget, free, keep, incoming, expected):  # noqa: PLR0917
    assert crash.plan_retention(sites, budget, free, keep, incoming) == expected


@pytest.mark.parametrize(
    ("free", "incoming", "expected"),
    [(1000, 100, True), (1000, 101, False), (600, 100, True), (599, 100, False)],
    ids=["fits", "above-max-bytes", "exactly-at-floor", "below-floor"],
)
def test_fits(free, incoming, expected):
    assert crash.fits(Budget(10, 100, 500), free, incoming) is expected


# -- runtime and API -----------------------------------------------------------------------
def test_upperdir_from_ctr_snapshot_mounts():
    text = (
        "mount -t overlay overlay /tmp/x -o index=off,"
        "workdir=/var/lib/containerd/io.containerd.snapshotter.v1.overlayfs/snapshots/12/work,"
        "upperdir=/var/lib/containerd/io.containerd.snapshotter.v1.overlayfs/snapshots/12/fs,"
        "lowerdir=/var/lib/containerd/io.containerd.snapshotter.v1.overlayfs/snapshots/3/fs\n"
    )
    assert (
        crash.upperdir(text) == "/var/lib/containerd/io.containerd.snapshotter.v1.overlayfs/snapshots/12/fs"
    )


def test_upperdir_missing():
    with pytest.raises(crash.CrashError) as info:
        crash.upperdir("mount --bind /a /b\n")
    assert str(info.value) == "no upperdir in the snapshot's mounts: 'mount --bind /a /b'"


@pytest.mark.parametrize(
    ("exit_code", "how"),
    [(1, "failed (exit code 1)"), (0, "failed (exit code 0)"), (None, "was failing (still running)")],
    ids=["exited-1", "exited-0", "running"],
)
def test_failed_status(exit_code, how):
    now = datetime.datetime(2026, 12, 4, 17, 5, 9, tzinfo=datetime.UTC)
    message = f"container app {how}; crash site /c/x; veth cali0 taken down by cloud58-crashkeeper"
    assert crash.failed_status("app", exit_code, "/c/x", now, "cali0") == {
        "status": {
            "phase": "Failed",
            "reason": "CrashPreserved",
            "message": message,
            "conditions": [
                {
                    "type": "Ready",
                    "status": "False",
                    "reason": "CrashPreserved",
                    "message": message,
                    "lastTransitionTime": "2026-12-04T17:05:09Z",
                },
                {
                    "type": "cloud58.io/CrashPreserved",
                    "status": "True",
                    "reason": "CrashPreserved",
                    "message": message,
                    "lastTransitionTime": "2026-12-04T17:05:09Z",
                },
            ],
        }
    }


# -- containerd ----------------------------------------------------------------------------
_TS = "2026-12-04 17:33:54.712819494 +0000 UTC"


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        pytest.param(
            f'{_TS} k8s.io /tasks/exit {{"container_id":"c1","id":"c1","pid":6462,"exit_status":137,'
            '"exited_at":"2026-12-04T17:33:54.712743602Z"}\n',
            crash.Exit("k8s.io", "c1", 137, False),
            id="main-process-exit",
        ),
        pytest.param(
            f'{_TS} k8s.io /tasks/exit {{"container_id":"c1","id":"c1","pid":6462,"exited_at":"x"}}',
            crash.Exit("k8s.io", "c1", 0, False),
            id="exit-status-0-left-out",
        ),
        pytest.param(
            f'{_TS} k8s.io /tasks/exit {{"container_id":"c1","id":"d1","pid":6730,"exited_at":"x"}}',
            None,
            id="exec-exit-ignored",
        ),
        pytest.param(
            f'{_TS} k8s.io /tasks/oom {{"container_id":"c1"}}',
            crash.Exit("k8s.io", "c1", None, True),
            id="oom",
        ),
        pytest.param(f'{_TS} k8s.io /tasks/start {{"container_id":"c1","pid":6462}}', None, id="other-topic"),
        pytest.param(f"{_TS} k8s.io /tasks/exit {{not json}}", None, id="bad-json"),
        pytest.param("garbage", None, id="not-an-event"),
    ],
)
def test_parse_event(line, expected):
    assert crash.parse_event(line) == expected


@pytest.mark.parametrize(
    ("labels", "expected"),
    [
        pytest.param(
            {
                "io.kubernetes.pod.namespace": "shop",
                "io.kubernetes.pod.name": "shop-1",
                "io.kubernetes.container.name": "app",
                "io.cri-containerd.kind": "container",
            },
            ("shop", "shop-1", "app"),
            id="container",
        ),
        pytest.param(
            {
                "io.kubernetes.pod.namespace": "shop",
                "io.kubernetes.pod.name": "shop-1",
                "io.kubernetes.container.name": "POD",
                "io.cri-containerd.kind": "sandbox",
            },
            None,
            id="sandbox",
        ),
        pytest.param({"io.kubernetes.pod.name": "shop-1"}, None, id="not-from-the-cri"),
    ],
)
def test_pod_of(labels, expected):
    assert crash.pod_of(labels) == expected


def test_task_states():
    text = "TASK    PID     STATUS    \nc1      6462    RUNNING\nc2      0       STOPPED\n"
    assert crash.task_states(text) == {"c1": (6462, "RUNNING"), "c2": (0, "STOPPED")}


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        pytest.param(
            {"linux": {"namespaces": [{"type": "pid"}, {"type": "network", "path": "/var/run/netns/cni-1"}]}},
            "/var/run/netns/cni-1",
            id="cri-path",
        ),
        pytest.param({"linux": {"namespaces": [{"type": "network"}]}}, None, id="own-netns-no-path"),
        pytest.param({}, None, id="no-linux"),
    ],
)
def test_network_namespace(spec, expected):
    assert crash.network_namespace(spec) == expected


ENTRIES = [("work/state", "f", 6), ("work", "d", 0), ("core.42", "f", 9), ("etc/passwd", "deleted", 0)]


def test_listing():
    assert crash.listing(ENTRIES) == "f\t9\tcore.42\ndeleted\t0\tetc/passwd\nd\t0\twork\nf\t6\twork/state\n"


@pytest.mark.parametrize(
    ("entries", "expected"),
    [
        pytest.param(ENTRIES, ["core.42"], id="core-pid"),
        pytest.param(
            [("tmp/core", "f", 1), ("core", "d", 0), ("core.x", "f", 1)], ["tmp/core"], id="file-only"
        ),
        pytest.param([("corefile", "f", 1)], [], id="not-a-core"),
    ],
)
def test_core_files(entries, expected):
    assert crash.core_files(entries) == expected


@pytest.mark.parametrize(
    ("dump", "outcome"),
    [
        pytest.param("completed, exit status 0", "completed", id="completed"),
        pytest.param("completed, exit status 3", "completed", id="completed-nonzero"),
        pytest.param("stopped after its time limit of 5s", "stopped", id="time-limit"),
        pytest.param(
            "stopped at 10 bytes: the budget or the free-space floor is reached", "stopped", id="budget"
        ),
        pytest.param(
            "not run: the container's task is stopped (nothing left to exec into)", "not_run", id="exited"
        ),
    ],
)
def test_dump_outcome(dump, outcome):
    assert crash.dump_outcome(dump) == outcome


def _unhealthy(**changes) -> dict:
    """A core/v1 Event as the kubelet of node lab1-w1 posts it for a failed liveness probe."""
    event = {
        "metadata": {"name": "shop-7d9c-abcde.18a2f", "namespace": "shop", "resourceVersion": "4711"},
        "involvedObject": {
            "kind": "Pod",
            "namespace": "shop",
            "name": "shop-7d9c-abcde",
            "uid": "0c4f",
            "apiVersion": "v1",
            "fieldPath": "spec.containers{app}",
        },
        "reason": "Unhealthy",
        "message": "Liveness probe failed: dial tcp 198.18.64.5:8080: connect: connection refused",
        "source": {"component": "kubelet", "host": "lab1-w1"},
        "type": "Warning",
        "count": 1,
    }
    for key, value in changes.items():
        section, separator, name = key.partition("__")
        if separator:
            event[section] = {**event[section], name: value}
        else:
            event[section] = value
    return event


@pytest.mark.parametrize(
    ("event", "expected"),
    [
        pytest.param(
            _unhealthy(),
            crash.ProbeFailure(
                "shop",
                "shop-7d9c-abcde",
                "app",
                "Liveness probe failed: dial tcp 198.18.64.5:8080: connect: connection refused",
            ),
            id="liveness-failed",
        ),
        pytest.param(
            _unhealthy(count=7, message="Liveness probe failed: HTTP probe failed with statuscode: 500"),
            crash.ProbeFailure(
                "shop",
                "shop-7d9c-abcde",
                "app",
                "Liveness probe failed: HTTP probe failed with statuscode: 500",
            ),
            id="a-repeat-counted-on-the-same-event",
        ),
        pytest.param(_unhealthy(message="Readiness probe failed: connection refused"), None, id="readiness"),
        pytest.param(_unhealthy(message="Startup probe failed: connection refused"), None, id="startup"),
        pytest.param(_unhealthy(message="Liveness probe errored: rpc error"), None, id="errored"),
        pytest.param(_unhealthy(source__host="lab1-w2"), None, id="another-node"),
        pytest.param(_unhealthy(source__component="kube-controller-manager"), None, id="not-the-kubelet"),
        pytest.param(_unhealthy(reason="BackOff"), None, id="another-reason"),
        pytest.param(_unhealthy(involvedObject__kind="Node"), None, id="not-a-pod"),
        pytest.param(
            _unhealthy(involvedObject__fieldPath="spec.initContainers{init}"), None, id="init-container"
        ),
        pytest.param(_unhealthy(involvedObject__fieldPath=""), None, id="no-container"),
        pytest.param({}, None, id="empty"),
    ],
)
def test_probe_failure(event, expected):
    assert crash.probe_failure(event, "lab1-w1") == expected


def test_container_filter_quotes_each_value():
    assert crash.container_filter("shop", "shop-7d9c-abcde", "app") == (
        'labels."io.kubernetes.pod.namespace"=="shop",'
        'labels."io.kubernetes.pod.name"=="shop-7d9c-abcde",'
        'labels."io.kubernetes.container.name"=="app"'
    )


def test_counts_record_live_dumps_and_the_exits_that_complete_them():
    counts = crash.Counts()
    live = "Liveness probe failed: connection refused"
    counts.record({"liveness": live, "site": "/s/1", "manifest": {"dump": "completed, exit status 0"}})
    counts.record({"liveness": live, "skipped": "dumped already at an earlier failure"})
    counts.record(
        {
            "site": "/s/1",
            "manifest": {"dump": "completed, exit status 0"},
            "pod_failed": "Failed",
            "completed_live_site": True,
        }
    )
    assert (counts.probes, counts.exits, counts.dumps, counts.marks) == (
        {"dumped": 1, "skipped": 1, "failed": 0},
        {"captured": 1, "skipped": 0, "failed": 0},
        {"completed": 1, "stopped": 0, "not_run": 0},  # one dump: the live one
        {"failed": 1, "not_marked": 0, "marked_again": 0},
    )


def test_counts_record_each_kind_of_capture_result():
    counts = crash.Counts()
    counts.record({"container_id": "c1", "skipped": "not a container of a pod"})
    counts.record({"site": "/s/1", "manifest": {"dump": "completed, exit status 0"}, "pod_failed": "Failed"})
    counts.record(
        {"site": "/s/2", "manifest": {"dump": "stopped after its time limit of 5s"}, "pod_failed": None}
    )
    counts.record(
        {
            "site": "/s/3",
            "manifest": {"dump": "not run: the container's task is stopped (nothing left to exec into)"},
            "pod_failed": "not marked: the API server says 403 Forbidden",
        }
    )
    assert (counts.exits, counts.dumps, counts.marks) == (
        {"captured": 3, "skipped": 1, "failed": 0},
        {"completed": 1, "stopped": 1, "not_run": 1},
        {"failed": 1, "not_marked": 1, "marked_again": 0},
    )


@pytest.mark.parametrize(
    ("seconds", "delays"),
    [
        (0, []),
        (1, [1]),
        (2, [1]),
        (3, [1, 2]),
        (30, [1, 2, 4, 8, 15]),
        (60, [1, 2, 4, 8, 15, 15, 15]),
    ],
)
def test_guard_delays(seconds, delays):
    assert crash.guard_delays(seconds) == delays


def test_metrics_text():
    counts = crash.Counts(
        exits={"captured": 3, "skipped": 5, "failed": 1},
        dumps={"completed": 2, "stopped": 0, "not_run": 1},
        marks={"failed": 3, "not_marked": 0, "marked_again": 1},
        probes={"dumped": 1, "skipped": 6, "failed": 0},
        deleted=2,
        last_capture=1796400000.1234,
    )
    assert crash.metrics_text(counts, 4, 123456, Budget(20, 10 * GIB, 2 * GIB)) == (
        "# HELP cloud58_crashkeeper_exits_total Container exits seen: captured, skipped "
        "(not opted in, not a pod's) or failed (an error).\n"
        "# TYPE cloud58_crashkeeper_exits_total counter\n"
        'cloud58_crashkeeper_exits_total{result="captured"} 3\n'
        'cloud58_crashkeeper_exits_total{result="skipped"} 5\n'
        'cloud58_crashkeeper_exits_total{result="failed"} 1\n'
        "# HELP cloud58_crashkeeper_liveness_failures_total Failed liveness probes the kubelet reported "
        "on this node: dumped live, skipped (not opted in, dumped already, no running task) or failed "
        "(an error).\n"
        "# TYPE cloud58_crashkeeper_liveness_failures_total counter\n"
        'cloud58_crashkeeper_liveness_failures_total{result="dumped"} 1\n'
        'cloud58_crashkeeper_liveness_failures_total{result="skipped"} 6\n'
        'cloud58_crashkeeper_liveness_failures_total{result="failed"} 0\n'
        "# HELP cloud58_crashkeeper_dumps_total Dump commands by outcome: completed, stopped "
        "(time limit or budget), not_run (exited).\n"
        "# TYPE cloud58_crashkeeper_dumps_total counter\n"
        'cloud58_crashkeeper_dumps_total{outcome="completed"} 2\n'
        'cloud58_crashkeeper_dumps_total{outcome="stopped"} 0\n'
        'cloud58_crashkeeper_dumps_total{outcome="not_run"} 1\n'
        "# HELP cloud58_crashkeeper_pod_marks_total Pods marked Failed through the API server, "
        "those the API server refused, and marked pods marked again after the kubelet wrote an "
        "older phase over the mark.\n"
        "# TYPE cloud58_crashkeeper_pod_marks_total counter\n"
        'cloud58_crashkeeper_pod_marks_total{result="failed"} 3\n'
        'cloud58_crashkeeper_pod_marks_total{result="not_marked"} 0\n'
        'cloud58_crashkeeper_pod_marks_total{result="marked_again"} 1\n'
        "# HELP cloud58_crashkeeper_sites_deleted_total Crash sites deleted to stay within the budget.\n"
        "# TYPE cloud58_crashkeeper_sites_deleted_total counter\n"
        "cloud58_crashkeeper_sites_deleted_total 2\n"
        "# HELP cloud58_crashkeeper_sites Crash sites kept on the node now.\n"
        "# TYPE cloud58_crashkeeper_sites gauge\n"
        "cloud58_crashkeeper_sites 4\n"
        "# HELP cloud58_crashkeeper_bytes Bytes of the crash sites kept now.\n"
        "# TYPE cloud58_crashkeeper_bytes gauge\n"
        "cloud58_crashkeeper_bytes 123456\n"
        "# HELP cloud58_crashkeeper_budget_sites At most this many sites.\n"
        "# TYPE cloud58_crashkeeper_budget_sites gauge\n"
        "cloud58_crashkeeper_budget_sites 20\n"
        "# HELP cloud58_crashkeeper_budget_bytes At most this many bytes.\n"
        "# TYPE cloud58_crashkeeper_budget_bytes gauge\n"
        "cloud58_crashkeeper_budget_bytes 10737418240\n"
        "# HELP cloud58_crashkeeper_last_capture_timestamp_seconds When the last crash site was written "
        "(Unix time).\n"
        "# TYPE cloud58_crashkeeper_last_capture_timestamp_seconds gauge\n"
        "cloud58_crashkeeper_last_capture_timestamp_seconds 1796400000.123\n"
    )
