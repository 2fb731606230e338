# -*- coding: utf-8 -*-
# Copyright: cloud58 platform team
# Apache License 2.0
"""The mitogen_linear strategy of the mitogen package (requirements.in), by name.

ansible.cfg's strategy_plugins points here, so ``ANSIBLE_STRATEGY=mitogen_linear`` (or
``strategy: mitogen_linear`` on a play) finds mitogen's strategy in the project's
virtualenv without a path that names the venv's Python version. Under it Ansible's ssh
connection becomes mitogen_ssh: one Python per host for the whole run instead of one per
task. See docs/node-roles.md (Benchmark) for what it saves and why it is not the default.
"""

from __future__ import annotations

try:
    from ansible_mitogen.plugins.strategy.mitogen_linear import StrategyModule
except ImportError as e:  # pragma: no cover - the message is the point
    from ansible.errors import AnsibleError

    raise AnsibleError(
        f"strategy mitogen_linear: the mitogen package is not importable ({e}); "
        "it is pinned in requirements.txt: run make setup-venv"
    ) from e

__all__ = ["StrategyModule"]
