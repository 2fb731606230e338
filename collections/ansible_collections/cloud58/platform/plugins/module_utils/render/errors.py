# -*- coding: utf-8 -*-
# Copyright: cloud58 platform team
# Apache License 2.0
"""Errors of the renderers. Each message names the file, the path inside it and the rule broken."""

from __future__ import annotations

from ..kube.errors import GitOpsError


class RenderError(GitOpsError):
    """The inputs of a render (inventories, app specs) cannot be rendered."""


class AppSpecError(RenderError):
    """One or more app specs are invalid; ``problems`` lists them, one line each."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = list(problems)
        count = len(self.problems)
        head = "invalid app spec" if count == 1 else f"{count} problems in app specs"
        super().__init__(f"{head}:\n" + "\n".join(f"  {p}" for p in self.problems))
