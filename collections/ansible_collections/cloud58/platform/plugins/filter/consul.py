# -*- coding: utf-8 -*-
# Copyright: cloud58 platform team
# Apache License 2.0
"""Filters over module_utils/consul: a host's Consul configuration, its certificate's names,
and the checks of the consul role's inputs.

Documented in consul_node_config.yml, consul_tls_names.yml, consul_problem.yml,
consul_agent_token.yml, consul_dns_token.yml, consul_prometheus_token.yml, consul_gateway_token.yml,
consul_replication_token.yml, consul_sync_token.yml, consul_stale_sync_policies.yml and
consul_stale_agent_tokens.yml next to
this file, as ansible-doc reads them.
"""

from __future__ import annotations

from ansible.errors import AnsibleFilterError

from ansible_collections.cloud58.platform.plugins.module_utils.consul import (
    DNS_POLICY,
    DNS_RULES,
    GATEWAY_POLICY,
    GATEWAY_RULES,
    PROMETHEUS_POLICY,
    PROMETHEUS_RULES,
    REPLICATION_POLICY,
    REPLICATION_RULES,
    ConsulError,
    agent_token,
    agent_token_description,
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


def consul_node_config(plan, host, settings=None, primary_datacenter=None):
    try:
        return node_config(plan, host, settings or {}, primary_datacenter or None)
    except ConsulError as e:
        raise AnsibleFilterError(f"consul_node_config: {e}") from e


def consul_agent_token(management_token, datacenter, node, described=False):
    """The node's agent token; ``described``: with the ``Description`` the role gives it."""
    try:
        token = agent_token(management_token, datacenter, node)
    except ConsulError as e:
        raise AnsibleFilterError(f"consul_agent_token: {e}") from e
    return {**token, "Description": agent_token_description(node)} if described else token


def consul_stale_agent_tokens(tokens, plan, management_token):
    try:
        return stale_agent_tokens(tokens, plan, management_token)
    except ConsulError as e:
        raise AnsibleFilterError(f"consul_stale_agent_tokens: {e}") from e


def consul_dns_token(management_token):
    try:
        return {**dns_token(management_token), "Policy": DNS_POLICY, "Rules": DNS_RULES}
    except ConsulError as e:
        raise AnsibleFilterError(f"consul_dns_token: {e}") from e


def consul_prometheus_token(management_token):
    try:
        return {**prometheus_token(management_token), "Policy": PROMETHEUS_POLICY, "Rules": PROMETHEUS_RULES}
    except ConsulError as e:
        raise AnsibleFilterError(f"consul_prometheus_token: {e}") from e


def consul_gateway_token(management_token):
    try:
        return {**gateway_token(management_token), "Policy": GATEWAY_POLICY, "Rules": GATEWAY_RULES}
    except ConsulError as e:
        raise AnsibleFilterError(f"consul_gateway_token: {e}") from e


def consul_replication_token(management_token):
    try:
        return {
            **replication_token(management_token),
            "Policy": REPLICATION_POLICY,
            "Rules": REPLICATION_RULES,
        }
    except ConsulError as e:
        raise AnsibleFilterError(f"consul_replication_token: {e}") from e


def consul_sync_token(management_token, cluster, datacenter=None):
    """The cluster's token, and with ``datacenter`` its policy's ``PolicyDescription`` too."""
    try:
        token = sync_token(management_token, cluster)
    except ConsulError as e:
        raise AnsibleFilterError(f"consul_sync_token: {e}") from e
    if datacenter is None:
        return token
    return {**token, "PolicyDescription": sync_policy_description(cluster, datacenter)}


def consul_stale_sync_policies(policies, plan):
    try:
        return stale_sync_policies(policies, plan)
    except ConsulError as e:
        raise AnsibleFilterError(f"consul_stale_sync_policies: {e}") from e


def consul_tls_names(plan, host, domain="consul"):
    try:
        return tls_names(plan, host, domain)
    except ConsulError as e:
        raise AnsibleFilterError(f"consul_tls_names: {e}") from e


def consul_problem(what, **values):
    """``'install'``: install_problem(version, url, sha256); ``'secrets'``:
    secrets_problem(encrypt_key, management_token, tls). One line, or ``''``."""
    if what == "install":
        return install_problem(values.get("version"), values.get("url"), values.get("sha256"))
    if what == "secrets":
        return secrets_problem(values.get("encrypt_key"), values.get("management_token"), values.get("tls"))
    raise AnsibleFilterError(f"consul_problem: expected 'install' or 'secrets', got {what!r}")


class FilterModule:
    def filters(self):
        return {
            "consul_agent_token": consul_agent_token,
            "consul_dns_token": consul_dns_token,
            "consul_gateway_token": consul_gateway_token,
            "consul_node_config": consul_node_config,
            "consul_problem": consul_problem,
            "consul_prometheus_token": consul_prometheus_token,
            "consul_replication_token": consul_replication_token,
            "consul_stale_agent_tokens": consul_stale_agent_tokens,
            "consul_stale_sync_policies": consul_stale_sync_policies,
            "consul_sync_token": consul_sync_token,
            "consul_tls_names": consul_tls_names,
        }
