"""The Prometheus configuration and rules of the role cloud58.platform.prometheus, checked by the
real promtool (Debian's prometheus package): the rendered prometheus.yml of every datacenter of
inventories/lab, bj1 and sh1 passes `promtool check config`, the alerting rules fire on
fixture series and stay quiet on healthy ones (`promtool test rules`), and a broken rule or a
missing client certificate is refused by name."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
import yaml

from ansible_collections.cloud58.platform.plugins.module_utils.monitoring import (
    DEFAULT_OPTIONS,
    config_text,
    scrape_config,
)
from ansible_collections.cloud58.platform.plugins.module_utils.topology import build_plan, load_inventory
from cloud58_lab import programs

REPO = Path(__file__).resolve().parents[2]
RULES_DIR = REPO / "collections/ansible_collections/cloud58/platform/roles/prometheus/files/rules"
RECORDING = RULES_DIR / "cloud58-recording.yml"
ALERTS = RULES_DIR / "cloud58-alerts.yml"


def _promtool(*args, cwd=None):
    return subprocess.run(
        programs.argv("promtool", *args), capture_output=True, text=True, check=False, cwd=cwd
    )


def _config_with_certificates(plan, datacenter, pki: Path, **options) -> str:
    """The rendered prometheus.yml with its certificate paths under ``pki``, the files created
    (promtool check config opens every one; their content is not checked)."""
    paths = {
        k: v.replace("/etc/prometheus/pki", str(pki))
        for k, v in DEFAULT_OPTIONS.items()
        if k.endswith("_file")
    }
    config = scrape_config(plan, datacenter, {**paths, "rule_files": [f"{RULES_DIR}/*.yml"], **options})
    for job in config["scrape_configs"]:
        files = {**job.get("tls_config", {}), **job.get("authorization", {})}
        for key, value in files.items():
            if key.endswith("_file"):
                Path(value).parent.mkdir(parents=True, exist_ok=True)
                Path(value).touch()
    return config_text(config)


@pytest.mark.parametrize(
    ("inventory", "datacenter", "options", "jobs"),
    [
        pytest.param("lab", "lab1", {}, 17, id="lab-lab1"),
        pytest.param("lab", "lab2", {}, 17, id="lab-lab2"),
        pytest.param("bj1", "bj1", {}, 17, id="bj1"),
        pytest.param("sh1", "sh1", {}, 17, id="sh1"),
        # the two consul jobs: HTTPS with a client certificate, server_name and a Bearer token file
        pytest.param("lab", "lab1", {"consul_https_port": 8501}, 19, id="lab-lab1-consul"),
    ],
)
def test_rendered_config_passes_promtool_check_config(tmp_path, inventory, datacenter, options, jobs):
    plan = build_plan(load_inventory(str(REPO / "inventories" / inventory))).as_dict()
    text = _config_with_certificates(plan, datacenter, tmp_path / "pki", **options)
    assert text.count("- job_name: ") == jobs
    # the second-level job of cloud58-signals (its timeout no longer than its interval, as promtool wants)
    assert "- job_name: signals/" in text
    assert "  scrape_interval: 1s\n  scrape_timeout: 1s\n" in text
    conf = tmp_path / "prometheus.yml"
    conf.write_text(text)
    result = _promtool("check", "config", conf)
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"SUCCESS: {conf} is valid prometheus config file syntax" in result.stdout
    assert f"Checking {RECORDING}\n  SUCCESS: 4 rules found" in result.stdout
    assert f"Checking {ALERTS}\n  SUCCESS: 11 rules found" in result.stdout


def test_missing_client_certificate_is_refused_by_name(tmp_path):
    plan = build_plan(load_inventory(str(REPO / "inventories/lab"))).as_dict()
    conf = tmp_path / "prometheus.yml"
    conf.write_text(_config_with_certificates(plan, "lab1", tmp_path / "pki"))
    missing = tmp_path / "pki/lab1-k8s/etcd-client.key"
    missing.unlink()
    result = _promtool("check", "config", conf)
    assert result.returncode == 1
    assert f'error checking client key file "{missing}"' in result.stdout + result.stderr


def test_missing_consul_token_file_is_refused_by_name(tmp_path):
    plan = build_plan(load_inventory(str(REPO / "inventories/lab"))).as_dict()
    conf = tmp_path / "prometheus.yml"
    token = tmp_path / "pki/consul-token"
    text = _config_with_certificates(
        plan, "lab1", tmp_path / "pki", consul_https_port=8501, consul_token_file=str(token)
    )
    conf.write_text(text)
    token.unlink()
    result = _promtool("check", "config", conf)
    assert result.returncode == 1
    assert str(token) in result.stdout + result.stderr, result.stdout + result.stderr


def test_rules_files_pass_promtool_check_rules():
    result = _promtool("check", "rules", RECORDING, ALERTS)
    assert (result.returncode, result.stdout) == (
        0,
        f"Checking {RECORDING}\n  SUCCESS: 4 rules found\n\nChecking {ALERTS}\n  SUCCESS: 11 rules found\n\n",
    ), result.stderr


@pytest.mark.parametrize(
    ("old", "new", "complaint"),
    [
        pytest.param(
            'expr: etcd_server_has_leader{job=~"etcd|etcd-events"} == 0',
            'expr: etcd_server_has_leader{job=~"etcd|etcd-events"} ==',
            ': 8:15: group "cloud58.alerts", rule 1, "EtcdNoLeader": could not parse expression: '
            "1:51: parse error: unexpected end of input",
            id="bad-expression",
        ),
        pytest.param("for: 2m", "for: 2 minutes", ': not a valid duration string: "2 minutes"', id="bad-for"),
    ],
)
def test_broken_rule_file_is_rejected(tmp_path, old, new, complaint):
    text = ALERTS.read_text()
    assert text.count(old) == 1
    broken = tmp_path / "cloud58-alerts.yml"
    broken.write_text(text.replace(old, new))
    result = _promtool("check", "rules", broken)
    assert (result.returncode, result.stdout) == (1, f"Checking {broken}\n\n")
    assert result.stderr == f"  FAILED:\n{broken}{complaint}\n"


def _alert(name, eval_time, labels=None, annotations=None):
    """One alert_rule_test: ``labels``/``annotations`` of the one alert expected, or none firing."""
    expected = [] if labels is None else [{"exp_labels": labels, "exp_annotations": annotations}]
    return {"eval_time": eval_time, "alertname": name, "exp_alerts": expected}


M1 = {"datacenter": "lab1", "cluster": "lab1-k8s", "rack": "lab1-r1", "host": "lab1-m1"}
M2 = {"datacenter": "lab1", "cluster": "lab1-k8s", "rack": "lab1-r2", "host": "lab1-m2"}
W1 = {"datacenter": "lab1", "cluster": "lab1-k8s", "rack": "lab1-r1", "host": "lab1-w1"}


def _series(name, labels, values):
    inner = ", ".join(f'{k}="{v}"' for k, v in labels.items())
    return {"series": f"{name}{{{inner}}}", "values": values}


RULE_TESTS = [
    # etcd: lab1-m1 loses its leader after a minute, lab1-m2 keeps it; `for: 1m`.
    {
        "interval": "1m",
        "input_series": [
            _series("etcd_server_has_leader", {"job": "etcd", **M1}, "1 0 0 0 0"),
            _series("etcd_server_has_leader", {"job": "etcd", **M2}, "1 1 1 1 1"),
        ],
        "alert_rule_test": [
            _alert("EtcdNoLeader", "1m"),
            _alert(
                "EtcdNoLeader",
                "2m",
                {"severity": "page", "job": "etcd", **M1},
                {"summary": "etcd member lab1-m1 of lab1-k8s has no leader"},
            ),
        ],
    },
    # etcd-events on lab1-m2 stops answering Prometheus after a minute; `for: 3m`, so pending
    # at 3m and firing at 4m; lab1-m1's member, up throughout, never fires.
    {
        "interval": "1m",
        "input_series": [
            _series("up", {"job": "etcd-events", **M1}, "1 1 1 1 1 1"),
            _series("up", {"job": "etcd-events", **M2}, "1 0 0 0 0 0"),
        ],
        "alert_rule_test": [
            _alert("EtcdMemberDown", "3m"),
            _alert(
                "EtcdMemberDown",
                "4m",
                {"severity": "page", "job": "etcd-events", **M2},
                {"summary": "etcd-events member lab1-m2 of lab1-k8s is down or unreachable"},
            ),
        ],
    },
    # A node NotReady from the start: pending before its `for: 5m`, firing at 5m; a Ready
    # node beside it never fires.
    {
        "interval": "1m",
        "input_series": [
            _series(
                "kube_node_status_condition",
                {"cluster": "lab1-k8s", "node": "lab1-w1", "condition": "Ready", "status": "true"},
                "0x10",
            ),
            _series(
                "kube_node_status_condition",
                {"cluster": "lab1-k8s", "node": "lab1-w2", "condition": "Ready", "status": "true"},
                "1x10",
            ),
        ],
        "alert_rule_test": [
            _alert("KubeNodeNotReady", "4m"),
            _alert(
                "KubeNodeNotReady",
                "5m",
                {
                    "severity": "page",
                    "cluster": "lab1-k8s",
                    "node": "lab1-w1",
                    "condition": "Ready",
                    "status": "true",
                },
                {"summary": "node lab1-w1 of lab1-k8s has not been Ready for 5 minutes"},
            ),
        ],
    },
    # Healthy series fire nothing: conntrack half full, 10 % disk free is the limit, not below,
    # every BGP session up, every VIP with realservers, 1 % apiserver errors.
    {
        "interval": "1m",
        "input_series": [
            _series("node_nf_conntrack_entries", {"job": "node", **W1}, "131072x20"),
            _series("node_nf_conntrack_entries_limit", {"job": "node", **W1}, "262144x20"),
            _series(
                "node_filesystem_avail_bytes",
                {"job": "node", "fstype": "ext4", "mountpoint": "/", **W1},
                "10x20",
            ),
            _series(
                "node_filesystem_size_bytes",
                {"job": "node", "fstype": "ext4", "mountpoint": "/", **W1},
                "100x20",
            ),
            _series("cloud58_bgp_session_up", {"peer": "lab1-r1-tor1", **W1}, "1x20"),
            _series(
                "cloud58_lvs_vip_realservers",
                {"job": "lvs", "vip": "lab1-k8s-api", "host": "lab1-lvs1"},
                "3x20",
            ),
            _series("apiserver_request_total", {"job": "kube-apiserver", "code": "200", **M1}, "0+99x20"),
            _series("apiserver_request_total", {"job": "kube-apiserver", "code": "500", **M1}, "0+1x20"),
            _series("cloud58_overload_overloaded", {"job": "overload", "node": "lab1-w1", **W1}, "0x40"),
            _series("cloud58_crashkeeper_bytes", {"job": "crashkeeper", **W1}, "900x20"),
            _series("cloud58_crashkeeper_budget_bytes", {"job": "crashkeeper", **W1}, "1000x20"),
        ],
        "alert_rule_test": [
            _alert(name, "20m")
            for name in (
                "NodeConntrackTableNearFull",
                "NodeFilesystemSpaceLow",
                "BgpSessionDown",
                "LvsVipWithoutRealservers",
                "KubeApiserverErrorRatioHigh",
                "CrashSitesNearBudget",
            )
        ]
        + [_alert("NodeOverloadedLong", "40m")],
    },
    # The same signals past their limits fire, each after its `for`. Alerts over a recorded
    # series are checked one interval after their `for`: the recording rules are another group,
    # which may run after the alerts' group at the first evaluation (so the alert may start
    # pending a minute late).
    {
        "interval": "1m",
        "input_series": [
            _series("node_nf_conntrack_entries", {"job": "node", **W1}, "240000x20"),
            _series("node_nf_conntrack_entries_limit", {"job": "node", **W1}, "262144x20"),
            _series(
                "node_filesystem_files_free",
                {"job": "node", "fstype": "ext4", "mountpoint": "/var", **W1},
                "5x20",
            ),
            _series(
                "node_filesystem_files",
                {"job": "node", "fstype": "ext4", "mountpoint": "/var", **W1},
                "100x20",
            ),
            _series("cloud58_bgp_session_up", {"peer": "lab1-r1-tor1", **W1}, "0x20"),
            _series(
                "cloud58_lvs_vip_realservers",
                {"job": "lvs", "vip": "lab1-k8s-api", "host": "lab1-lvs1"},
                "0x20",
            ),
            _series("apiserver_request_total", {"job": "kube-apiserver", "code": "200", **M1}, "0+80x30"),
            _series("apiserver_request_total", {"job": "kube-apiserver", "code": "503", **M2}, "0+20x30"),
            # tainted from minute 5 on: pending from then, firing 30 minutes later
            _series("cloud58_overload_overloaded", {"job": "overload", "node": "lab1-w1", **W1}, "0x4 1x40"),
            _series("cloud58_crashkeeper_bytes", {"job": "crashkeeper", **W1}, "950x20"),
            _series("cloud58_crashkeeper_budget_bytes", {"job": "crashkeeper", **W1}, "1000x20"),
        ],
        "alert_rule_test": [
            _alert(
                "NodeConntrackTableNearFull",
                "6m",
                {"severity": "page", "job": "node", **W1},
                {"summary": "the conntrack table of lab1-w1 is 91.55% full"},
            ),
            _alert(
                "NodeFilesystemInodesLow",
                "11m",
                {"severity": "page", "job": "node", "fstype": "ext4", "mountpoint": "/var", **W1},
                {"summary": "/var on lab1-w1 has 5% inodes left"},
            ),
            _alert("BgpSessionDown", "1m"),
            _alert(
                "BgpSessionDown",
                "2m",
                {"severity": "page", "peer": "lab1-r1-tor1", **W1},
                {"summary": "BGP session of lab1-w1 with lab1-r1-tor1 is down"},
            ),
            _alert(
                "LvsVipWithoutRealservers",
                "1m",
                {"severity": "page", "job": "lvs", "vip": "lab1-k8s-api", "host": "lab1-lvs1"},
                {"summary": "VIP lab1-k8s-api on director lab1-lvs1 has no realserver"},
            ),
            _alert(
                "KubeApiserverErrorRatioHigh",
                "20m",
                {"severity": "page", "datacenter": "lab1", "cluster": "lab1-k8s"},
                {"summary": "20% of the requests to lab1-k8s's apiservers fail with 5xx"},
            ),
            _alert("NodeOverloadedLong", "34m"),
            _alert(
                "NodeOverloadedLong",
                "35m",
                {"severity": "ticket", "job": "overload", "node": "lab1-w1", **W1},
                {"summary": "lab1-w1 has been tainted cloud58.io/overloaded for 30 minutes"},
            ),
            _alert("CrashSitesNearBudget", "14m"),
            _alert(
                "CrashSitesNearBudget",
                "15m",
                {"severity": "ticket", "job": "crashkeeper", **W1},
                {"summary": "crash sites on lab1-w1 use 95% of their budget"},
            ),
        ],
    },
]


def test_alerts_fire_on_fixture_series_and_not_on_healthy_ones(tmp_path):
    tests = tmp_path / "tests.yml"
    tests.write_text(
        yaml.safe_dump(
            {"rule_files": [str(RECORDING), str(ALERTS)], "evaluation_interval": "1m", "tests": RULE_TESTS},
            sort_keys=False,
        )
    )
    result = _promtool("test", "rules", tests)
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout == f"Unit Testing:  {tests}\n  SUCCESS\n\n"


def test_rule_test_fails_when_an_alert_does_not_fire(tmp_path):
    """The rule test above can fail: a healthy etcd expected to alert makes promtool say so."""
    healthy = {
        "interval": "1m",
        "input_series": [_series("etcd_server_has_leader", {"job": "etcd", **M2}, "1 1 1 1 1")],
        "alert_rule_test": [
            _alert("EtcdNoLeader", "3m", {"severity": "page", "job": "etcd", **M2}, {"summary": "x"}),
        ],
    }
    tests = tmp_path / "tests.yml"
    tests.write_text(
        yaml.safe_dump({"rule_files": [str(ALERTS)], "evaluation_interval": "1m", "tests": [healthy]})
    )
    result = _promtool("test", "rules", tests)
    assert result.returncode == 1
    assert "alertname: EtcdNoLeader, time: 3m" in result.stdout + result.stderr
