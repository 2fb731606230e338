# -*- coding: utf-8 -*-
# Copyright: cloud58 platform team
# Apache License 2.0
"""Filter over module_utils/gateway: the haproxy.cfg of an ingress gateway.

Documented in haproxy_gateway_config.yml next to this file, as ansible-doc reads it.
"""

from __future__ import annotations

from ansible.errors import AnsibleFilterError

from ansible_collections.cloud58.platform.plugins.module_utils.gateway import GatewayError, haproxy_config


def haproxy_gateway_config(services, settings=None):
    try:
        return haproxy_config(services, settings or {})
    except GatewayError as e:
        raise AnsibleFilterError(f"haproxy_gateway_config: {e}") from e


class FilterModule:
    def filters(self):
        return {"haproxy_gateway_config": haproxy_gateway_config}
