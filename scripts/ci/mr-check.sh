#!/usr/bin/env bash
# The merge-request job (`make mr-check`): clusters/ is current, the schemas hold, and a
# server-side dry run of every cluster: through its context when it answers, else against an
# ephemeral kube-apiserver of the pinned version (`make setup-upstream` builds it); writes
# build/mr-report.md.
# Arguments go to scripts/ci/mr_check.py (--kubeconfig, --clusters, --report).
set -euo pipefail
repo=$(cd "$(dirname "$0")/../.." && pwd)
export PATH="$repo/.venv/bin:$PATH"
export PYTHONPATH="$repo/collections:$repo/lab${PYTHONPATH:+:$PYTHONPATH}"
exec python "$repo/scripts/ci/mr_check.py" "$@"
