# -*- coding: utf-8 -*-
# Copyright: cloud58 platform team
# Apache License 2.0
"""Consul: the configuration of a datacenter's Consul servers and agents (pure).

Hosts, addresses and settings are read as plain data; nothing of the planner is imported
(docs/service-discovery.md).
"""

from __future__ import annotations

from .nodes import (
    DNS_POLICY,
    DNS_RULES,
    GATEWAY_POLICY,
    GATEWAY_RULES,
    PROMETHEUS_POLICY,
    PROMETHEUS_RULES,
    REPLICATION_POLICY,
    REPLICATION_RULES,
    SERVER_ROLE,
    SYNC_POLICY,
    SYNC_RULES,
    agent_token,
    agent_token_description,
    datacenter_servers,
    dns_token,
    gateway_token,
    install_problem,
    node_config,
    prometheus_token,
    replication_token,
    secrets_problem,
    stale_agent_tokens,
    stale_sync_policies,
    sync_policy_description,
    sync_token,
    tls_names,
)
from .pki import consul_pki_plan
from .servers import DEFAULT_SETTINGS, SERVER_COUNTS, ConsulError, server_config

__all__ = [
    "DEFAULT_SETTINGS",
    "DNS_POLICY",
    "DNS_RULES",
    "GATEWAY_POLICY",
    "GATEWAY_RULES",
    "PROMETHEUS_POLICY",
    "PROMETHEUS_RULES",
    "REPLICATION_POLICY",
    "REPLICATION_RULES",
    "SERVER_COUNTS",
    "SERVER_ROLE",
    "SYNC_POLICY",
    "SYNC_RULES",
    "ConsulError",
    "agent_token",
    "agent_token_description",
    "consul_pki_plan",
    "datacenter_servers",
    "dns_token",
    "gateway_token",
    "install_problem",
    "node_config",
    "prometheus_token",
    "replication_token",
    "secrets_problem",
    "server_config",
    "stale_agent_tokens",
    "stale_sync_policies",
    "sync_policy_description",
    "sync_token",
    "tls_names",
]
