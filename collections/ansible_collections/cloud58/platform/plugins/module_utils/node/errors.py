# -*- coding: utf-8 -*-
# Copyright: cloud58 platform team
# Apache License 2.0
"""The one domain exception of node planning."""

from __future__ import annotations


class NodePlanError(ValueError):
    """Facts, plan or overrides of a host cannot make a valid node configuration.

    Carries every problem found, so one run reports them all; ``str()`` names the host.
    """

    def __init__(self, host: str, problems) -> None:
        self.host = host
        self.problems = list(problems)
        super().__init__(self.text())

    def text(self) -> str:
        count = len(self.problems)
        head = f"host {self.host!r}: {count} problem{'' if count == 1 else 's'}"
        if count == 1:
            return f"{head}: {self.problems[0]}"
        return "\n".join([head + ":"] + [f"  - {p}" for p in self.problems])
