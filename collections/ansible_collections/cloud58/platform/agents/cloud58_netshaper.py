# -*- coding: utf-8 -*-
# Copyright: cloud58 platform team
# Apache License 2.0
"""cloud58-netshaper: apply a pod's bandwidth limits to its veth pair on a running pod.

The apply path of the node agent (docs/node-protection.md); watching the pods of the node
through the API server is a later step. The logic lives in module_utils/node/shaper.py; this
program only parses its arguments and runs tc.

  cloud58_netshaper.py apply --pod NS/NAME --veth VETH [--ingress RATE] [--egress RATE]
  cloud58_netshaper.py apply --pod NS/NAME --veth VETH --annotations JSON
  cloud58_netshaper.py show --veth VETH

--annotations takes the pod's annotations as a JSON object, as the API server returns them.

A direction without a rate is unlimited (its shaping is removed). Prints one JSON object;
exit status 0, or 2 with one line naming the pod, the field and the bad value.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys

try:
    from ansible_collections.cloud58.platform.plugins.module_utils.node import shaper
except ImportError:  # run from a checkout: the collections directory four levels up
    sys.path.insert(0, os.path.abspath(os.path.join(os.path.dirname(__file__), *[os.pardir] * 4)))
    from ansible_collections.cloud58.platform.plugins.module_utils.node import shaper

PROGRAM = "cloud58-netshaper"


def run(argv: list[str]) -> tuple[int, str, str]:
    done = subprocess.run(argv, capture_output=True, text=True, check=False)
    return done.returncode, done.stdout, done.stderr


def _limits(args) -> dict:
    if args.annotations is not None:
        try:
            annotations = json.loads(args.annotations)
        except ValueError as e:
            raise shaper.ShaperError(f"pod {args.pod}: --annotations: not a JSON object: {e}") from None
        if not isinstance(annotations, dict):
            raise shaper.ShaperError(f"pod {args.pod}: --annotations: {annotations!r} is not a JSON object")
        return shaper.limits_from_annotations(args.pod, annotations)
    return shaper.limits_from_annotations(
        args.pod,
        {
            key: value
            for key, value in (
                (shaper.INGRESS_ANNOTATION, args.ingress),
                (shaper.EGRESS_ANNOTATION, args.egress),
            )
            if value is not None
        },
    )


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog=PROGRAM, description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    apply_p = sub.add_parser("apply", help="make the veth's shaping match the pod's limits")
    apply_p.add_argument("--pod", required=True, help="namespace/name, for messages")
    apply_p.add_argument("--veth", required=True, help="the host-side veth of the pod")
    apply_p.add_argument("--ingress", help="rate into the pod, bits per second (10M); none: unlimited")
    apply_p.add_argument("--egress", help="rate out of the pod, bits per second; none: unlimited")
    apply_p.add_argument("--annotations", help="the pod's annotations as JSON, instead of --ingress/--egress")
    show_p = sub.add_parser("show", help="the limits and drops applied on the veth")
    show_p.add_argument("--veth", required=True)
    args = parser.parse_args(argv)
    try:
        if args.command == "apply":
            result = shaper.apply(
                shaper.check_device(args.veth, f"pod {args.pod}: --veth"), _limits(args), run
            )
        else:
            state = shaper.current_state(shaper.check_device(args.veth, "--veth"), run)
            ifb = state.redirect_to if state.ifb_exists else None
            outputs = [run(c)[1] for c in shaper.show_commands(args.veth, ifb)]
            result = {
                "applied": shaper.applied(state),
                "drops": shaper.drops(outputs[0], outputs[2] if ifb else None),
            }
    except shaper.ShaperError as e:
        print(f"{PROGRAM}: {e}", file=sys.stderr)
        return 2
    print(json.dumps(result, sort_keys=True))
    return 0


if __name__ == "__main__":
    sys.exit(main())
