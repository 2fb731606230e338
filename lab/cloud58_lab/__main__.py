"""``python -m cloud58_lab up|down|status`` — what `make lab` and `make lab-down` run."""

from __future__ import annotations

import argparse
import sys

from cloud58_lab import lab


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="cloud58_lab", description=__doc__)
    parser.add_argument("command", choices=("up", "down", "status"))
    parser.add_argument(
        "--datacenter",
        action="append",
        dest="datacenters",
        help="up: only this lab datacenter (repeatable; default: every one of inventories/lab)",
    )
    args = parser.parse_args(argv)
    try:
        if args.command == "up":
            return lab.up(datacenters=args.datacenters)
        return {"down": lab.down, "status": lab.status}[args.command]()
    except lab.LabError as e:
        print(f"lab: {e}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
