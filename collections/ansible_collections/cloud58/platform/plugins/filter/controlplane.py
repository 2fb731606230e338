# -*- coding: utf-8 -*-
# Copyright: cloud58 platform team
# Apache License 2.0
"""Filters of the control_plane role: thin adapters over ``module_utils/controlplane``."""

from __future__ import annotations

from ansible.errors import AnsibleFilterError

from ansible_collections.cloud58.platform.plugins.module_utils.controlplane.configs import kubeconfig
from ansible_collections.cloud58.platform.plugins.module_utils.controlplane.pki_plan import (
    NODE_AGENTS,
    agent_user,
)


def kubelet_kubeconfig(cluster, host, server, config_dir):
    """The kubeconfig of ``host``'s kubelet: its client pair and the cluster CA by path."""
    if not isinstance(cluster, dict) or "name" not in cluster or "nodes" not in cluster:
        raise AnsibleFilterError(
            f"kubelet_kubeconfig: the input must be a cluster of the plan, got {cluster!r}"
        )
    if host not in cluster["nodes"]:
        raise AnsibleFilterError(
            f"kubelet_kubeconfig: {host!r} is not a node of cluster {cluster['name']!r} "
            f"(nodes: {', '.join(cluster['nodes'])})"
        )
    if not isinstance(server, str) or not server.startswith("https://"):
        raise AnsibleFilterError(
            f"kubelet_kubeconfig: the API server of {host!r} must be an https URL, got {server!r}"
        )
    pki = f"{str(config_dir).rstrip('/')}/pki"
    return kubeconfig(
        cluster["name"],
        server,
        ca_file=f"{pki}/ca.crt",
        cert_file=f"{pki}/kubelet-client.crt",
        key_file=f"{pki}/kubelet-client.key",
        user=f"system:node:{host}",
    )


def agent_kubeconfig(cluster, host, agent, server, config_dir):
    """The kubeconfig of node agent ``agent`` on minion ``host``: its client pair (installed
    with the kubelet's by the join stage) and the cluster CA by path; no secret in it."""
    if agent not in NODE_AGENTS:
        raise AnsibleFilterError(
            f"agent_kubeconfig: {agent!r} is not a node agent with a certificate "
            f"(agents: {', '.join(NODE_AGENTS)})"
        )
    if (
        not isinstance(cluster, dict)
        or "name" not in cluster
        or "nodes" not in cluster
        or "masters" not in cluster
    ):
        raise AnsibleFilterError(
            f"agent_kubeconfig: the input must be a cluster of the plan, got {cluster!r}"
        )
    minions = [n for n in cluster["nodes"] if n not in cluster["masters"]]
    if host not in minions:
        raise AnsibleFilterError(
            f"agent_kubeconfig: {host!r} is not a minion of cluster {cluster['name']!r} "
            f"(minions: {', '.join(minions) or 'none'})"
        )
    if not isinstance(server, str) or not server.startswith("https://"):
        raise AnsibleFilterError(
            f"agent_kubeconfig: the API server of {host!r} must be an https URL, got {server!r}"
        )
    pki = f"{str(config_dir).rstrip('/')}/pki"
    return kubeconfig(
        cluster["name"],
        server,
        ca_file=f"{pki}/ca.crt",
        cert_file=f"{pki}/{agent}.crt",
        key_file=f"{pki}/{agent}.key",
        user=agent_user(agent, host)[0],
    )


class FilterModule:
    def filters(self):
        return {"agent_kubeconfig": agent_kubeconfig, "kubelet_kubeconfig": kubelet_kubeconfig}
