# -*- coding: utf-8 -*-
# Copyright: cloud58 platform team
# Apache License 2.0
"""LVS directors: the full-NAT data plane in nftables (planning and rendering, pure)."""
