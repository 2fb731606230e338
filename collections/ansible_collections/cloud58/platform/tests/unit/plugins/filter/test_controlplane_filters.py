# -*- coding: utf-8 -*-
# Copyright: cloud58 platform team
# Apache License 2.0
"""The control_plane filters: kubeconfigs that name their files, never hold a key, and one
AnsibleFilterError per bad input."""

from __future__ import annotations

import os

import pytest
from ansible.errors import AnsibleFilterError

from ansible_collections.cloud58.platform.plugins.filter.controlplane import (
    FilterModule,
    agent_kubeconfig,
    consul_sync_kubeconfig,
    kubelet_kubeconfig,
    lvs_sync_kubeconfig,
)
from ansible_collections.cloud58.platform.plugins.module_utils.topology import build_plan, load_inventory

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), *([".."] * 8)))
SERVER = "https://198.18.0.11:8443"


@pytest.fixture(scope="module")
def cluster():
    plan = build_plan(load_inventory(os.path.join(REPO, "inventories", "lab"))).as_dict()
    return plan["clusters"]["lab1-k8s"]


def test_filters_are_registered():
    assert sorted(FilterModule().filters()) == [
        "agent_kubeconfig",
        "consul_sync_kubeconfig",
        "kubelet_kubeconfig",
        "lvs_sync_kubeconfig",
    ]


@pytest.mark.parametrize(
    ("call", "user", "pair"),
    [
        (
            lambda c: kubelet_kubeconfig(c, "lab1-w2", SERVER, "/etc/kubernetes"),
            "system:node:lab1-w2",
            "kubelet-client",
        ),
        (
            lambda c: agent_kubeconfig(c, "lab1-w2", "netshaper", SERVER, "/etc/kubernetes/"),
            "cloud58:netshaper:lab1-w2",
            "netshaper",
        ),
        (
            lambda c: agent_kubeconfig(c, "lab1-w1", "overload", SERVER, "/etc/k8s"),
            "cloud58:overload:lab1-w1",
            "overload",
        ),
    ],
)
def test_kubeconfig_names_the_user_and_its_files(cluster, call, user, pair):
    config = call(cluster)
    directory = config["users"][0]["user"]["client-certificate"].rsplit("/", 1)[0]
    assert config["users"] == [
        {
            "name": user,
            "user": {
                "client-certificate": f"{directory}/{pair}.crt",
                "client-key": f"{directory}/{pair}.key",
            },
        }
    ]
    assert config["clusters"] == [
        {"name": "lab1-k8s", "cluster": {"server": SERVER, "certificate-authority": f"{directory}/ca.crt"}}
    ]
    assert directory in ("/etc/kubernetes/pki", "/etc/k8s/pki")


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ("lab1-w1", "signals", SERVER),
            "agent_kubeconfig: 'signals' is not a node agent with a certificate "
            "(agents: netshaper, overload, crashkeeper, loadannotator)",
        ),
        (
            ("lab1-m1", "overload", SERVER),
            "agent_kubeconfig: 'lab1-m1' is not a minion of cluster 'lab1-k8s' (minions: lab1-w1, lab1-w2)",
        ),
        (
            ("lab1-w1", "overload", "http://198.18.0.11:8080"),
            "agent_kubeconfig: the API server of 'lab1-w1' must be an https URL, got 'http://198.18.0.11:8080'",
        ),
    ],
)
def test_agent_kubeconfig_refuses_by_name(cluster, args, message):
    host, agent, server = args
    with pytest.raises(AnsibleFilterError) as caught:
        agent_kubeconfig(cluster, host, agent, server, "/etc/kubernetes")
    assert str(caught.value) == message


@pytest.mark.parametrize(
    ("name", "config_dir", "user", "pair"),
    [
        pytest.param(
            "consul_sync_kubeconfig", "/etc/cloud58/consul-sync/", "cloud58:consul-sync", "consul-sync"
        ),
        pytest.param("lvs_sync_kubeconfig", "/etc/cloud58/lvs-sync", "cloud58:lvs-sync", "lvs-sync"),
    ],
)
def test_a_sync_s_kubeconfig_names_its_user_and_files_and_holds_no_secret(
    cluster, name, config_dir, user, pair
):
    make = {"consul_sync_kubeconfig": consul_sync_kubeconfig, "lvs_sync_kubeconfig": lvs_sync_kubeconfig}[
        name
    ]
    pki = config_dir.rstrip("/") + "/pki"
    assert make(cluster, SERVER, config_dir) == {
        "apiVersion": "v1",
        "kind": "Config",
        "preferences": {},
        "current-context": "lab1-k8s",
        "clusters": [
            {"name": "lab1-k8s", "cluster": {"server": SERVER, "certificate-authority": f"{pki}/ca.crt"}}
        ],
        "users": [
            {
                "name": user,
                "user": {"client-certificate": f"{pki}/{pair}.crt", "client-key": f"{pki}/{pair}.key"},
            }
        ],
        "contexts": [{"name": "lab1-k8s", "context": {"cluster": "lab1-k8s", "user": user}}],
    }
    with pytest.raises(AnsibleFilterError) as caught:
        make(cluster, "http://198.18.0.11:8443", config_dir)
    assert str(caught.value) == (
        f"{name}: the API server of 'lab1-k8s' must be an https URL, got 'http://198.18.0.11:8443'"
    )
