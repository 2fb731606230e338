# -*- coding: utf-8 -*-
# Copyright: cloud58 platform team
# Apache License 2.0
"""The render runner: a dict of parameters in, a result dict out.

Called by the module ``cloud58.platform.gitops_render`` (``playbooks/render.yml``), by
the merge-request job and by the test that keeps ``clusters/`` current.
"""

from __future__ import annotations

from .app_schema import load_app_specs
from .errors import RenderError
from .targets import cluster_targets, inventory_dirs
from .tree import cluster_files, render_clusters, sync_tree

RENDER_ARG_SPEC = {
    "inventories_dir": {"type": "path", "required": True},
    "apps_dir": {"type": "path", "required": True},
    "clusters_dir": {"type": "path", "required": True},
    "clusters": {"type": "list", "elements": "str", "default": []},
}


def run_render(params: dict, *, check: bool = False) -> dict:
    """Render ``clusters_dir`` from the inventories and app specs (only say what would change with ``check``).

    Every inventory and every app spec is read and validated, whatever ``clusters``
    selects; ``clusters`` only limits which directories are written (and then directories
    of other clusters are left alone). Raises RenderError / AppSpecError.
    """
    targets = cluster_targets(inventory_dirs(params["inventories_dir"]))
    specs = load_app_specs(params["apps_dir"])
    rendered = render_clusters(targets, specs)
    selected = [c for c in (params.get("clusters") or []) if c]
    unknown = sorted(set(selected) - {r.target.name for r in rendered})
    if unknown:
        raise RenderError(
            f"unknown cluster(s) {', '.join(unknown)}; the inventories define "
            f"{', '.join(r.target.name for r in rendered)}"
        )
    files = {r.target.name: cluster_files(r) for r in rendered if not selected or r.target.name in selected}
    changes = sync_tree(params["clusters_dir"], files, check=check, remove_other_clusters=not selected)
    return {
        "changed": changes.any,
        "clusters": sorted(files),
        "objects": {name: len(content) - 1 for name, content in sorted(files.items())},
        "apps": [spec["name"] for _rel, spec in specs],
        "files": changes.as_dict(),
    }
