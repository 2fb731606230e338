# -*- coding: utf-8 -*-
# Copyright: cloud58 platform team
# Apache License 2.0
"""LVS directors: what a director serves (plan.py) and its data planes - full NAT in nftables
(fullnat.py) and IPVS FNAT through DPVS's keepalived (keepalived.py, keepalived_schema.py) -
and the BIRD configuration that announces its healthy VIPs to the ToRs (announce.py);
pure except runner.py (the I/O of the modules)."""
