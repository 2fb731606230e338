# -*- coding: utf-8 -*-
# Copyright: cloud58 platform team
# Apache License 2.0
"""The I/O of the modules ``nft_fullnat`` (read the live table, apply the difference) and
``keepalived_fnat`` (check the rendered keepalived file, write it when it differs).

``nft`` is a callable ``nft(args, data=None) -> (rc, stdout, stderr)`` (the module passes
``AnsibleModule.run_command``; tests may pass a subprocess wrapper), so this file never
imports AnsibleModule.
"""

from __future__ import annotations

import json
import os
import tempfile

from .fullnat import (
    SETS,
    LvsError,
    director_state,
    element_changes,
    element_commands,
    read_table,
    render_ruleset,
    structure,
)
from .keepalived import DEFAULT_OPTIONS, render_config
from .keepalived_schema import check_config


def _element_lines(elements):
    """``{set: {key: value}}`` -> sorted lines ``set: key : value`` for diff mode."""
    lines = []
    for name in SETS:
        for key, value in (elements.get(name) or {}).items():
            lines.append(f"{name}: {key}" if value is None else f"{name}: {key} : {value}")
    return "\n".join(lines) + "\n" if lines else ""


def _live(nft, table):
    rc, out, err = nft(["-j", "list", "table", "ip", table])
    if rc != 0:
        if "No such file or directory" in err:
            return None
        raise LvsError(f"nft -j list table ip {table} failed ({rc}): {err.strip()}")
    try:
        data = json.loads(out)
    except ValueError as e:
        raise LvsError(f"nft -j list table ip {table}: output is not JSON: {out[:200]!r}") from e
    return read_table(data, table)


def run_fullnat(params, check_mode, diff_mode, nft):
    """Make the director's table match its plan; return the module result."""
    table = params["table"]
    live = _live(nft, table)
    before = live["elements"] if live else {}
    if params["state"] == "absent":
        desired = {}
        script = f"delete table ip {table}\n" if live else ""
        action = "deleted" if live else "unchanged"
    else:
        state = director_state(
            params["lvs"],
            params["director"],
            params.get("realservers"),
            params["scheduler"],
            params["slots"],
        )
        desired = state["elements"]
        wanted = structure(state["scheduler"], state["slots"])
        if live is None:
            script, action = render_ruleset(state, table), "created"
        elif live["structure"] != wanted or any(name not in live["elements"] for name in SETS):
            # scheduler or slot count changed (or the table is not ours): one transaction
            # deletes and recreates it
            script, action = f"delete table ip {table}\n" + render_ruleset(state, table), "replaced"
        else:
            script = element_commands(element_changes(live["elements"], desired), table)
            action = "updated" if script else "unchanged"
    changed = bool(script)
    if changed and not check_mode:
        rc, _out, err = nft(["-f", "-"], data=script)
        if rc != 0:
            raise LvsError(
                f"nft -f rejected the {action} transaction for table ip {table} ({rc}): {err.strip()}"
            )
    result = {
        "changed": changed,
        "action": action,
        "commands": script,
        "counts": {name: len(desired.get(name, {})) for name in SETS},
    }
    if diff_mode:
        result["diff"] = {
            "before": _element_lines(before),
            "after": _element_lines(desired),
            "before_header": f"table ip {table} (elements)",
            "after_header": f"table ip {table} (elements)",
        }
    return result


def _read(path):
    try:
        with open(path, encoding="utf-8") as f:
            return f.read()
    except FileNotFoundError:
        return None


def _write_file(path, text, atomic_move):
    fd, tmp = tempfile.mkstemp(prefix=".cloud58-keepalived.", dir=os.path.dirname(path) or ".")
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        f.write(text)
    os.chmod(tmp, 0o644)
    atomic_move(tmp, path)


def run_keepalived(params, check_mode, diff_mode, atomic_move):
    """Render the director's keepalived file, check it against the DPVS schema (nothing is
    written when it fails), write it when its content or mode differs; return the result."""
    path, director = params["path"], params["director"]
    options = {key: params[key] for key in DEFAULT_OPTIONS if params.get(key) is not None}
    text = render_config(params["lvs"], director, params.get("realservers"), options)
    problems = check_config(text, path)
    if problems:
        raise LvsError(
            f"{path} on {director}: the generated keepalived configuration breaks the DPVS keyword schema, "
            f"nothing written: {'; '.join(problems)}"
        )
    before = _read(path)
    rewrite = before != text
    chmod = not rewrite and (os.stat(path).st_mode & 0o7777) != 0o644
    if not check_mode:
        if rewrite:
            _write_file(path, text, atomic_move)
        elif chmod:
            os.chmod(path, 0o644)
    result = {
        "changed": rewrite or chmod,
        "path": path,
        "virtual_servers": text.count("\nvirtual_server "),
    }
    if diff_mode:
        result["diff"] = {
            "before": before or "",
            "after": text,
            "before_header": path if before is not None else f"{path} (absent)",
            "after_header": path,
        }
    return result
