"""The one port per job of the programs whose hosts each set their own (pure)."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from ansible_collections.cloud58.platform.plugins.module_utils.monitoring import MonitoringError
from ansible_collections.cloud58.platform.plugins.module_utils.monitoring.ports import (
    PROGRAM_PORTS,
    agreed_port,
    host_ports,
    port_problem,
    port_problems,
)
from ansible_collections.cloud58.platform.plugins.module_utils.topology import build_plan, load_inventory

REPO = Path(__file__).resolve().parents[9]
ROLES = REPO / "collections/ansible_collections/cloud58/platform/roles"


@pytest.fixture(scope="module")
def plan():
    return build_plan(load_inventory(str(REPO / "inventories/lab"))).as_dict()


@pytest.mark.parametrize(
    ("job", "role", "variable", "default"),
    [
        ("lvs", "lvs_director", "lvs_director_exporter_port", 9110),
        ("lvs-sync", "lvs_director", "lvs_director_sync_metrics_port", 9658),
        ("consul-sync", "consul_sync", "consul_sync_metrics_port", 9664),
        ("gateway-sync", "haproxy_gateway", "haproxy_gateway_sync_metrics_port", 9665),
    ],
)
def test_each_jobs_variable_and_default_are_its_roles(job, role, variable, default):
    defaults = yaml.safe_load((ROLES / role / "defaults/main.yml").read_text())
    program = PROGRAM_PORTS[job]
    assert (program.role, program.variable, program.default) == (role, variable, default)
    assert defaults[variable] == default


def test_the_table_has_exactly_the_four_jobs():
    assert list(PROGRAM_PORTS) == ["lvs", "lvs-sync", "consul-sync", "gateway-sync"]


@pytest.mark.parametrize(
    ("host_vars", "expected"),
    [
        pytest.param({}, {"a": 9658, "b": 9658}, id="defaults"),
        pytest.param({"a": {"lvs_director_sync_metrics_port": 9700}}, {"a": 9700, "b": 9658}, id="one-set"),
        pytest.param({"a": {"lvs_director_sync_metrics_port": "9700"}}, {"a": 9700, "b": 9658}, id="text"),
        pytest.param({"b": {"lvs_director_sync_metrics_port": 0}}, {"a": 9658, "b": 0}, id="off"),
    ],
)
def test_host_ports(host_vars, expected):
    assert host_ports("lvs-sync", ["a", "b"], host_vars) == expected


@pytest.mark.parametrize(
    ("value", "shown"),
    [("91l0", "'91l0'"), (True, "True"), (65536, "65536"), (-1, "-1"), ("", "''"), (9110.5, "9110.5")],
)
def test_a_value_that_is_no_port_names_the_host_and_variable(value, shown):
    with pytest.raises(MonitoringError) as e:
        host_ports("lvs", ["lab1-lvs1", "lab1-lvs2"], {"lab1-lvs2": {"lvs_director_exporter_port": value}})
    assert str(e.value) == f"host lab1-lvs2: lvs_director_exporter_port: expected a port 0-65535, got {shown}"


def test_an_unknown_job_lists_the_known_ones():
    with pytest.raises(MonitoringError) as e:
        host_ports("lvs-exporter", ["a"], {})
    assert (
        str(e.value)
        == "job 'lvs-exporter' has no per-host port; known: lvs, lvs-sync, consul-sync, gateway-sync"
    )


@pytest.mark.parametrize(
    ("job", "hosts", "host_vars", "expected"),
    [
        pytest.param("lvs", [], {}, 9110, id="no-hosts-default"),
        pytest.param("gateway-sync", ["w1"], {}, 9665, id="default"),
        pytest.param(
            "consul-sync",
            ["m1", "m2"],
            {"m1": {"consul_sync_metrics_port": 9800}, "m2": {"consul_sync_metrics_port": 9800}},
            9800,
            id="agreed",
        ),
    ],
)
def test_agreed_port(job, hosts, host_vars, expected):
    assert agreed_port(job, hosts, host_vars) == expected


def test_hosts_that_disagree_have_no_agreed_port():
    with pytest.raises(MonitoringError) as e:
        agreed_port("consul-sync", ["m1", "m2"], {"m2": {"consul_sync_metrics_port": 9800}})
    assert str(e.value) == (
        'consul_sync_metrics_port differs between its consul sync hosts ({"m1": 9664, "m2": 9800}); '
        "its Prometheus scrapes their cloud58-consul-sync on one port (job consul-sync): give them one value"
    )


def test_port_problem_lists_the_hosts_by_name():
    host_vars = {"lab1-w2": {"haproxy_gateway_sync_metrics_port": 9701}}
    problem = port_problem("gateway-sync", "lab1", ["lab1-w2", "lab1-w1"], host_vars)
    assert '({"lab1-w1": 9665, "lab1-w2": 9701})' in problem


def test_port_problem_names_the_datacenter_only_when_they_disagree():
    assert port_problem("lvs", "lab1", ["lab1-lvs1", "lab1-lvs2"], {}) == ""
    assert port_problem(
        "lvs", "lab1", ["lab1-lvs1", "lab1-lvs2"], {"lab1-lvs1": {"lvs_director_exporter_port": 1}}
    ) == (
        'datacenter lab1: lvs_director_exporter_port differs between its LVS directors ({"lab1-lvs1": 1, '
        '"lab1-lvs2": 9110}); its Prometheus scrapes them all on one port (job lvs): give them one value'
    )


def test_port_problems_compare_hosts_within_each_datacenter_only(plan):
    hosts_by_job = {
        "lvs": ["lab1-lvs1", "lab1-lvs2", "lab2-lvs1", "lab2-lvs2"],
        "gateway-sync": ["lab1-w1", "lab1-w2", "lab2-w1"],
        "consul-sync": ["lab1-m1", "lab2-m1"],
    }
    host_vars = {
        # each datacenter's directors agree among themselves, on different ports
        "lab2-lvs1": {"lvs_director_exporter_port": 9111},
        "lab2-lvs2": {"lvs_director_exporter_port": 9111},
        # one consul sync per datacenter, on different ports
        "lab2-m1": {"consul_sync_metrics_port": 9800},
        # two gateways of lab1 disagree; lab2's one is alone
        "lab1-w2": {"haproxy_gateway_sync_metrics_port": 9701},
        "lab2-w1": {"haproxy_gateway_sync_metrics_port": 9702},
    }
    assert port_problems(plan, hosts_by_job, host_vars) == [
        "datacenter lab1: haproxy_gateway_sync_metrics_port differs between its ingress gateways "
        '({"lab1-w1": 9665, "lab1-w2": 9701}); its Prometheus scrapes their cloud58-gateway-sync on one port '
        "(job gateway-sync): give them one value"
    ]


def test_port_problems_lists_datacenters_by_name_then_jobs_in_order(plan):
    hosts_by_job = {
        "lvs": ["lab2-lvs1", "lab2-lvs2", "lab1-lvs1", "lab1-lvs2"],
        "lvs-sync": ["lab1-lvs1", "lab1-lvs2"],
    }
    host_vars = {
        "lab1-lvs1": {"lvs_director_sync_metrics_port": 9700},
        "lab2-lvs2": {"lvs_director_exporter_port": 9111},
        "lab1-lvs2": {"lvs_director_exporter_port": 9111},
    }
    assert [p.split(" differs")[0] for p in port_problems(plan, hosts_by_job, host_vars)] == [
        "datacenter lab1: lvs_director_exporter_port",
        "datacenter lab1: lvs_director_sync_metrics_port",
        "datacenter lab2: lvs_director_exporter_port",
    ]
