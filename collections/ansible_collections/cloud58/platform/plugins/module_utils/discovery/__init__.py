# -*- coding: utf-8 -*-
# Copyright: cloud58 platform team
# Apache License 2.0
"""Discovery: Kubernetes Services and EndpointSlices -> Consul's catalog (pure).

What ``cloud58-consul-sync`` decides, over the API's JSON and Consul's; nothing of the
collection is imported (docs/service-discovery.md).
"""
