#!/usr/bin/env bash
# Run test tiers (make targets) one after another and print how long each took.
#
#   scripts/ci/tiers.sh lint sanity unit ...
#
# A failing tier does not stop the later ones: one CI run reports every tier. The script
# exits non-zero when any tier failed, and its summary names them.
set -uo pipefail
failed=()
summary=()
total=$SECONDS
for tier in "$@"; do
  echo "== tier $tier ($(date -u +%H:%M:%S) UTC)"
  started=$SECONDS
  if make --no-print-directory "$tier"; then
    result=passed
  else
    result=FAILED
    failed+=("$tier")
  fi
  summary+=("$(printf '%-12s %-7s %5d s' "$tier" "$result" $((SECONDS - started)))")
done
echo "== tiers summary (total $((SECONDS - total)) s)"
printf '  %s\n' "${summary[@]}"
if ((${#failed[@]} > 0)); then
  echo "tiers: failed: ${failed[*]}" >&2
  exit 1
fi
