"""Settings of the control plane: defaults, and one error listing every bad field."""

from __future__ import annotations

import pytest

from ansible_collections.cloud58.platform.plugins.module_utils.controlplane.errors import ControlPlaneError
from ansible_collections.cloud58.platform.plugins.module_utils.controlplane.settings import (
    DEFAULTS,
    duration_seconds,
    image_for,
    image_version,
    settings_from,
)


def test_defaults_pin_one_version_and_derive_etcd():
    s = settings_from({})
    assert s["version"] == "v1.36.3"
    assert s["etcd_version"] == "3.6.8"
    assert {c: image_for(s, c) for c in ("etcd", "kube-apiserver", "kube-scheduler")} == {
        "etcd": "registry.cloud58.internal/kubernetes/etcd:v3.6.8",
        "kube-apiserver": "registry.cloud58.internal/kubernetes/kube-apiserver:v1.36.3",
        "kube-scheduler": "registry.cloud58.internal/kubernetes/kube-scheduler:v1.36.3",
    }
    assert {k: v for k, v in s.items() if k != "etcd_version"} == {
        k: v for k, v in DEFAULTS.items() if k != "etcd_version"
    }


def test_partial_groups_merge_with_their_defaults():
    s = settings_from({"eviction": {"node_eviction_rate": 0.5}, "leader_election": {"lease_duration": "30s"}})
    assert s["eviction"] == {**DEFAULTS["eviction"], "node_eviction_rate": 0.5}
    assert s["leader_election"] == {**DEFAULTS["leader_election"], "lease_duration": "30s"}


def test_lab_registry_and_an_override():
    s = settings_from(
        {
            "image_registry": "localhost/cloud58",
            "image_overrides": {"kube-scheduler": "localhost/x/sched:v1.36.4"},
        }
    )
    assert image_for(s, "kube-apiserver") == "localhost/cloud58/kube-apiserver:v1.36.3"
    assert image_for(s, "kube-scheduler") == "localhost/x/sched:v1.36.4"
    assert image_version("localhost:5000/a/b:v1.2.3") == "v1.2.3"
    assert image_version("a/b") == ""


def test_every_problem_is_listed_at_once():
    with pytest.raises(ControlPlaneError) as err:
        settings_from(
            {
                "version": "1.36",
                "image_registry": "Registry With Spaces",
                "image_overrides": {"kube-proxy": "x:v1", "etcd": "reg/etcd"},
                "config_dir": "etc/kubernetes/",
                "etcd_events_data_dir": "/var/lib/etcd",
                "etcd_metrics_port": 2384,
                "audit_log_maxage": -1,
                "eviction": {
                    "node_monitor_grace_period": "40",
                    "node_eviction_rate": 0.01,
                    "secondary_node_eviction_rate": 0.1,
                    "unhealthy_zone_threshold": 0,
                    "large_cluster_size_threshold": True,
                    "pod_eviction_timeout": "5m",
                },
                "leader_election": {"lease_duration": "10s", "renew_deadline": "10s"},
                "admin_server": "http://api",
                "apiserver_extra_args": {"--v": 2, "feature-gates": ["A=true"]},
                "extra_sans": "api.example",
                "typo_setting": 1,
            },
            "cluster 'x'",
        )
    assert err.value.problems == [
        "unknown setting 'typo_setting' (known: admin_server, apiserver_extra_args, audit_log_dir, "
        "audit_log_maxage, audit_log_maxbackup, audit_log_maxsize, cluster_domain, config_dir, "
        "controller_manager_extra_args, etcd_data_dir, etcd_events_data_dir, etcd_events_metrics_port, "
        "etcd_extra_args, etcd_metrics_port, etcd_quota_backend_bytes, etcd_snapshot_count, etcd_version, "
        "eviction, extra_sans, image_overrides, image_registry, leader_election, scheduler_extra_args, "
        "version)",
        "unknown setting eviction.pod_eviction_timeout (known: large_cluster_size_threshold, "
        "node_eviction_rate, node_monitor_grace_period, secondary_node_eviction_rate, "
        "unhealthy_zone_threshold)",
        "version: '1.36' is not a version like v1.36.3",
        "image_registry 'Registry With Spaces' is not a registry/path like registry.example/k8s",
        "image_overrides.etcd: 'reg/etcd' must name a tag (image:vX.Y.Z)",
        "image_overrides: unknown component 'kube-proxy' (known: etcd, kube-apiserver, "
        "kube-controller-manager, kube-scheduler)",
        "config_dir 'etc/kubernetes/' must be an absolute directory path without a trailing slash",
        "etcd_data_dir and etcd_events_data_dir are both '/var/lib/etcd'; each etcd needs its own",
        "etcd_metrics_port and etcd_events_metrics_port must differ (both etcds may share a host)",
        "audit_log_maxage -1 must be an integer from 0 to 3650",
        "eviction.node_monitor_grace_period '40' is not a duration like 40s",
        "eviction.unhealthy_zone_threshold 0 must be a fraction in (0, 1]",
        "eviction.large_cluster_size_threshold True must be a positive integer",
        "eviction.secondary_node_eviction_rate 0.1 is above node_eviction_rate 0.01: "
        "an unhealthy zone would evict faster than a healthy one",
        "leader_election: retry_period < renew_deadline < lease_duration must hold (got 2s, 10s, 10s)",
        "admin_server 'http://api' must be an https:// URL (empty: the plan's API server)",
        "apiserver_extra_args: '--v' is not a flag name (lowercase, digits, '-', no leading --)",
        "apiserver_extra_args.feature-gates: ['A=true'] must be a string, number or boolean",
        "extra_sans must be a list of DNS names and IP addresses",
    ]
    assert str(err.value).startswith("cluster 'x': 19 problems:\n  - unknown setting 'typo_setting'")


def test_not_a_mapping():
    with pytest.raises(ControlPlaneError, match="expected a mapping of settings, got list"):
        settings_from(["version"])


@pytest.mark.parametrize(
    ("text", "seconds"), [("40s", 40.0), ("1m30s", 90.0), ("1h", 3600.0), ("500ms", 0.5)]
)
def test_duration_seconds(text, seconds):
    assert duration_seconds(text) == seconds
