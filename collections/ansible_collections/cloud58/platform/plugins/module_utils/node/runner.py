# -*- coding: utf-8 -*-
# Copyright: cloud58 platform team
# Apache License 2.0
"""The node package's I/O edge: the runner of the module ``cloud58.platform.sysctl_profile``.

``run_sysctl_profile`` reads the sysctl.d files and /proc/sys, lets :func:`sysctl.plan_changes`
decide, and (unless in check mode) writes the files and sets the live values. It takes the
module's parameters and its ``atomic_move`` and returns the result dict; it never imports
AnsibleModule, and raises :class:`SysctlApplyError` for the module to turn into a failure.
"""

from __future__ import annotations

import os
import tempfile

from ansible_collections.cloud58.platform.plugins.module_utils.node.sysctl import key_path, plan_changes


class SysctlApplyError(Exception):
    """A key cannot be applied; ``missing`` lists keys without a /proc/sys entry."""

    def __init__(self, message, missing=()):
        super().__init__(message)
        self.missing = list(missing)


def _read(path):
    try:
        with open(path, encoding="utf-8") as f:
            return f.read()
    except FileNotFoundError:
        return None


def _write_file(path, text, atomic_move):
    fd, tmp = tempfile.mkstemp(prefix=".cloud58-sysctl.", dir=os.path.dirname(path) or ".")
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        f.write(text)
    os.chmod(tmp, 0o644)
    atomic_move(tmp, path)


def _wrong_attrs(path):
    st = os.stat(path)
    return (st.st_mode & 0o7777, st.st_uid, st.st_gid) != (0o644, 0, 0)


def run_sysctl_profile(params, check_mode, diff_mode, atomic_move):
    """Read the files and /proc/sys, decide with plan_changes, write unless in check mode."""
    files = params["files"]
    current = {spec["path"]: _read(spec["path"]) for spec in files}
    live = {key: _read(key_path(key)) for key in params["apply"]}
    try:
        plan = plan_changes(files, current, params["apply"], live)
    except ValueError as e:
        raise SysctlApplyError(str(e)) from e
    if plan["missing"] and params["missing"] == "fail":
        raise SysctlApplyError(
            "these keys have no /proc/sys entry (is their kernel module loaded?): "
            + ", ".join(plan["missing"]),
            plan["missing"],
        )
    # Files whose content is right but whose mode or owner is not count as changes too.
    attrs = [s["path"] for s in files if s["path"] not in plan["files"] and current[s["path"]] is not None]
    attrs = [path for path in attrs if _wrong_attrs(path)]
    if not check_mode:
        for path, text in plan["files"].items():
            _write_file(path, text, atomic_move)
        for path in attrs:
            os.chmod(path, 0o644)
            os.chown(path, 0, 0)
        for key, value in plan["set"].items():
            try:
                with open(key_path(key), "w", encoding="utf-8") as f:
                    f.write(value + "\n")
            except OSError as e:
                raise SysctlApplyError(f"setting {key} = {value} failed: {e}") from e
    result = {
        "changed": bool(plan["files"] or plan["set"] or attrs),
        "files_changed": sorted(set(plan["files"]) | set(attrs)),
        "applied": plan["set"],
        "missing": plan["missing"],
    }
    if diff_mode:
        result["diff"] = plan["diff"]
    return result
