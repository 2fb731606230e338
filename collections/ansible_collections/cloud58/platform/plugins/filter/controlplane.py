# -*- coding: utf-8 -*-
# Copyright: cloud58 platform team
# Apache License 2.0
"""Filters of the control_plane role: thin adapters over ``module_utils/controlplane``."""

from __future__ import annotations

from ansible.errors import AnsibleFilterError

from ansible_collections.cloud58.platform.plugins.module_utils.controlplane.configs import kubeconfig


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


class FilterModule:
    def filters(self):
        return {"kubelet_kubeconfig": kubelet_kubeconfig}
