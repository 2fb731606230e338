# -*- coding: utf-8 -*-
# Copyright: cloud58 platform team
# Apache License 2.0
"""Monitoring: the Prometheus scrape configuration of a datacenter, from the plan (pure).

The plan is read as plain data (``plan["datacenters"]``, ``plan["clusters"]``,
``plan["hosts"]``); nothing of the planner is imported (docs/monitoring.md).
"""

from __future__ import annotations

from .rules import PLATFORM_RULES_FILES, extra_rules_files
from .scrape import (
    DEFAULT_OPTIONS,
    JOB_ROLES,
    MonitoringError,
    client_files,
    config_text,
    monitoring_hosts,
    scrape_config,
    server_args,
)

__all__ = [
    "DEFAULT_OPTIONS",
    "JOB_ROLES",
    "PLATFORM_RULES_FILES",
    "MonitoringError",
    "client_files",
    "config_text",
    "extra_rules_files",
    "monitoring_hosts",
    "scrape_config",
    "server_args",
]
