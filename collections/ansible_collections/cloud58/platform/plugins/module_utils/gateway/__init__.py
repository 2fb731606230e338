# -*- coding: utf-8 -*-
# Copyright: cloud58 platform team
# Apache License 2.0
"""Gateway: the haproxy.cfg of the ingress nodes, backends from Consul DNS (pure).

Settings and services are read as plain data; nothing of the planner is imported
(docs/service-discovery.md).
"""

from __future__ import annotations

from .haproxy import (
    DEFAULT_SETTINGS,
    INGRESS_FUNCTION,
    SERVICE_FIELDS,
    GatewayError,
    exporter_frontend,
    gateway_hosts,
    haproxy_config,
)

__all__ = [
    "DEFAULT_SETTINGS",
    "INGRESS_FUNCTION",
    "SERVICE_FIELDS",
    "GatewayError",
    "exporter_frontend",
    "gateway_hosts",
    "haproxy_config",
]
