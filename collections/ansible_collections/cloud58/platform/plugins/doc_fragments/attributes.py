# -*- coding: utf-8 -*-
# Copyright: cloud58 platform team
# Apache License 2.0 (see https://www.apache.org/licenses/LICENSE-2.0)

from __future__ import annotations


class ModuleDocFragment:
    """The attributes every module of the collection shares, written once.

    A module lists ``cloud58.platform.attributes`` (check mode, platform) and exactly one of
    ``cloud58.platform.attributes.diff`` (it returns a diff in diff mode) or
    ``cloud58.platform.attributes.no_diff`` (it has nothing to show as a diff).
    """

    DOCUMENTATION = r"""
options: {}
attributes:
  check_mode:
    description:
      - In check mode the module computes the same result, C(changed) included, and writes nothing.
    support: full
  platform:
    description:
      - The kind of system the module acts on.
    support: N/A
    platforms: posix
"""

    DIFF = r"""
options: {}
attributes:
  diff_mode:
    description:
      - In diff mode the result carries the content before and after each change
        (in check mode, of the change it would make).
    support: full
"""

    NO_DIFF = r"""
options: {}
attributes:
  diff_mode:
    description:
      - The module returns no diff; its result lists what it did or found.
    support: none
"""
