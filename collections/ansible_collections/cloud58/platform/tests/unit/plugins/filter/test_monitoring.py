# -*- coding: utf-8 -*-
# Copyright: cloud58 platform team
# Apache License 2.0
"""The prometheus_* and metrics_port* filters: thin adapters, one AnsibleFilterError per bad input."""

from __future__ import annotations

import os

import pytest
from ansible.errors import AnsibleFilterError

from ansible_collections.cloud58.platform.plugins.filter.monitoring import (
    FilterModule,
    metrics_port,
    metrics_port_problems,
    prometheus_args,
    prometheus_client_files,
    prometheus_config,
    prometheus_extra_rules,
    prometheus_hosts,
)
from ansible_collections.cloud58.platform.plugins.module_utils.topology import build_plan, load_inventory

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), *([".."] * 8)))


@pytest.fixture(scope="module")
def plan():
    return build_plan(load_inventory(os.path.join(REPO, "inventories", "lab"))).as_dict()


def test_filters_are_registered():
    assert sorted(FilterModule().filters()) == [
        "metrics_port",
        "metrics_port_problems",
        "prometheus_args",
        "prometheus_client_files",
        "prometheus_config",
        "prometheus_extra_rules",
        "prometheus_hosts",
    ]


def test_prometheus_client_files(plan):
    assert prometheus_client_files(plan, "lab2", {"jobs": ["kube-scheduler"]}) == [
        {
            "pki": "clusters",
            "src": "lab2-k8s/ca.crt",
            "dest": "/etc/prometheus/pki/lab2-k8s/ca.crt",
            "secret": False,
        },
        {
            "pki": "clusters",
            "src": "lab2-k8s/prometheus.crt",
            "dest": "/etc/prometheus/pki/lab2-k8s/prometheus.crt",
            "secret": False,
        },
        {
            "pki": "clusters",
            "src": "lab2-k8s/prometheus.key",
            "dest": "/etc/prometheus/pki/lab2-k8s/prometheus.key",
            "secret": True,
        },
    ]


def test_prometheus_config_is_yaml_text(plan):
    text = prometheus_config(plan, "lab2", {"rule_files": ["/r/*.yml"]})
    assert text.startswith(
        "global:\n  scrape_interval: 15s\n  evaluation_interval: 15s\n"
        "  external_labels:\n    datacenter: lab2\n"
        "rule_files:\n- /r/*.yml\n"
    )
    assert "- 198.19.0.31:9100\n" in text
    assert "198.18." not in text


def test_prometheus_args():
    assert prometheus_args({"retention_time": "30d", "retention_size": "50GB"}) == (
        "--storage.tsdb.retention.time=30d --storage.tsdb.retention.size=50GB"
    )


def test_metrics_port_is_the_hosts_one_port():
    assert (
        metrics_port(
            ["a", "b"],
            "lvs",
            {"a": {"lvs_director_exporter_port": 9200}, "b": {"lvs_director_exporter_port": 9200}},
        )
        == 9200
    )
    assert metrics_port([], "gateway-sync", {}) == 9665


def test_metrics_port_problems_compare_only_the_directors_that_run_the_sync(plan):
    # the inventory's text "yes" for lvs_director_sync counts as on, as Ansible's bool does
    hostvars = {
        "lab1-lvs1": {"lvs_director_sync": "yes", "lvs_director_sync_metrics_port": 9700},
        "lab1-lvs2": {"lvs_director_sync": False, "lvs_director_sync_metrics_port": 9800},
        "lab2-lvs1": {"lvs_director_sync": True, "lvs_director_sync_metrics_port": 9700},
        "lab2-lvs2": {"lvs_director_sync": "yes"},
    }
    assert metrics_port_problems(plan, hostvars) == [
        "datacenter lab2: lvs_director_sync_metrics_port differs between its LVS directors "
        '({"lab2-lvs1": 9700, "lab2-lvs2": 9658}); its Prometheus scrapes their cloud58-lvs-sync on one '
        "port (job lvs-sync): give them one value"
    ]
    assert metrics_port_problems(plan, {d: {} for d in hostvars}, gateway_hosts=["lab1-w1"]) == []


def test_prometheus_hosts(plan):
    assert prometheus_hosts(plan) == ["lab1-m1", "lab2-m1"]


@pytest.mark.parametrize(
    ("call", "message"),
    [
        pytest.param(
            lambda plan: prometheus_config(plan, "lab1", {"kubelet_port": "10250"}),
            "prometheus_config(lab1): monitoring option kubelet_port: expected a port 1-65535, got '10250'",
            id="config-port-as-text",
        ),
        pytest.param(
            lambda plan: prometheus_config([], "lab1"),
            "prometheus_config(lab1): expected the plan (a mapping with 'datacenters'), got list",
            id="config-not-a-plan",
        ),
        pytest.param(
            lambda plan: prometheus_args({"retention_time": "0s"}),
            "prometheus_args: monitoring option retention_time: expected a duration above 0 like 15d, 12h, "
            "2w, got '0s'",
            id="args-retention-zero",
        ),
        pytest.param(
            lambda plan: prometheus_client_files(plan, "lab3"),
            "prometheus_client_files(lab3): datacenter 'lab3' is not in the plan (did you mean 'lab2'?); "
            "datacenters: lab1, lab2",
            id="client-files-unknown-datacenter",
        ),
        pytest.param(
            lambda plan: prometheus_extra_rules(["rules/cloud58-alerts.yml"]),
            "prometheus_extra_rules: prometheus_extra_rules_files: 'rules/cloud58-alerts.yml':"
            " cloud58-alerts.yml is the name of a platform rules file",
            id="extra-rules-platform-name",
        ),
        pytest.param(
            lambda plan: metrics_port(["m1", "m2"], "consul-sync", {"m2": {"consul_sync_metrics_port": 1}}),
            "metrics_port(consul-sync): consul_sync_metrics_port differs between its consul sync hosts "
            '({"m1": 9664, "m2": 1}); its Prometheus scrapes their cloud58-consul-sync on one port '
            "(job consul-sync): give them one value",
            id="port-disagreed",
        ),
        pytest.param(
            lambda plan: metrics_port(["w1"], "gateway", {}),
            "metrics_port(gateway): job 'gateway' has no per-host port; known: lvs, lvs-sync, consul-sync, "
            "gateway-sync",
            id="port-unknown-job",
        ),
        pytest.param(
            lambda plan: metrics_port_problems(plan, {"lab1-lvs1": {"lvs_director_exporter_port": "x"}}),
            "metrics_port_problems: host lab1-lvs1: lvs_director_exporter_port: expected a port 0-65535, "
            "got 'x'",
            id="problems-not-a-port",
        ),
        pytest.param(
            lambda plan: metrics_port_problems(["lab1"], {}),
            "metrics_port_problems: expected the plan (a mapping with 'datacenters' and 'hosts'), got list",
            id="problems-not-a-plan",
        ),
        pytest.param(
            lambda plan: prometheus_hosts("plan"),
            "prometheus_hosts: expected the plan (a mapping with 'datacenters'), got str",
            id="hosts-not-a-plan",
        ),
    ],
)
def test_bad_input_is_one_filter_error(plan, call, message):
    with pytest.raises(AnsibleFilterError) as e:
        call(plan)
    assert e.value.message == message
