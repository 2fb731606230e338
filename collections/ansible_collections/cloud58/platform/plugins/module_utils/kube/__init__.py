# -*- coding: utf-8 -*-
# Copyright: cloud58 platform team
# Apache License 2.0
"""The Kubernetes vocabulary render and reconcile both build on; imports nothing of ours.

* ``objects``: API versions and kinds (their scope), object identity (``ObjKey``), the
  labels and annotations cloud58 puts on objects, the desired-state hash;
* ``order``: the order objects are applied in, derived from their kinds;
* ``quantity``: resource quantities (``"500m"``, ``"1Gi"``) as exact numbers;
* ``clusters_format``: the ``clusters/`` file format, with the one YAML loader and dumper;
* ``errors``: ``GitOpsError``, the base of every error render and reconcile raise.
"""
