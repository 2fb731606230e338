# -*- coding: utf-8 -*-
# Copyright: cloud58 platform team
# Apache License 2.0
"""Filters over module_utils/monitoring: the Prometheus configuration of a datacenter, the
client certificate files it names, the hosts that run Prometheus by default, the server's
flags, where the operator's own rules files go, and the one port per job of the programs
whose hosts each set their own (and the preflight's check that they agree).

Each filter is documented in its own file next to this one (prometheus_config.yml,
prometheus_client_files.yml, prometheus_hosts.yml, prometheus_args.yml,
prometheus_extra_rules.yml, metrics_port.yml, metrics_port_problems.yml), as ansible-doc
reads them.
"""

from __future__ import annotations

from ansible.errors import AnsibleFilterError
from ansible.module_utils.parsing.convert_bool import boolean

from ansible_collections.cloud58.platform.plugins.module_utils.monitoring import (
    MonitoringError,
    client_files,
    config_text,
    extra_rules_files,
    monitoring_hosts,
    scrape_config,
    server_args,
)
from ansible_collections.cloud58.platform.plugins.module_utils.monitoring.ports import (
    agreed_port,
    port_problems,
)


def prometheus_config(plan, datacenter, options=None):
    try:
        return config_text(scrape_config(plan, datacenter, options or {}))
    except MonitoringError as e:
        raise AnsibleFilterError(f"prometheus_config({datacenter}): {e}") from e


def prometheus_client_files(plan, datacenter, options=None):
    try:
        return client_files(plan, datacenter, options or {})
    except MonitoringError as e:
        raise AnsibleFilterError(f"prometheus_client_files({datacenter}): {e}") from e


def prometheus_args(options=None):
    try:
        return " ".join(server_args(options or {}))
    except MonitoringError as e:
        raise AnsibleFilterError(f"prometheus_args: {e}") from e


def prometheus_hosts(plan):
    try:
        return monitoring_hosts(plan)
    except MonitoringError as e:
        raise AnsibleFilterError(f"prometheus_hosts: {e}") from e


def prometheus_extra_rules(paths):
    try:
        return extra_rules_files(paths)
    except MonitoringError as e:
        raise AnsibleFilterError(f"prometheus_extra_rules: {e}") from e


def metrics_port(hosts, job, hostvars):
    try:
        return agreed_port(job, list(hosts or []), hostvars)
    except MonitoringError as e:
        raise AnsibleFilterError(f"metrics_port({job}): {e}") from e


def metrics_port_problems(plan, hostvars, consul_sync_hosts=None, gateway_hosts=None):
    if not isinstance(plan, dict) or "datacenters" not in plan or "hosts" not in plan:
        raise AnsibleFilterError(
            "metrics_port_problems: expected the plan (a mapping with 'datacenters' and 'hosts'), "
            f"got {type(plan).__name__}"
        )
    directors = [
        name
        for dc in plan["datacenters"].values()
        for name in (((dc.get("lvs") or {}).get("directors")) or {})
    ]
    try:
        syncing = [
            d
            for d in directors
            if boolean((hostvars.get(d) or {}).get("lvs_director_sync", False), strict=False)
        ]
        return port_problems(
            plan,
            {
                "lvs": directors,
                "lvs-sync": syncing,
                "consul-sync": list(consul_sync_hosts or []),
                "gateway-sync": list(gateway_hosts or []),
            },
            hostvars,
        )
    except MonitoringError as e:
        raise AnsibleFilterError(f"metrics_port_problems: {e}") from e


class FilterModule:
    def filters(self):
        return {
            "metrics_port": metrics_port,
            "metrics_port_problems": metrics_port_problems,
            "prometheus_args": prometheus_args,
            "prometheus_client_files": prometheus_client_files,
            "prometheus_config": prometheus_config,
            "prometheus_extra_rules": prometheus_extra_rules,
            "prometheus_hosts": prometheus_hosts,
        }
