# -*- coding: utf-8 -*-
# Copyright: cloud58 platform team
# Apache License 2.0
"""Certificates and keys of a cluster, issued and renewed with the ``cryptography`` package.

``ensure_pki(directory, plan, ...)`` (store.py) brings a PKI directory in line with a PKI
plan (controlplane/pki_plan.py): it reads what exists and issues only what is missing,
re-issues (same key, same CA) what expires within the renewal window or no longer matches
the plan, and refuses what it cannot repair without losing a key. It never logs, returns
or prints key material.
"""
