# -*- coding: utf-8 -*-
# Copyright: cloud58 platform team
# Apache License 2.0
"""X.509 keys and certificates with the ``cryptography`` package (x509.py); nothing else.

This package imports nothing of the collection. The control plane's certificate store, which
brings a cluster's PKI directory in line with its PKI plan, is controlplane/pki_store.py.
"""
