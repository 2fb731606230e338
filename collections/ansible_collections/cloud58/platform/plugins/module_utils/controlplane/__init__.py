# -*- coding: utf-8 -*-
# Copyright: cloud58 platform team
# Apache License 2.0
"""The control plane of a cluster, as data: PKI plan, static pod manifests, kubeconfigs,
audit policy, encryption configuration, identity object, preflight checks.

Everything here is pure (dicts in, dicts out) except runner.py, which does the file I/O
of the modules ``cloud58.platform.static_pods``, ``cloud58.platform.cluster_pki`` and
``cloud58.platform.control_plane_preflight``, and pki_store.py, the certificate store
(a cluster's PKI directory on the controller) that runner.py calls; it issues through
pki/x509.py.
"""
