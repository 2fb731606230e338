# -*- coding: utf-8 -*-
# Copyright: cloud58 platform team
# Apache License 2.0
"""Decisions of the sysctl_profile module: file text, /proc/sys paths, what has to change.

Pure: runner.py reads the files and /proc/sys, passes what it read here, and writes what
:func:`plan_changes` says. Values compare the way the kernel prints them: whitespace
(the tab of ``ip_local_port_range``) counts as one space.
"""

from __future__ import annotations


def key_path(key) -> str:
    """``net.ipv4.conf.eth0/100.rp_filter`` → ``/proc/sys/net/ipv4/conf/eth0.100/rp_filter``.

    sysctl keys separate levels with dots and write a dot inside a name (a VLAN
    interface) as a slash; /proc/sys has it the other way round.
    """
    return "/proc/sys/" + "/".join(part.replace("/", ".") for part in str(key).split("."))


def normalize(value) -> str:
    """One space between words, no trailing newline: how two values are compared."""
    return " ".join(str(value).split())


def render_file(comment, values) -> str:
    """The text of a sysctl.d file: ``# comment`` lines, then ``key = value`` in key order."""
    lines = ["# " + line if line else "#" for line in str(comment or "").splitlines()]
    lines += [f"{key} = {normalize(values[key])}" for key in sorted(values)]
    return "\n".join(lines) + "\n"


def plan_changes(files, current_files, apply, live):
    """What to write.

    ``files``: [{path, comment, values}]; ``current_files``: {path: text or None};
    ``apply``: keys to set live; ``live``: {key: current text, or None when the key has no
    /proc/sys entry}. Returns ``{"files": {path: new text}, "set": {key: value},
    "missing": [keys], "diff": [...]}`` (only what differs), or raises ValueError when a
    key to apply is in none of the files.
    """
    desired = {}
    for spec in files:
        for key, value in spec["values"].items():
            desired[str(key)] = normalize(value)
    unknown = sorted(set(apply) - set(desired))
    if unknown:
        raise ValueError("keys to apply are in none of the files: " + ", ".join(unknown))
    to_write, diff = {}, []
    for spec in files:
        text = render_file(spec.get("comment", ""), spec["values"])
        before = current_files.get(spec["path"])
        if before != text:
            to_write[spec["path"]] = text
            diff.append(
                {
                    "before_header": spec["path"] if before is not None else "/dev/null",
                    "after_header": spec["path"],
                    "before": before or "",
                    "after": text,
                }
            )
    to_set, missing = {}, []
    for key in sorted(set(apply)):
        if live.get(key) is None:
            missing.append(key)
        elif normalize(live[key]) != desired[key]:
            to_set[key] = desired[key]
    if to_set:
        diff.append(
            {
                "before_header": "live values (/proc/sys)",
                "after_header": "live values (/proc/sys)",
                "before": "".join(f"{k} = {normalize(live[k])}\n" for k in sorted(to_set)),
                "after": "".join(f"{k} = {to_set[k]}\n" for k in sorted(to_set)),
            }
        )
    return {"files": to_write, "set": to_set, "missing": missing, "diff": diff}
