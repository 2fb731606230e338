#!/usr/bin/env bash
# Run every benchmark in benchmarks/ (files named bench_*.py), in name order. Each prints
# its figures as `BENCH <name> <value>` lines. Benchmarks measure; they never fail on time.
set -euo pipefail
repo=$(cd "$(dirname "$0")/../.." && pwd)
export PATH="$repo/.venv/bin:$PATH"
export PYTHONPATH="$repo/lab:$repo/collections${PYTHONPATH:+:$PYTHONPATH}"
failed=()
for bench in "$repo"/benchmarks/bench_*.py; do
  [[ -e "$bench" ]] || continue
  echo "== $(basename "$bench")"
  python "$bench" || failed+=("$(basename "$bench")")
done
if ((${#failed[@]})); then
  echo "bench: these benchmarks did not complete: ${failed[*]}" >&2
  exit 1
fi
