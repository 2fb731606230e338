# -*- coding: utf-8 -*-
# Copyright: cloud58 platform team
# Apache License 2.0
"""Filters of the control_plane role: thin adapters over ``module_utils/controlplane``."""

from __future__ import annotations

from ansible.errors import AnsibleFilterError

from ansible_collections.cloud58.platform.plugins.module_utils.controlplane.configs import kubeconfig
from ansible_collections.cloud58.platform.plugins.module_utils.controlplane.pki_plan import (
    CONSUL_SYNC_CERT,
    CONSUL_SYNC_USER,
    LVS_SYNC_CERT,
    LVS_SYNC_USER,
    NODE_AGENTS,
    agent_user,
)


def _by_path(name, cluster, host, server, config_dir, *, pair, user):
    """The kubeconfig naming the client pair ``pair`` and the cluster CA under
    ``config_dir``/pki (no key in it), after the checks both filters share."""
    if not isinstance(server, str) or not server.startswith("https://"):
        raise AnsibleFilterError(f"{name}: the API server of {host!r} must be an https URL, got {server!r}")
    pki = f"{str(config_dir).rstrip('/')}/pki"
    return kubeconfig(
        cluster["name"],
        server,
        ca_file=f"{pki}/ca.crt",
        cert_file=f"{pki}/{pair}.crt",
        key_file=f"{pki}/{pair}.key",
        user=user,
    )


def _cluster(name, cluster, *keys):
    if not isinstance(cluster, dict) or any(k not in cluster for k in ("name", *keys)):
        raise AnsibleFilterError(f"{name}: the input must be a cluster of the plan, got {cluster!r}")


def kubelet_kubeconfig(cluster, host, server, config_dir):
    """The kubeconfig of ``host``'s kubelet: its client pair and the cluster CA by path."""
    _cluster("kubelet_kubeconfig", cluster, "nodes")
    if host not in cluster["nodes"]:
        raise AnsibleFilterError(
            f"kubelet_kubeconfig: {host!r} is not a node of cluster {cluster['name']!r} "
            f"(nodes: {', '.join(cluster['nodes'])})"
        )
    return _by_path(
        "kubelet_kubeconfig",
        cluster,
        host,
        server,
        config_dir,
        pair="kubelet-client",
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
    _cluster("agent_kubeconfig", cluster, "nodes", "masters")
    minions = [n for n in cluster["nodes"] if n not in cluster["masters"]]
    if host not in minions:
        raise AnsibleFilterError(
            f"agent_kubeconfig: {host!r} is not a minion of cluster {cluster['name']!r} "
            f"(minions: {', '.join(minions) or 'none'})"
        )
    return _by_path(
        "agent_kubeconfig", cluster, host, server, config_dir, pair=agent, user=agent_user(agent, host)[0]
    )


def _sync_kubeconfig(name, cluster, server, config_dir, *, pair, user):
    """The kubeconfig of a sync that runs outside ``cluster``: the client pair ``pair`` of
    ``user`` and the cluster CA by path under ``config_dir``/pki."""
    _cluster(name, cluster)
    return _by_path(name, cluster, cluster["name"], server, config_dir, pair=pair, user=user)


def consul_sync_kubeconfig(cluster, server, config_dir):
    """The kubeconfig of cloud58-consul-sync of ``cluster``: its client pair (user
    cloud58:consul-sync) and the cluster CA under ``config_dir``/pki, where site.yml's
    consul_sync stage copies them; no secret in it."""
    return _sync_kubeconfig(
        "consul_sync_kubeconfig", cluster, server, config_dir, pair=CONSUL_SYNC_CERT, user=CONSUL_SYNC_USER
    )


def lvs_sync_kubeconfig(cluster, server, config_dir):
    """The kubeconfig of cloud58-lvs-sync on a director of ``cluster``'s datacenter: its client
    pair (user cloud58:lvs-sync) and the cluster CA under ``config_dir``/pki, where site.yml's
    lvs stage copies them; no secret in it."""
    return _sync_kubeconfig(
        "lvs_sync_kubeconfig", cluster, server, config_dir, pair=LVS_SYNC_CERT, user=LVS_SYNC_USER
    )


class FilterModule:
    def filters(self):
        return {
            "agent_kubeconfig": agent_kubeconfig,
            "consul_sync_kubeconfig": consul_sync_kubeconfig,
            "kubelet_kubeconfig": kubelet_kubeconfig,
            "lvs_sync_kubeconfig": lvs_sync_kubeconfig,
        }
