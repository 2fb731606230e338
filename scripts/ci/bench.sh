#!/usr/bin/env bash
# Run every benchmark in benchmarks/ (files named bench_*.py), in name order. Each prints
# its figures as `BENCH <name> <value>` lines. Benchmarks measure; they never fail on time.
# CLOUD58_BENCH_SIZE=full (the default, `make bench`) or ci (`make test`: fewer objects and
# containers, so that the tier fits CI's time); every benchmark prints the size it ran at.
set -euo pipefail
repo=$(cd "$(dirname "$0")/../.." && pwd)
export PATH="$repo/.venv/bin:$PATH"
export PYTHONPATH="$repo/lab:$repo/collections${PYTHONPATH:+:$PYTHONPATH}"
export CLOUD58_BENCH_SIZE="${CLOUD58_BENCH_SIZE:-full}"
echo "== size $CLOUD58_BENCH_SIZE"
failed=()
for bench in "$repo"/benchmarks/bench_*.py; do
  [[ -e "$bench" ]] || continue
  echo "== $(basename "$bench")"
  started=$SECONDS
  python "$bench" || failed+=("$(basename "$bench")")
  echo "== $(basename "$bench") took $((SECONDS - started)) s"
done
if ((${#failed[@]})); then
  echo "bench: these benchmarks did not complete: ${failed[*]}" >&2
  exit 1
fi
