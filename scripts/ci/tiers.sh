#!/usr/bin/env bash
# Run test tiers (make targets) and print how long each took.
#
#   scripts/ci/tiers.sh lint sanity unit ...
#       one after another, their output as it comes
#   scripts/ci/tiers.sh --lanes "integration" "lint sanity unit network molecule bench"
#       each quoted list is a lane: the lanes run side by side, the tiers of a lane one
#       after another. Each tier's output goes to build/ci/<tier>.log and is printed whole
#       when the tier ends, so that two tiers' lines never interleave.
#
# A failing tier does not stop the later ones: one CI run reports every tier. The script
# exits non-zero when any tier failed, and its summary names them.
#
# CLOUD58_CI_DEADLINE (seconds since the epoch; `make test` sets it 85 minutes after it
# started, setup included): with lanes, a tier still running then is stopped (its process
# group, TERM then KILL), reported FAILED with the output it had written, and the tiers after
# it are not started. CI kills the whole run at 90 minutes, and a run killed from outside
# prints nothing of the tier that was slow; this one says which it was and how far it got.
#
# Lanes share one host, so the script settles for the whole run what two tiers would
# otherwise set and put back in turn:
# * each lane has its own TMPDIR: pytest keeps only the 3 newest basetemp directories
#   under $TMPDIR/pytest-of-<user> and deletes older ones, which would be the live
#   directories of a pytest run in the other lane;
# * fs.inotify.max_user_instances: the lab's and the benchmarks' systemd containers raise it
#   while they run and put the old value back when they stop (lab/cloud58_lab/nodes.py),
#   unless it was high enough already. With two lanes, one lane would put it back under
#   the other's containers; so this script raises it once for the run, and puts it back.
set -uo pipefail
repo=$(cd "$(dirname "$0")/../.." && pwd)

if [[ ${1:-} == --lanes ]]; then
  shift
  lanes=("$@")
else
  lanes=("$*")
fi
logs=$repo/build/ci
mkdir -p "$logs"
run=$(mktemp -d "${TMPDIR:-/tmp}/c58-tiers-XXXXXX")
# Like /tmp: the tests run programs as other users (FRR as frr), which must reach their
# directories under a lane's TMPDIR; mktemp makes it 0700.
chmod 0755 "$run"
total=$SECONDS
# pytest cuts its short summary lines ("FAILED test - reason") to the terminal's width, 80
# columns without one; the reason is what a CI log is read for.
export COLUMNS=${COLUMNS:-200}

inotify=/proc/sys/fs/inotify/max_user_instances
inotify_old=
if ((${#lanes[@]} > 1)); then
  needed=$(PYTHONPATH=$repo/lab "$repo/.venv/bin/python" -c \
    'from cloud58_lab import nodes; print(nodes.INOTIFY_NEEDED)')
  current=$(<"$inotify")
  if ((current < needed)); then
    if echo "$needed" >"$inotify" 2>/dev/null; then
      inotify_old=$current
      echo "== fs.inotify.max_user_instances raised from $current to $needed for the lanes"
    else
      echo "== fs.inotify.max_user_instances is $current and cannot be raised here; lanes may starve each other's containers" >&2
    fi
  fi
fi
restore() {
  if [[ -n $inotify_old && $(<"$inotify") == "$needed" ]]; then
    echo "$inotify_old" >"$inotify"
    echo "== fs.inotify.max_user_instances back to $inotify_old"
  fi
}
trap restore EXIT

# run_tier TIER STREAM: run one make target; its result line goes to $run/<tier>.result.
run_tier() {
  local tier=$1 stream=$2 started=$SECONDS result=passed
  echo "== tier $tier ($(date -u +%H:%M:%S) UTC)"
  if [[ $stream == yes ]]; then
    make --no-print-directory -C "$repo" "$tier" || result=FAILED
  else
    if [[ -e $run/deadline ]]; then
      echo "== tier $tier not started: the deadline had passed"
      printf '%-12s %-7s %5d s (not started: deadline)\n' "$tier" FAILED 0 >"$run/$tier.result"
      return
    fi
    # its own process group, which the deadline stops whole
    setsid make --no-print-directory -C "$repo" "$tier" >"$logs/$tier.log" 2>&1 &
    local pid=$!
    echo "$pid" >"$run/$tier.running"
    wait "$pid" || result=FAILED
    rm -f "$run/$tier.running"
    [[ -e $run/$tier.stopped ]] && result="FAILED (stopped at the deadline)"
    {
      flock 9
      echo "== tier $tier: $result in $((SECONDS - started)) s; its output ($logs/$tier.log):"
      cat "$logs/$tier.log"
      echo "== end of tier $tier"
    } 9>"$run/print.lock"
  fi
  printf '%-12s %-7s %5d s\n' "$tier" "${result%% *}" $((SECONDS - started)) >"$run/$tier.result"
}

# watch_deadline EPOCH: then, stop the tiers still running (see the top of this file).
watch_deadline() {
  local deadline=$1 now tier
  while now=$(date +%s) && ((now < deadline)); do
    sleep $((deadline - now < 30 ? deadline - now : 30))
  done
  touch "$run/deadline"
  for f in "$run"/*.running; do
    [[ -e $f ]] || continue
    tier=$(basename "$f" .running)
    echo "== deadline: stopping tier $tier (process group $(<"$f")) after $((SECONDS - total)) s of tiers"
    touch "$run/$tier.stopped"
    kill -TERM -- "-$(<"$f")" 2>/dev/null
  done
  sleep 20
  for f in "$run"/*.running; do
    [[ -e $f ]] && kill -KILL -- "-$(<"$f")" 2>/dev/null
  done
}

if ((${#lanes[@]} == 1)); then
  for tier in ${lanes[0]}; do
    run_tier "$tier" yes
  done
else
  pids=()
  for i in "${!lanes[@]}"; do
    lane_tmp=$run/lane$i
    mkdir -p "$lane_tmp"
    chmod 1777 "$lane_tmp"
    (
      export TMPDIR=$lane_tmp
      for tier in ${lanes[$i]}; do
        run_tier "$tier" no
      done
    ) &
    pids+=($!)
  done
  watcher=
  if [[ -n ${CLOUD58_CI_DEADLINE:-} ]]; then
    echo "== deadline for the tiers: $(date -u -d "@$CLOUD58_CI_DEADLINE" +%H:%M:%S) UTC"
    watch_deadline "$CLOUD58_CI_DEADLINE" &
    watcher=$!
  fi
  wait "${pids[@]}"
  if [[ -n $watcher ]]; then
    kill "$watcher" 2>/dev/null
  fi
fi

# The end of a CI log is often all that is kept of it: for each failed tier, its failing tests
# (pytest's short summary lines) and its last lines come here, before the summary table, and its
# whole log is copied into $run, which a failed run keeps.
for tier in ${lanes[*]}; do
  [[ -f $run/$tier.result ]] && grep -q FAILED "$run/$tier.result" && [[ -f $logs/$tier.log ]] || continue
  cp "$logs/$tier.log" "$run/$tier.log"
  echo "== failed tier $tier: its failing tests and last lines (whole log: $run/$tier.log)"
  grep -E '^(FAILED|ERROR) ' "$logs/$tier.log" | head -20 | cut -c1-300
  tail -n 15 "$logs/$tier.log" | cut -c1-300
done

echo "== tiers summary (total $((SECONDS - total)) s; lanes: $(printf '[%s] ' "${lanes[@]}"))"
failed=()
for tier in ${lanes[*]}; do
  if [[ -f $run/$tier.result ]]; then
    printf '  %s' "$(<"$run/$tier.result")"
    echo
    grep -q FAILED "$run/$tier.result" && failed+=("$tier")
  else
    echo "  $tier did not run"
    failed+=("$tier")
  fi
done
if ((${#failed[@]} > 0)); then
  echo "tiers: failed: ${failed[*]} (logs and the lanes' temporary files: $logs, $run)" >&2
  exit 1
fi
rm -rf "$run"
