# -*- coding: utf-8 -*-
# Copyright: cloud58 platform team
# Apache License 2.0
"""Filters over module_utils/lvs: the BIRD configuration with which an LVS director announces
its healthy VIPs, and the cluster its cloud58-lvs-sync reads (documented in lvs_bird_config.yml
and lvs_sync_cluster.yml next to this file, as ansible-doc reads them).
"""

from __future__ import annotations

from ansible.errors import AnsibleFilterError

from ansible_collections.cloud58.platform.plugins.module_utils.lvs.announce import (
    bird_config,
    healthy_from_json,
)
from ansible_collections.cloud58.platform.plugins.module_utils.lvs.plan import LvsError, director_cluster


def lvs_bird_config(plan, director, healthy=None, realservers=None, healthy_source="healthy"):
    """bird.conf text of ``director``; ``healthy`` is a list of VIP addresses, the JSON text of
    a healthy file (named by ``healthy_source`` in errors) or None (VIPs with realservers)."""
    if not isinstance(plan, dict) or "datacenters" not in plan or "hosts" not in plan:
        raise AnsibleFilterError(
            f"lvs_bird_config: expected the plan (a mapping with 'datacenters' and 'hosts'), "
            f"got {type(plan).__name__}"
        )
    host = plan["hosts"].get(director) if isinstance(director, str) else None
    if host is None:
        raise AnsibleFilterError(f"lvs_bird_config: {director!r} is not a host of the plan")
    try:
        if isinstance(healthy, str):
            healthy = healthy_from_json(healthy, healthy_source)
        dc = plan["datacenters"][host["datacenter"]]
        return bird_config(
            dc.get("lvs") or {},
            director,
            host.get("bgp"),
            healthy=healthy,
            realservers=realservers,
            options=dc.get("bgp_options"),
            healthy_source=healthy_source,
        )
    except LvsError as e:
        raise AnsibleFilterError(f"lvs_bird_config({director}): {e}") from e


def lvs_sync_cluster(plan, director, chosen=""):
    """The plan's cluster (its entry) whose Services ``director``'s cloud58-lvs-sync reads."""
    if not isinstance(plan, dict) or not {"datacenters", "hosts", "clusters"} <= set(plan):
        raise AnsibleFilterError(
            f"lvs_sync_cluster: expected the plan (a mapping with 'datacenters', 'hosts' and 'clusters'), "
            f"got {type(plan).__name__}"
        )
    try:
        return plan["clusters"][director_cluster(plan, director, chosen or "")]
    except LvsError as e:
        raise AnsibleFilterError(f"lvs_sync_cluster: {e}") from e


class FilterModule:
    def filters(self):
        return {"lvs_bird_config": lvs_bird_config, "lvs_sync_cluster": lvs_sync_cluster}
