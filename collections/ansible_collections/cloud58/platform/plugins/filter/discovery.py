# -*- coding: utf-8 -*-
# Copyright: cloud58 platform team
# Apache License 2.0
"""Filters of service discovery (issue 15 item 3), over module_utils/discovery.

consul_sync_config(variables) -> the configuration file of cloud58-consul-sync.
consul_sync_hosts(plan, group) -> the hosts site.yml's consul_sync stage runs the sync on.
A bad or missing variable fails with one line naming it; a secret's value is never shown.
"""

from __future__ import annotations

from ansible.errors import AnsibleFilterError

from ansible_collections.cloud58.platform.plugins.module_utils.discovery.catalog import DiscoveryError
from ansible_collections.cloud58.platform.plugins.module_utils.discovery.hosts import sync_hosts
from ansible_collections.cloud58.platform.plugins.module_utils.discovery.syncconfig import sync_config


def consul_sync_config(variables):
    if not isinstance(variables, dict):
        raise AnsibleFilterError(f"consul_sync_config: {type(variables).__name__} is not a dict of variables")
    try:
        return sync_config(dict(variables))
    except DiscoveryError as e:
        raise AnsibleFilterError(f"consul_sync_config: {e}") from e


def consul_sync_hosts(plan, group=None):
    try:
        return sync_hosts(plan, group)
    except DiscoveryError as e:
        raise AnsibleFilterError(str(e)) from e


class FilterModule:
    def filters(self):
        return {"consul_sync_config": consul_sync_config, "consul_sync_hosts": consul_sync_hosts}
