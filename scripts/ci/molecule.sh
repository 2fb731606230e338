#!/usr/bin/env bash
# Run molecule scenarios: `molecule test` (create, converge, idempotence, verify, destroy).
#
#   scripts/ci/molecule.sh              every scenario: each molecule/<name>/ with a molecule.yml
#   scripts/ci/molecule.sh NAME...      only those scenarios
#   eval "$(scripts/ci/molecule.sh --env)"
#                                       the environment, for running molecule steps by hand
#
# A failing scenario does not stop the others; the script then exits non-zero and names
# the scenarios that failed. Containers are destroyed after every scenario, pass or fail.
set -euo pipefail
repo=$(cd "$(dirname "$0")/../.." && pwd)

export PATH="$repo/.venv/bin:$PATH"
export CONTAINERS_CONF=${CONTAINERS_CONF:-$repo/containers/containers.conf}
# The collection under test from the repository; the bundled ones (containers.podman,
# ansible.posix, ...) are found in the `ansible` package's site-packages.
export ANSIBLE_COLLECTIONS_PATH="$repo/collections:$HOME/.ansible/collections"
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
failed=()
summary=()
for name in "${scenarios[@]}"; do
  echo "== molecule test -s $name"
  started=$SECONDS
  # `molecule test` destroys at its end only when every step before passed.
  if molecule test -s "$name" --destroy=always; then
    result=passed
  else
    result=FAILED
    failed+=("$name")
  fi
  summary+=("$(printf '%-24s %-7s %4d s' "$name" "$result" $((SECONDS - started)))")
done

echo "== molecule summary"
printf '  %s\n' "${summary[@]}"
if ((${#failed[@]} > 0)); then
  die "failed scenarios: ${failed[*]}"
fi
