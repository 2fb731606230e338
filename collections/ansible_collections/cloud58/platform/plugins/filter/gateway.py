# -*- coding: utf-8 -*-
# Copyright: cloud58 platform team
# Apache License 2.0
"""Filters over module_utils/gateway: the haproxy.cfg of an ingress gateway, the hosts
that run one, and the exporter frontend any of the project's HAProxies serves.

Documented in haproxy_gateway_config.yml, gateway_hosts.yml and haproxy_exporter_frontend.yml
next to this file, as ansible-doc reads them.
"""

from __future__ import annotations

from ansible.errors import AnsibleFilterError

from ansible_collections.cloud58.platform.plugins.module_utils.gateway import (
    GatewayError,
    exporter_frontend,
    gateway_hosts,
    haproxy_config,
)


def haproxy_gateway_config(services, settings=None):
    try:
        return haproxy_config(services, settings or {})
    except GatewayError as e:
        raise AnsibleFilterError(f"haproxy_gateway_config: {e}") from e


def haproxy_exporter_frontend(port, address, path):
    try:
        return exporter_frontend(address, port, path)
    except GatewayError as e:
        raise AnsibleFilterError(f"haproxy_exporter_frontend: {e}") from e


def _gateway_hosts(plan):
    try:
        return gateway_hosts(plan)
    except GatewayError as e:
        raise AnsibleFilterError(str(e)) from e


class FilterModule:
    def filters(self):
        return {
            "gateway_hosts": _gateway_hosts,
            "haproxy_exporter_frontend": haproxy_exporter_frontend,
            "haproxy_gateway_config": haproxy_gateway_config,
        }
