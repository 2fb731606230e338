#!/usr/bin/env bash
# Run molecule scenarios: `molecule test` (create, converge, idempotence, verify, destroy).
#
#   scripts/ci/molecule.sh              every scenario: each molecule/<name>/ with a molecule.yml
#   scripts/ci/molecule.sh NAME...      only those scenarios
#   MOLECULE_JOBS=1 scripts/ci/molecule.sh
#                                       one scenario at a time (default: 2 at a time; each
#                                       scenario's log is printed whole when it ends, and
#                                       kept in build/molecule/<name>.log)
#   eval "$(scripts/ci/molecule.sh --env)"
#                                       the environment, for running molecule steps by hand
#
# A failing scenario does not stop the others; the script then exits non-zero and names
# the scenarios that failed. Containers are destroyed after every scenario, pass or fail.
set -euo pipefail
repo=$(cd "$(dirname "$0")/../.." && pwd)

export PATH="$repo/.venv/bin:$PATH"
export CONTAINERS_CONF=${CONTAINERS_CONF:-$repo/containers/containers.conf}
# The collection under test from the repository, and the lab-only one (cloud58.lab: the
# podman_nsenter connection); the bundled ones (containers.podman, ansible.posix, ...) are
# found in the `ansible` package's site-packages.
export ANSIBLE_COLLECTIONS_PATH="$repo/collections:$repo/lab/collections:$HOME/.ansible/collections"
if [[ ! -t 1 ]]; then
  # Plain logs in CI and in files.
  export NO_COLOR=1 ANSIBLE_NOCOLOR=1 PY_COLORS=0
fi
export PYTHONDONTWRITEBYTECODE=1

die() {
  echo "molecule: $*" >&2
  exit 1
}

[[ -x $repo/.venv/bin/molecule ]] || die "no molecule in $repo/.venv; run scripts/setup/venv.sh (make setup-venv)"
CLOUD58_NODE_IMAGE=$("$repo/scripts/setup/image.sh" --print-ref)
export CLOUD58_NODE_IMAGE

if [[ ${1:-} == --env ]]; then
  for var in PATH CONTAINERS_CONF ANSIBLE_COLLECTIONS_PATH CLOUD58_NODE_IMAGE; do
    printf 'export %s=%q\n' "$var" "${!var}"
  done
  exit 0
fi

podman image exists "$CLOUD58_NODE_IMAGE" ||
  die "the node image $CLOUD58_NODE_IMAGE is missing; build it with scripts/setup/image.sh (make setup-image)"

if (($# > 0)); then
  scenarios=("$@")
  for name in "${scenarios[@]}"; do
    [[ -f $repo/molecule/$name/molecule.yml ]] || die "no scenario '$name' (molecule/$name/molecule.yml)"
  done
else
  mapfile -t scenarios < <(find "$repo/molecule" -mindepth 2 -maxdepth 2 -name molecule.yml -printf '%h\n' |
    xargs -r -n1 basename | LC_ALL=C sort)
  ((${#scenarios[@]} > 0)) || die "no scenarios under $repo/molecule"
fi

cd "$repo"
jobs=${MOLECULE_JOBS:-2}
[[ $jobs =~ ^[1-9][0-9]*$ ]] || die "MOLECULE_JOBS must be a positive number, not '$jobs'"
logs=$repo/build/molecule
mkdir -p "$logs"
rm -f "$logs"/*.log "$logs"/*.result

# The longest scenarios first, so that the short ones fill the other slots.
order=(control_plane kernel_tuning node_stack)
queue=()
for name in "${order[@]}"; do
  [[ " ${scenarios[*]} " == *" $name "* ]] && queue+=("$name")
done
for name in "${scenarios[@]}"; do
  [[ " ${queue[*]} " == *" $name "* ]] || queue+=("$name")
done

run_one() {
  local name=$1 started=$SECONDS result
  # `molecule test` destroys at its end only when every step before passed.
  if molecule test -s "$name" --destroy=always >"$logs/$name.log" 2>&1; then
    result=passed
  else
    result=FAILED
  fi
  printf '%s %d\n' "$result" $((SECONDS - started)) >"$logs/$name.result"
  # One whole log at a time, even when two scenarios end together.
  {
    flock 9
    echo "== molecule test -s $name: $result after $((SECONDS - started)) s"
    cat "$logs/$name.log"
    echo "== end of molecule test -s $name"
  } 9>"$logs/.print.lock"
}

for name in "${queue[@]}"; do
  while (($(jobs -rp | wc -l) >= jobs)); do
    wait -n || true
  done
  echo "== molecule test -s $name started"
  run_one "$name" &
done
wait

failed=()
summary=()
for name in "${queue[@]}"; do
  read -r result seconds <"$logs/$name.result" || { result=FAILED seconds=0; }
  [[ $result == passed ]] || failed+=("$name")
  summary+=("$(printf '%-24s %-7s %4d s' "$name" "$result" "$seconds")")
done

echo "== molecule summary ($jobs at a time)"
printf '  %s\n' "${summary[@]}"
if ((${#failed[@]} > 0)); then
  die "failed scenarios: ${failed[*]}"
fi
