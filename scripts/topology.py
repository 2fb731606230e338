#!/usr/bin/env python3
# -*- coding: utf-8 -*-
# Copyright: cloud58 platform team
# Apache License 2.0
"""Draw a datacenter: `make topology DC=<dc>` writes build/topology/<dc>.svg (and .dot).

The datacenter is looked up in inventories/<dc>/ first, then in every inventory directory
(the lab's two datacenters live in inventories/lab). Needs Graphviz' `dot`.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(REPO, "collections"))

from ansible_collections.cloud58.platform.plugins.module_utils.topology import (  # noqa: E402
    TopologyError,
    build_plan,
    load_inventory,
)
from ansible_collections.cloud58.platform.plugins.module_utils.topology.dot import render_dot  # noqa: E402


def find_inventory(dc, root):
    """The inventory directory that defines datacenter ``dc``, or None."""
    direct = os.path.join(root, dc)
    candidates = [direct] if os.path.isdir(direct) else []
    candidates += [
        os.path.join(root, name)
        for name in sorted(os.listdir(root))
        if os.path.isdir(os.path.join(root, name)) and os.path.join(root, name) != direct
    ]
    for path in candidates:
        inventory = load_inventory(path)
        if isinstance(inventory.datacenters, dict) and dc in inventory.datacenters:
            return path
    return None


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dc", required=True, help="datacenter name (lab1, bj1, ...)")
    parser.add_argument("--inventory", help="inventory directory (default: found under inventories/)")
    parser.add_argument("--out", help="SVG path (default: build/topology/<dc>.svg)")
    parser.add_argument("--dot-only", action="store_true", help="write the .dot source only, do not run dot")
    args = parser.parse_args(argv)
    root = os.path.join(REPO, "inventories")
    try:
        inventory_dir = args.inventory or find_inventory(args.dc, root)
        if inventory_dir is None:
            print(f"topology: no inventory under {root} defines datacenter {args.dc!r}", file=sys.stderr)
            return 1
        plan = build_plan(load_inventory(inventory_dir))
    except TopologyError as exc:
        print(f"topology: {exc}", file=sys.stderr)
        return 1
    if args.dc not in plan["datacenters"]:
        print(f"topology: {inventory_dir} does not define datacenter {args.dc!r}", file=sys.stderr)
        return 1
    out = args.out or os.path.join(REPO, "build", "topology", f"{args.dc}.svg")
    os.makedirs(os.path.dirname(os.path.abspath(out)), exist_ok=True)
    dot_path = os.path.splitext(out)[0] + ".dot"
    source = render_dot(plan, args.dc)
    with open(dot_path, "w", encoding="utf-8") as handle:
        handle.write(source)
    if args.dot_only:
        print(dot_path)
        return 0
    dot = shutil.which("dot")
    if dot is None:
        print("topology: Graphviz is missing: apt-get install graphviz (make setup-apt)", file=sys.stderr)
        return 1
    result = subprocess.run([dot, "-Tsvg", "-o", out, dot_path], capture_output=True, text=True, check=False)
    if result.returncode != 0:
        print(f"topology: dot failed on {dot_path}: {result.stderr.strip()}", file=sys.stderr)
        return 1
    print(out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
