"""The role cloud58.platform.prometheus run by ansible-playbook on this machine, with its files
redirected to a temporary directory, no package installed and no service touched: check mode
writes nothing, a run copies the cluster's client certificates from a controller PKI and writes
prometheus.yml (the filter's text under a header) and the rules, each checked by the real
promtool, a second run changes nothing, and bad input fails by name.
The host is lab1-m1 of inventories/lab, the default Prometheus host of datacenter lab1."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import yaml

from ansible_collections.cloud58.platform.plugins.module_utils.monitoring import (
    DEFAULT_OPTIONS,
    config_text,
    scrape_config,
)
from ansible_collections.cloud58.platform.plugins.module_utils.topology import build_plan, load_inventory
from cloud58_lab import roleplay

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[2]
RULES_DIR = REPO / "collections/ansible_collections/cloud58/platform/roles/prometheus/files/rules"
HOST = "lab1-m1"
PLAYBOOK = """\
- name: Run the Prometheus of the datacenter
  hosts: all
  gather_facts: false
  roles:
    - cloud58.platform.prometheus
"""
CERT_VARS = tuple(f"prometheus_{k}" for k in DEFAULT_OPTIONS if k.endswith("_file"))


# The controller's PKI of cluster lab1-k8s (the role control_plane's layout) -> where the role
# puts each file under pki/ (the default paths of the certificate options), and its mode.
CONTROLLER_FILES = {
    "ca.crt": ("lab1-k8s/ca.crt", 0o644),
    "prometheus.crt": ("lab1-k8s/prometheus.crt", 0o644),
    "prometheus.key": ("lab1-k8s/prometheus.key", 0o640),
    "etcd/ca.crt": ("lab1-k8s/etcd-ca.crt", 0o644),
    "prometheus-etcd-client.crt": ("lab1-k8s/etcd-client.crt", 0o644),
    "prometheus-etcd-client.key": ("lab1-k8s/etcd-client.key", 0o640),
}


@pytest.fixture(scope="module")
def work(tmp_path_factory):
    plan = build_plan(load_inventory(str(REPO / "inventories/lab"))).as_dict()
    work = tmp_path_factory.mktemp("prometheus-role")
    for source in CONTROLLER_FILES:
        path = work / "controller-pki/lab1-k8s" / source
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(f"content of {source}\n")
        path.chmod(0o600)
    return plan, work


def _play(work, check=False, **extra):
    """Run the role on HOST; its stats and, per failed task, its message and output."""
    plan, directory = work
    variables = {
        # what the preflight play registers on localhost; the role's default reads it there
        "cloud58_topology": {"plan": plan},
        "prometheus_install_package": False,
        "prometheus_manage_service": False,
        "prometheus_config_file": str(directory / "prometheus.yml"),
        "prometheus_rules_dir": str(directory / "rules"),
        "prometheus_defaults_file": str(directory / "default-prometheus"),
        "prometheus_pki_dir": str(directory / "controller-pki"),
        **{
            name: DEFAULT_OPTIONS[name.removeprefix("prometheus_")].replace(
                "/etc/prometheus/pki", str(directory / "pki")
            )
            for name in CERT_VARS
        },
        "ansible_connection": "local",
        "ansible_python_interpreter": sys.executable,
        **extra,
    }
    # A failed validate: says "failed to validate", promtool's words are in stdout and stderr.
    stats, failed, _stdout = roleplay.play(
        directory, PLAYBOOK, HOST, variables, check=check, with_output=True
    )
    return stats, failed


def test_check_mode_writes_nothing(work):
    _plan, directory = work
    stats, failed = _play(work, check=True)
    assert (stats["failures"], failed) == (0, [])
    # the certificates' directory, the certificates and the keys (one looped task each), the
    # rules directory, the rules files (one looped task), prometheus.yml, the defaults file's ARGS
    assert stats["changed"] == 7
    assert not (directory / "pki").exists()
    assert not (directory / "prometheus.yml").exists()
    assert not (directory / "default-prometheus").exists()
    assert not (directory / "rules").exists()


def test_role_writes_the_checked_config_and_rules(work):
    plan, directory = work
    stats, failed = _play(work)
    assert (stats, failed) == ({"changed": 7, "failures": 0}, [])
    installed = {
        str(p.relative_to(directory / "pki")): (p.read_text(), p.stat().st_mode & 0o777, p.group())
        for p in (directory / "pki").rglob("*")
        if p.is_file()
    }
    assert installed == {
        dest: (f"content of {source}\n", mode, "prometheus" if mode == 0o640 else "root")
        for source, (dest, mode) in CONTROLLER_FILES.items()
    }
    assert (directory / "pki/lab1-k8s").stat().st_mode & 0o777 == 0o750
    expected = scrape_config(
        plan,
        "lab1",
        {
            "rule_files": [f"{directory}/rules/*.yml"],
            **{
                k: v.replace("/etc/prometheus/pki", str(directory / "pki"))
                for k, v in DEFAULT_OPTIONS.items()
                if k.endswith("_file")
            },
        },
    )
    # The template ends the filter's text with a single newline, as YAML text ends.
    assert (directory / "prometheus.yml").read_text() == (
        "# Ansible managed\n"
        f"# Prometheus of datacenter lab1 on {HOST}: targets from the\n"
        "# plan by role (filter cloud58.platform.prometheus_config; docs/monitoring.md).\n"
        + config_text(expected)
    )
    assert sorted(p.name for p in (directory / "rules").iterdir()) == [
        "cloud58-alerts.yml",
        "cloud58-recording.yml",
    ]
    for name in ("cloud58-alerts.yml", "cloud58-recording.yml"):
        assert (directory / "rules" / name).read_text() == (RULES_DIR / name).read_text()
    assert (directory / "default-prometheus").read_text() == 'ARGS="--storage.tsdb.retention.time=15d"\n'


def test_second_run_changes_nothing(work):
    assert _play(work) == ({"changed": 0, "failures": 0}, [])


TEAM_RULES = """\
groups:
  - name: team.alerts
    rules:
      - alert: TeamTargetDown
        expr: up{job="node"} == 0
        for: 5m
        labels:
          severity: ticket
"""


def test_extra_rules_file_is_written_beside_the_platforms(work, tmp_path):
    _plan, directory = work
    team = tmp_path / "team-alerts.yml"
    team.write_text(TEAM_RULES)
    stats, failed = _play(work, prometheus_extra_rules_files=[str(team)])
    assert (stats, failed) == ({"changed": 1, "failures": 0}, [])
    assert (directory / "rules/team-alerts.yml").read_text() == TEAM_RULES
    assert _play(work, prometheus_extra_rules_files=[str(team)]) == ({"changed": 0, "failures": 0}, [])


def test_a_missing_client_certificate_keeps_the_old_config(work):
    _plan, directory = work
    before = (directory / "prometheus.yml").read_text()
    # With no PKI to copy from, the files are someone else's: one missing fails promtool's check.
    stats, failed = _play(
        work, prometheus_pki_dir="", prometheus_etcd_key_file=str(directory / "pki/{cluster}/missing.key")
    )
    assert stats["failures"] == 1
    assert len(failed) == 1
    assert failed[0].startswith("failed to validate\n")
    assert f'error checking client key file "{directory}/pki/lab1-k8s/missing.key"' in failed[0]
    assert (directory / "prometheus.yml").read_text() == before


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        pytest.param(
            {"prometheus_lvs_exporter_port": 0},
            "prometheus_config(lab1): monitoring option lvs_exporter_port: expected a port 1-65535, got 0",
            id="port-zero",
        ),
        pytest.param(
            {"prometheus_consul_https_port": 8501},
            "prometheus_consul_token: required when prometheus_consul_https_port is set (8501); the value "
            "is not shown",
            id="consul-without-token",
        ),
        pytest.param(
            {"prometheus_datacenter": "lab3"},
            "prometheus_config(lab3): datacenter 'lab3' is not in the plan",
            id="unknown-datacenter",
        ),
        pytest.param(
            {"prometheus_retention_time": "0d"},
            "prometheus_config(lab1): monitoring option retention_time: expected a duration above 0 like "
            "15d, 12h, 2w, got '0d'",
            id="retention-zero",
        ),
        pytest.param(
            {"prometheus_jobs": ["node", "haproxy"], "prometheus_haproxy_exporter_port": 0},
            "prometheus_config(lab1): monitoring option jobs: role 'haproxy' has no target in datacenter "
            "'lab1' (haproxy_exporter_port is 0)",
            id="role-the-plan-lacks",
        ),
    ],
)
def test_bad_input_fails_before_the_host_changes(work, extra, message):
    stats, failed = _play(work, **extra)
    assert stats == {"changed": 0, "failures": 1}
    assert len(failed) == 1
    assert message in failed[0]


# A bad alert rule: the operator's file, checked on the controller before the host changes.
@pytest.mark.parametrize(
    ("name", "text", "complaint"),
    [
        pytest.param(
            "team.yml",
            TEAM_RULES.replace("== 0", "=="),
            ': 5:15: group "team.alerts", rule 1, "TeamTargetDown": could not parse expression: '
            "1:18: parse error: unexpected end of input",
            id="bad-expression",
        ),
        pytest.param(
            "team.yml",
            TEAM_RULES.replace("for: 5m", "for: 5 minutes"),
            ': not a valid duration string: "5 minutes"',
            id="bad-for",
        ),
        pytest.param(
            "team.yml",
            TEAM_RULES.replace("expr:", "expression:"),
            ": yaml: unmarshal errors: line 5: field expression not found in type rulefmt.RuleNode",
            id="no-expr",
        ),
    ],
)
def test_bad_extra_rule_fails_before_the_host_changes(work, tmp_path, name, text, complaint):
    _plan, directory = work
    before = {p.name: p.read_text() for p in (directory / "rules").iterdir()}
    bad = tmp_path / name
    bad.write_text(text)
    stats, failed = _play(work, prometheus_extra_rules_files=[str(bad)])
    assert stats == {"changed": 0, "failures": 1}
    assert failed == [f"prometheus_extra_rules_files: promtool check rules refused {bad}{complaint}"]
    assert {p.name: p.read_text() for p in (directory / "rules").iterdir()} == before


@pytest.mark.parametrize(
    ("paths", "message"),
    [
        pytest.param(
            ["{tmp}/missing.yml"],
            'prometheus_extra_rules_files: "{tmp}/missing.yml": no such file on the controller',
            id="missing-file",
        ),
        pytest.param(
            ["{tmp}/team.yaml"],
            "prometheus_extra_rules: prometheus_extra_rules_files: '{tmp}/team.yaml': the name must end in"
            " .yml (Prometheus loads the rules directory's *.yml)",
            id="not-yml",
        ),
        pytest.param(
            ["{tmp}/cloud58-alerts.yml"],
            "prometheus_extra_rules: prometheus_extra_rules_files: '{tmp}/cloud58-alerts.yml':"
            " cloud58-alerts.yml is the name of a platform rules file",
            id="platform-name",
        ),
        pytest.param(
            ["{tmp}/team.yml", "{tmp}/other/team.yml"],
            "prometheus_extra_rules: prometheus_extra_rules_files: '{tmp}/team.yml' and"
            " '{tmp}/other/team.yml' have the same name team.yml",
            id="same-name",
        ),
    ],
)
def test_bad_extra_rules_file_name_fails_before_the_host_changes(work, tmp_path, paths, message):
    stats, failed = _play(work, prometheus_extra_rules_files=[p.format(tmp=tmp_path) for p in paths])
    assert stats == {"changed": 0, "failures": 1}
    assert len(failed) == 1
    assert failed[0].endswith(message.format(tmp=tmp_path))
    assert "Traceback" not in failed[0]


def test_consul_jobs_get_their_certificate_and_token_file(work):
    """Last in the file: it turns the consul jobs on. The Consul CA and Prometheus' certificate
    come from prometheus_consul_pki_dir (consul/pki.py's layout), here outside the clusters' PKI
    as site.yml's site_consul_pki_dir may be; the token goes to its own file, 0640."""
    _plan, directory = work
    for name in ("ca.crt", "prometheus.crt", "prometheus.key"):
        (directory / "consul-pki").mkdir(parents=True, exist_ok=True)
        (directory / "consul-pki" / name).write_text(f"consul {name}\n")
    consul = {
        "prometheus_consul_pki_dir": str(directory / "consul-pki"),
        "prometheus_consul_https_port": 8501,
        "prometheus_consul_token": "6f1c5b0e-secret",
        "prometheus_consul_token_file": str(directory / "consul-token"),
        **{
            f"prometheus_consul_{key}_file": str(directory / f"pki/consul/{name}")
            for key, name in (("ca", "ca.crt"), ("cert", "prometheus.crt"), ("key", "prometheus.key"))
        },
    }
    stats, failed = _play(work, **consul)
    # tasks changed: the directory, the certificates, the key, the token, prometheus.yml
    assert (stats, failed) == ({"changed": 5, "failures": 0}, [])
    config = yaml.safe_load((directory / "prometheus.yml").read_text())
    jobs = {j["job_name"]: j for j in config["scrape_configs"]}
    assert (jobs["consul/server"]["authorization"], jobs["consul/client"]["tls_config"]["server_name"]) == (
        {"type": "Bearer", "credentials_file": str(directory / "consul-token")},
        "client.lab1.consul",
    )
    token = directory / "consul-token"
    assert (token.read_text(), token.stat().st_mode & 0o777) == ("6f1c5b0e-secret", 0o640)
    key = directory / "pki/consul/prometheus.key"
    assert (key.read_text(), key.stat().st_mode & 0o777) == ("consul prometheus.key\n", 0o640)
    assert _play(work, **consul) == ({"changed": 0, "failures": 0}, [])
