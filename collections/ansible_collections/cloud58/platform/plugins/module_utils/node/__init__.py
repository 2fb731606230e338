# -*- coding: utf-8 -*-
# Copyright: cloud58 platform team
# Apache License 2.0
"""Planning for the node roles (kernel_tuning, container_runtime, kubelet).

Pure functions over facts and the plan: the sysctl profile, validation of overrides,
IRQ/RPS/XPS masks and the KubeletConfiguration. Filters in ``plugins/filter/node.py``
are thin adapters over them. Only runner.py touches a host: the runner of the module
``cloud58.platform.sysctl_profile``.
"""
