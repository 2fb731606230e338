# -*- coding: utf-8 -*-
# Copyright: cloud58 platform team
# Apache License 2.0
"""Renderers: the plan and the app specs in, Kubernetes objects (plain dicts) out, written
as ``clusters/<cluster>/`` with one object per file, deterministic names and content."""
