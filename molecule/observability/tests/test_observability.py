"""Verify node-exporter, the log store, the shippers and Prometheus of the observability
scenario (testinfra).

Every HTTP request is made inside the containers (python3 of the node image) to the services
the roles started; nothing leaves them.
"""

from __future__ import annotations

import json
import shlex
import time
import uuid

import pytest
import testinfra

M1 = testinfra.get_host("podman://mol-obs-m1")
W1 = testinfra.get_host("podman://mol-obs-w1")
NODES = [pytest.param(M1, "mol-obs-m1", id="m1"), pytest.param(W1, "mol-obs-w1", id="w1")]
STORE = "http://127.0.0.1:9428"
PROMETHEUS = "http://127.0.0.1:9090"
# How long a shipped line or a first scrape may take before the test gives up and says what it
# waited for (the services take about a second; the bound only ends a broken run).
PATIENCE_S = 120

# Prints the status line and then the body of one request (POST when a body is given).
_FETCH = """\
import sys, urllib.error, urllib.request
data = sys.argv[2].encode() if len(sys.argv) > 2 else None
try:
    r = urllib.request.urlopen(sys.argv[1], data=data, timeout=30)
except urllib.error.HTTPError as e:
    r = e
print(r.status)
sys.stdout.write(r.read().decode())
"""


def _fetch(host, url: str, data: str | None = None) -> tuple[int, str]:
    args = [url] if data is None else [url, data]
    out = host.check_output("python3 -c " + " ".join(shlex.quote(a) for a in [_FETCH, *args]))
    status, _, body = out.partition("\n")
    return int(status), body


def _wait(what: str, probe):
    """``probe()``'s first truthy result; fails naming ``what`` after PATIENCE_S."""
    deadline = time.monotonic() + PATIENCE_S
    while True:
        result = probe()
        if result:
            return result
        if time.monotonic() > deadline:
            pytest.fail(f"gave up waiting for {what} after {PATIENCE_S} s")
        time.sleep(1)


def _store_address() -> str:
    # The address the shippers were given: the master's on podman's network (converge.yml).
    return next(a for a in M1.interface("eth0").addresses if ":" not in a)


def _logsql(query: str) -> list[dict]:
    status, body = _fetch(M1, f"{STORE}/select/logsql/query", f"query={query}")
    assert status == 200, body
    return [json.loads(line) for line in body.splitlines() if line.strip()]


# ---- node-exporter -------------------------------------------------------------------------
@pytest.mark.parametrize(("host", "name"), NODES)
def test_node_exporter_runs_with_the_roles_flags(host, name):
    service = host.service("prometheus-node-exporter")
    assert (service.is_enabled, service.is_running) == (True, True)
    defaults = host.file("/etc/default/prometheus-node-exporter").content_string
    assert [line for line in defaults.splitlines() if line.startswith("ARGS=")] == [
        'ARGS="--web.listen-address=:9100 --collector.textfile.directory=/var/lib/prometheus/node-exporter '
        '--web.disable-exporter-metrics"'
    ]


@pytest.mark.parametrize(("host", "name"), NODES)
def test_node_exporter_serves_a_textfile_series_and_not_its_own(host, name):
    """A *.prom file in the textfile directory (the agents' way in) is served at the next scrape;
    the operator's extra flag has dropped the exporter's own process_* series."""
    value = uuid.uuid4().int % 1000
    probe = "/var/lib/prometheus/node-exporter/molecule.prom"
    host.check_output(
        f"printf 'cloud58_molecule_probe %d\\n' {value} > {probe}.tmp && mv {probe}.tmp {probe}"
    )
    try:
        status, body = _fetch(host, "http://127.0.0.1:9100/metrics")
        assert status == 200
        lines = body.splitlines()
        assert f"cloud58_molecule_probe {value}" in lines
        assert [line for line in lines if line.startswith("node_uname_info{")] != []
        assert [line for line in lines if line.startswith("process_start_time_seconds")] == []
    finally:
        host.check_output(f"rm -f {probe}")


# ---- log store ----------------------------------------------------------------------------


def test_log_store_runs_with_the_flags_of_its_unit():
    service = M1.service("victoria-logs.service")
    assert service.is_enabled
    assert service.is_running
    unit = M1.file("/etc/systemd/system/victoria-logs.service").content_string
    exec_start = next(line for line in unit.splitlines() if line.startswith("ExecStart="))
    argv = [
        "/usr/local/bin/victoria-logs",
        "-storageDataPath=/var/lib/victoria-logs",
        "-httpListenAddr=0.0.0.0:9428",
        "-retentionPeriod=7d",
        "-retention.maxDiskSpaceUsageBytes=1073741824",
    ]
    assert shlex.split(exec_start.removeprefix("ExecStart=")) == argv
    pid = M1.check_output("systemctl show -p MainPID --value victoria-logs.service")
    assert M1.file(f"/proc/{pid}/cmdline").content.split(b"\0")[:-1] == [a.encode() for a in argv]
    assert _fetch(M1, f"{STORE}/health") == (200, "OK")


# ---- shippers -----------------------------------------------------------------------------


@pytest.mark.parametrize(("host", "name"), NODES)
def test_shipper_runs_pointed_at_the_store_with_the_plans_fields(host, name):
    service = host.service("systemd-journal-upload.service")
    assert service.is_enabled
    assert service.is_running
    conf = host.file("/etc/systemd/journal-upload.conf.d/cloud58.conf").content_string.splitlines()
    assert [line for line in conf if not line.startswith("#")] == [
        "[Upload]",
        f"URL=http://{_store_address()}:9428/insert/journald/upload"
        f"?extra_fields=datacenter=obs,cluster=obs-k8s,node={name}&cloud58=",
    ]


@pytest.mark.parametrize(("host", "name"), NODES)
def test_pod_log_shipper_runs(host, name):
    # No kubelet here, so no pod logs: the tests of cloud58-podlogs are tests/network/test_podlogs.py.
    service = host.service("cloud58-podlogs.service")
    assert service.is_enabled, name
    assert service.is_running, name


@pytest.mark.parametrize(("host", "name"), NODES)
def test_a_journal_line_reaches_the_store_with_its_fields(host, name):
    token = f"obs-{uuid.uuid4().hex}"
    host.check_output(f"systemd-cat -t cloud58-obs-test echo {token} shipped")
    records = _wait(f"{token} from {name} in the store", lambda: _logsql(f'"{token}"'))
    assert [
        (r["_msg"], r["SYSLOG_IDENTIFIER"], r["datacenter"], r["cluster"], r["node"]) for r in records
    ] == [(f"{token} shipped", "cloud58-obs-test", "obs", "obs-k8s", name)]


# ---- Prometheus ---------------------------------------------------------------------------


def test_prometheus_is_ready():
    service = M1.service("prometheus.service")
    assert service.is_enabled
    assert service.is_running
    # (check_output drops the body's final newline)
    assert _fetch(M1, f"{PROMETHEUS}/-/ready") == (200, "Prometheus Server is Ready.")


def test_prometheus_config_passes_promtool():
    result = M1.run("promtool check config /etc/prometheus/prometheus.yml")
    assert result.rc == 0, result.stdout + result.stderr
    assert "SUCCESS: /etc/prometheus/prometheus.yml is valid prometheus config file syntax" in result.stdout
    assert "Checking /etc/prometheus/rules/cloud58-recording.yml\n  SUCCESS: 4 rules found" in result.stdout
    assert "Checking /etc/prometheus/rules/cloud58-alerts.yml\n  SUCCESS: 11 rules found" in result.stdout
    assert "Checking /etc/prometheus/rules/team-alerts.yml\n  SUCCESS: 1 rules found" in result.stdout


def test_prometheus_runs_with_the_roles_retention_and_rules():
    status, body = _fetch(M1, f"{PROMETHEUS}/api/v1/status/flags")
    assert status == 200
    flags = json.loads(body)["data"]
    assert (flags["storage.tsdb.retention.time"], flags["config.file"]) == (
        "2d",
        "/etc/prometheus/prometheus.yml",
    )
    status, body = _fetch(M1, f"{PROMETHEUS}/api/v1/rules")
    assert status == 200
    groups = json.loads(body)["data"]["groups"]
    assert sorted((g["name"], len(g["rules"])) for g in groups) == [
        ("cloud58.alerts", 11),
        ("cloud58.recording", 4),
        ("team.alerts", 1),
    ]


def test_prometheus_scrapes_the_plans_targets_with_their_labels():
    def targets():
        status, body = _fetch(M1, f"{PROMETHEUS}/api/v1/targets")
        assert status == 200
        active = json.loads(body)["data"]["activeTargets"]
        # Every target scraped once (health leaves "unknown"): the answer is complete.
        return active if all(t["health"] != "unknown" for t in active) else None

    active = _wait("every target's first scrape", targets)
    got = sorted((t["labels"]["job"], t["labels"]["instance"], t["labels"], t["health"]) for t in active)
    node = {"datacenter": "obs", "job": "node"}
    assert got == [
        (
            "node",
            "198.18.60.11:9100",
            {
                **node,
                "cluster": "obs-k8s",
                "host": "mol-obs-m1",
                "instance": "198.18.60.11:9100",
                "rack": "obs-r1",
            },
            "down",
        ),
        (
            "node",
            "198.18.60.85:9100",
            {
                **node,
                "cluster": "obs-k8s",
                "host": "mol-obs-w1",
                "instance": "198.18.60.85:9100",
                "rack": "obs-r2",
            },
            "down",
        ),
        (
            "node",
            "198.18.60.95:9100",
            {**node, "host": "mol-obs-lvs1", "instance": "198.18.60.95:9100", "rack": "obs-r2"},
            "down",
        ),
        (
            "prometheus",
            "localhost:9090",
            {"datacenter": "obs", "instance": "localhost:9090", "job": "prometheus"},
            "up",
        ),
    ]


@pytest.mark.parametrize(("host", "name"), NODES)
def test_no_unit_failed(host, name):
    assert host.check_output("systemctl --failed --no-legend --plain") == "", name
