# -*- coding: utf-8 -*-
# Copyright: cloud58 platform team
# Apache License 2.0
"""Filters over module_utils/monitoring: the Prometheus configuration of a datacenter, the
client certificate files it names, the hosts that run Prometheus by default, the server's
flags, and where the operator's own rules files go.

Each filter is documented in its own file next to this one (prometheus_config.yml,
prometheus_client_files.yml, prometheus_hosts.yml, prometheus_args.yml,
prometheus_extra_rules.yml), as ansible-doc
reads them.
"""

from __future__ import annotations

from ansible.errors import AnsibleFilterError

from ansible_collections.cloud58.platform.plugins.module_utils.monitoring import (
    MonitoringError,
    client_files,
    config_text,
    extra_rules_files,
    monitoring_hosts,
    scrape_config,
    server_args,
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


class FilterModule:
    def filters(self):
        return {
            "prometheus_args": prometheus_args,
            "prometheus_client_files": prometheus_client_files,
            "prometheus_config": prometheus_config,
            "prometheus_extra_rules": prometheus_extra_rules,
            "prometheus_hosts": prometheus_hosts,
        }
