# -*- coding: utf-8 -*-
# Copyright: cloud58 platform team
# Apache License 2.0 (see https://www.apache.org/licenses/LICENSE-2.0)

from __future__ import annotations


class ModuleDocFragment:
    """The options of the modules that issue certificates on the controller (cluster_pki,
    consul_pki), written once; their argument spec is ``pki.x509.issue_argspec()``."""

    DOCUMENTATION = r"""
options:
  key_type:
    description: Algorithm of new keys; existing keys are kept whatever their type.
    type: str
    choices: [ecdsa-p256, rsa-2048, rsa-3072]
    default: ecdsa-p256
  ca_days:
    description: Validity of a new or renewed CA certificate, in days.
    type: int
    default: 3650
  cert_days:
    description: Validity of a new or renewed leaf certificate, in days (never beyond its CA).
    type: int
    default: 365
  renew_before_days:
    description:
      - Re-issue certificates that expire within this many days. C(0) renews only expired ones
        (a normal run); the renewal playbook uses a window such as 30.
    type: int
    default: 0
"""
