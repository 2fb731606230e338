# -*- coding: utf-8 -*-
# Copyright: cloud58 platform team
# Apache License 2.0
"""Argument specs shared by modules; each has a doc fragment of the same name."""

from __future__ import annotations

# doc fragment: cloud58.platform.kubeconfig
KUBECONFIG_ARG_SPEC = {
    "kubeconfig": {"type": "path"},
    "request_timeout": {"type": "float", "default": 30.0},
}

RECONCILE_ARG_SPEC = {
    "clusters_dir": {"type": "path", "required": True},
    "clusters": {"type": "list", "elements": "str", "default": []},
    "prune": {"type": "bool"},
    "max_prune": {"type": "int"},
    "allow_prune_kinds": {
        "type": "list",
        "elements": "str",
        "choices": ["Namespace", "CustomResourceDefinition", "PersistentVolume"],
    },
    "bootstrap_identity": {"type": "bool", "default": False},
    "wait_rollouts": {"type": "bool"},
    "wait_timeout": {"type": "int", "default": 300},
    "lock_timeout": {"type": "int", "default": 120},
    "parallel": {"type": "int", "default": 8},
    "workers": {"type": "int", "default": 8},
    "report_path": {"type": "path"},
    "cache_dir": {"type": "path"},
}
