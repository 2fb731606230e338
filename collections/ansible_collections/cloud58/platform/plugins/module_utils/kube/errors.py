# -*- coding: utf-8 -*-
# Copyright: cloud58 platform team
# Apache License 2.0
"""The base of the domain exceptions of render and reconcile.

Every message names where the problem is (file and field, cluster and context) and what
rule was broken, so that a person can act on it without reading a traceback.
"""

from __future__ import annotations


class GitOpsError(Exception):
    """Base of every error render and reconcile raise on purpose (the modules turn it into fail_json)."""
