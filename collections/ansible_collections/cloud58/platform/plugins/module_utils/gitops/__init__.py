# -*- coding: utf-8 -*-
# Copyright: cloud58 platform team
# Apache License 2.0
"""GitOps reconcile engine: cluster directories in, a truthful per-cluster report out.

Pure decision logic (load, order, compare, prune guard, identity) lives in small modules
that need no cluster; ``kube`` is the only module that talks to an API server and
``engine`` wires the two together, one thread per cluster.
"""
