# -*- coding: utf-8 -*-
# Copyright: cloud58 platform team
# Apache License 2.0
"""The one domain exception of the control plane's planning."""

from __future__ import annotations


class ControlPlaneError(ValueError):
    """Settings, plan or versions cannot make a valid control plane.

    Carries every problem found, so one run reports them all; ``where`` names the
    cluster (or host) the problems belong to.
    """

    def __init__(self, where: str, problems) -> None:
        self.where = where
        self.problems = list(problems)
        super().__init__(self.text())

    def text(self) -> str:
        count = len(self.problems)
        head = f"{self.where}: {count} problem{'' if count == 1 else 's'}"
        if count == 1:
            return f"{head}: {self.problems[0]}"
        return "\n".join([head + ":"] + [f"  - {p}" for p in self.problems])
