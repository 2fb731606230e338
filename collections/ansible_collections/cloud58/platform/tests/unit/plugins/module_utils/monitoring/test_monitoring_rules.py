"""Where the operator's own Prometheus rules files go, and the names refused (pure)."""

from __future__ import annotations

from pathlib import Path

import pytest

from ansible_collections.cloud58.platform.plugins.module_utils.monitoring import (
    PLATFORM_RULES_FILES,
    MonitoringError,
    extra_rules_files,
)


def test_platform_rules_files_are_the_roles():
    rules = Path(__file__).resolve().parents[5] / "roles/prometheus/files/rules"
    assert sorted(PLATFORM_RULES_FILES) == sorted(p.name for p in rules.iterdir())


@pytest.mark.parametrize(
    ("paths", "expected"),
    [
        pytest.param([], [], id="none"),
        pytest.param(
            ["files/team-alerts.yml", "/srv/rules/storage.yml"],
            [
                {"src": "files/team-alerts.yml", "name": "team-alerts.yml"},
                {"src": "/srv/rules/storage.yml", "name": "storage.yml"},
            ],
            id="in-order",
        ),
    ],
)
def test_extra_rules_files(paths, expected):
    assert extra_rules_files(paths) == expected


@pytest.mark.parametrize(
    ("paths", "message"),
    [
        pytest.param(
            "team.yml",
            "prometheus_extra_rules_files: expected a list of paths, got str 'team.yml'",
            id="not-a-list",
        ),
        pytest.param([""], "prometheus_extra_rules_files: expected a path, got ''", id="empty-path"),
        pytest.param([7], "prometheus_extra_rules_files: expected a path, got 7", id="number"),
        pytest.param(
            ["rules/team.yaml"],
            "prometheus_extra_rules_files: 'rules/team.yaml': the name must end in .yml (Prometheus loads"
            " the rules directory's *.yml)",
            id="yaml-suffix",
        ),
        pytest.param(
            ["rules/.yml"],
            "prometheus_extra_rules_files: 'rules/.yml': the name must end in .yml (Prometheus loads"
            " the rules directory's *.yml)",
            id="no-name",
        ),
        pytest.param(
            ["mine/cloud58-recording.yml"],
            "prometheus_extra_rules_files: 'mine/cloud58-recording.yml': cloud58-recording.yml is the name"
            " of a platform rules file",
            id="platform-name",
        ),
        pytest.param(
            ["a/team.yml", "b/other.yml", "c/team.yml"],
            "prometheus_extra_rules_files: 'a/team.yml' and 'c/team.yml' have the same name team.yml",
            id="same-name",
        ),
    ],
)
def test_bad_extra_rules_files_are_refused_by_path(paths, message):
    with pytest.raises(MonitoringError) as e:
        extra_rules_files(paths)
    assert str(e.value) == message
