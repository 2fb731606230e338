# -*- coding: utf-8 -*-
# Copyright: cloud58 platform team
# Apache License 2.0 (see https://www.apache.org/licenses/LICENSE-2.0)

from __future__ import annotations


class ModuleDocFragment:
    """Options of KUBECONFIG_ARG_SPEC (module_utils/gitops/args.py): how modules reach clusters."""

    DOCUMENTATION = r"""
options:
  kubeconfig:
    description:
      - Path of the kubeconfig holding the contexts the clusters name in their C(cluster.yml).
      - Omitted, C($KUBECONFIG) or C(~/.kube/config) is used, as kubectl does.
    type: path
  request_timeout:
    description:
      - Seconds one API request may take before the cluster is reported as failing.
    type: float
    default: 30.0
requirements:
  - kubernetes (the Python client, on the controller; it reads the kubeconfig contexts)
"""
