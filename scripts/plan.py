#!/usr/bin/env python3
# -*- coding: utf-8 -*-
# Copyright: cloud58 platform team
# Apache License 2.0
"""Plan one or more inventory directories together and print the plan JSON.

    scripts/plan.py inventories/lab                      # the plan, canonical JSON
    scripts/plan.py inventories/bj1 inventories/sh1      # planned together (cross-datacenter checks)
    scripts/plan.py --summary inventories/bj1            # one line per datacenter
    scripts/plan.py --host bj1-node-001 inventories/bj1  # one host's entry

On a bad inventory it prints every problem to stderr and exits 1 (never a traceback).
"""

from __future__ import annotations

import argparse
import json
import os
import sys

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(REPO, "collections"))

from ansible_collections.cloud58.platform.plugins.module_utils.topology import (  # noqa: E402
    TopologyError,
    plan_paths,
    plan_summary,
)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "inventories", nargs="+", metavar="INVENTORY", help="inventory directory or YAML file"
    )
    parser.add_argument("--summary", action="store_true", help="one line per datacenter instead of the plan")
    parser.add_argument("--host", help="print only this host's entry")
    args = parser.parse_args(argv)
    try:
        plan = plan_paths(args.inventories)
    except TopologyError as exc:
        print(f"plan.py: {exc}", file=sys.stderr)
        return 1
    if args.summary:
        print("\n".join(plan_summary(plan)))
    elif args.host:
        if args.host not in plan["hosts"]:
            print(f"plan.py: host {args.host!r} is not in the plan (not in a role group?)", file=sys.stderr)
            return 1
        print(json.dumps(plan.as_dict()["hosts"][args.host], indent=2, sort_keys=True))
    else:
        sys.stdout.write(plan.to_json())
    return 0


if __name__ == "__main__":
    sys.exit(main())
