# -*- coding: utf-8 -*-
# Copyright: cloud58 platform team
# Apache License 2.0
"""Where cloud58-consul-sync runs (pure): one host per cluster of the plan.

``sync_hosts(plan, group)``: per cluster, in the plan's cluster order, the host of the
inventory group ``consul_sync`` (``group``) that is a node of that cluster, else the cluster's
first master in plan order. Every host of the plan runs Consul (an agent or a server), which the
sync writes to on ``localhost``. A host of the group that is no node of a cluster of the plan,
or two hosts of the group in one cluster (two syncs would write the same node), fail with one
line naming them.
"""

from __future__ import annotations

from .catalog import DiscoveryError


def sync_hosts(plan, group=None) -> list:
    """The hosts of site.yml's consul_sync stage, one per cluster, in the plan's cluster order."""
    clusters = plan.get("clusters") if isinstance(plan, dict) else None
    hosts = plan.get("hosts") if isinstance(plan, dict) else None
    if not isinstance(clusters, dict) or not isinstance(hosts, dict):
        raise DiscoveryError(
            f"consul_sync_hosts: expected a topology plan with clusters and hosts, got {type(plan).__name__}"
        )
    if group is None:
        group = []
    if isinstance(group, str) or not isinstance(group, (list, tuple)):
        raise DiscoveryError(f"consul_sync_hosts: group consul_sync: expected a list of hosts, got {group!r}")
    chosen = {}
    for host in group:
        cluster = (hosts.get(host) or {}).get("cluster") if isinstance(host, str) else None
        if cluster not in clusters:
            raise DiscoveryError(
                f"consul_sync_hosts: group consul_sync: {host!r} is no node of a cluster of the plan "
                f"(clusters: {', '.join(sorted(clusters)) or 'none'})"
            )
        if cluster in chosen:
            raise DiscoveryError(
                f"consul_sync_hosts: group consul_sync: {chosen[cluster]} and {host} are both in cluster "
                f"{cluster}; one sync per cluster"
            )
        chosen[cluster] = host
    out = []
    for name, cluster in clusters.items():
        if name in chosen:
            out.append(chosen[name])
        elif cluster.get("masters"):
            out.append(cluster["masters"][0])
        else:
            raise DiscoveryError(
                f"consul_sync_hosts: cluster {name} has no master and no host in group consul_sync"
            )
    return out
