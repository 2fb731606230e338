# -*- coding: utf-8 -*-
# Copyright: cloud58 platform team
# Apache License 2.0
"""The operator's own Prometheus rules files next to the platform's (pure).

:func:`extra_rules_files` checks the names of the files given to the role (option
``prometheus_extra_rules_files``) and says where each goes in the rules directory; their
content is checked by ``promtool check rules`` (the role, docs/monitoring.md).
"""

from __future__ import annotations

import posixpath

from .scrape import MonitoringError

# The platform's rules files (roles/prometheus/files/rules/), written under these names.
PLATFORM_RULES_FILES = ("cloud58-recording.yml", "cloud58-alerts.yml")
_OPTION = "prometheus_extra_rules_files"


def extra_rules_files(paths) -> list[dict]:
    """``[{"src": path, "name": file name}, ...]`` for the rules files at ``paths`` (on the
    controller), in the order given. Raises :class:`MonitoringError` naming the path for a name
    Prometheus would not load (it loads ``<rules dir>/*.yml``), one of the platform's, or two
    files with the same name."""
    if not isinstance(paths, (list, tuple)):
        raise MonitoringError(f"{_OPTION}: expected a list of paths, got {type(paths).__name__} {paths!r}")
    seen = {}
    files = []
    for path in paths:
        if not isinstance(path, str) or not path.strip():
            raise MonitoringError(f"{_OPTION}: expected a path, got {path!r}")
        name = posixpath.basename(path)
        if not name.endswith(".yml") or name == ".yml":
            raise MonitoringError(
                f"{_OPTION}: {path!r}: the name must end in .yml"
                " (Prometheus loads the rules directory's *.yml)"
            )
        if name in PLATFORM_RULES_FILES:
            raise MonitoringError(f"{_OPTION}: {path!r}: {name} is the name of a platform rules file")
        if name in seen:
            raise MonitoringError(f"{_OPTION}: {seen[name]!r} and {path!r} have the same name {name}")
        seen[name] = path
        files.append({"src": path, "name": name})
    return files
