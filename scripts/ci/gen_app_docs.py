#!/usr/bin/env python3
"""Write docs/apps.md and schemas/app.schema.json from the app spec's JSON Schema.

scripts/ci/gen_app_docs.py          # write both
scripts/ci/gen_app_docs.py --check  # exit 1 and name the stale files, write nothing
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "collections"))

from ansible_collections.cloud58.platform.plugins.module_utils.render.docs import (  # noqa: E402
    apps_markdown,
    schema_json,
)

OUTPUTS = {"docs/apps.md": apps_markdown, "schemas/app.schema.json": schema_json}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="only report stale files")
    args = parser.parse_args()
    stale = []
    for rel, produce in OUTPUTS.items():
        path = REPO / rel
        text = produce()
        if path.exists() and path.read_text(encoding="utf-8") == text:
            continue
        stale.append(rel)
        if not args.check:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text, encoding="utf-8")
    if args.check and stale:
        print(f"stale: {', '.join(stale)}; run scripts/ci/gen_app_docs.py", file=sys.stderr)
        return 1
    for rel in stale:
        print(f"wrote {rel}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
