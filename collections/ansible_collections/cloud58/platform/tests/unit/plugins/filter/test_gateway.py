# -*- coding: utf-8 -*-
# Copyright: cloud58 platform team
# Apache License 2.0
"""The haproxy_gateway_config filter: a thin adapter, one AnsibleFilterError per bad input."""

from __future__ import annotations

from pathlib import Path

import pytest
from ansible.errors import AnsibleFilterError

from ansible_collections.cloud58.platform.plugins.filter.gateway import FilterModule, haproxy_gateway_config
from ansible_collections.cloud58.platform.plugins.module_utils.gateway import haproxy_config
from ansible_collections.cloud58.platform.plugins.module_utils.topology import build_plan, load_inventory

REPO = Path(__file__).resolve().parents[8]

WEB = {"name": "web", "port": 8080, "check_path": "/healthz"}


def test_filter_is_registered():
    assert sorted(FilterModule().filters()) == [
        "gateway_hosts",
        "haproxy_exporter_frontend",
        "haproxy_gateway_config",
    ]


def test_exporter_frontend_filter_refuses_a_bad_port_as_an_ansible_error():
    with pytest.raises(AnsibleFilterError) as caught:
        FilterModule().filters()["haproxy_exporter_frontend"](70000, "0.0.0.0", "/metrics")
    assert (
        str(caught.value) == "haproxy_exporter_frontend: metrics_port: expected an integer 0-65535, got 70000"
    )


def test_gateway_hosts_of_the_lab_are_its_two_ingress_minions():
    plan = build_plan(load_inventory(str(REPO / "inventories/lab"))).as_dict()
    assert FilterModule().filters()["gateway_hosts"](plan) == ["lab1-w1", "lab2-w1"]


def test_gateway_hosts_raises_ansible_filter_error():
    with pytest.raises(AnsibleFilterError) as caught:
        FilterModule().filters()["gateway_hosts"]("lab1")
    assert str(caught.value) == "gateway_hosts: expected a topology plan with a hosts mapping, got str"


@pytest.mark.parametrize(
    ("settings", "expected_settings"),
    [
        pytest.param(None, {}, id="no-settings"),
        pytest.param({"rate_limit": 7}, {"rate_limit": 7}, id="settings"),
    ],
)
def test_filter_returns_the_renderers_text(settings, expected_settings):
    text = haproxy_gateway_config([WEB], settings)
    assert text == haproxy_config([WEB], expected_settings)
    assert ("gt 7 }" in text) == ("rate_limit" in expected_settings)


@pytest.mark.parametrize(
    ("services", "settings", "message"),
    [
        pytest.param(
            [{"name": "web", "port": 70000}],
            None,
            "haproxy_gateway_config: service 'web' port: expected a port 1-65535, got 70000",
            id="port",
        ),
        pytest.param(
            [WEB],
            {"rate_limit": 0},
            "haproxy_gateway_config: gateway setting rate_limit: expected an integer 1-10000000, got 0",
            id="rate-limit",
        ),
    ],
)
def test_bad_input_raises_ansible_filter_error(services, settings, message):
    with pytest.raises(AnsibleFilterError) as caught:
        haproxy_gateway_config(services, settings)
    assert str(caught.value) == message
