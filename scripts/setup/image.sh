#!/usr/bin/env bash
# Make sure the node image for molecule and the lab exists in podman.
#
#   scripts/setup/image.sh              build localhost/cloud58-node:<hash> unless it exists
#   scripts/setup/image.sh --print-ref  print that reference only (never builds)
#
# <hash> covers the recipe in images/node/ (every file but *.md), so the image is
# rebuilt exactly when the recipe changes, and a scenario or the lab that names the
# reference always gets the image of the checked-out recipe. Idempotent: when the
# image exists the script returns in well under a second.
set -euo pipefail
repo=$(cd "$(dirname "$0")/../.." && pwd)
recipe=$repo/images/node
export CONTAINERS_CONF=${CONTAINERS_CONF:-$repo/containers/containers.conf}

# sha256 over the sorted relative paths and contents of the recipe files.
_recipe_hash() {
  local f
  (
    cd "$recipe"
    find . -type f ! -name '*.md' -print | LC_ALL=C sort | while read -r f; do
      printf '%s\0' "$f"
      sha256sum <"$f"
    done
  ) | sha256sum | cut -c1-16
}

[[ -x $recipe/build.sh && -f $recipe/packages.txt ]] ||
  { echo "image: the recipe in $recipe is incomplete (build.sh, packages.txt)" >&2; exit 1; }
ref=localhost/cloud58-node:$(_recipe_hash)

case ${1:-} in
  --print-ref) echo "$ref"; exit 0 ;;
  '') ;;
  *) echo "usage: $0 [--print-ref]" >&2; exit 2 ;;
esac

command -v podman >/dev/null || { echo "image: podman is not installed; run scripts/setup/apt.sh" >&2; exit 1; }
if podman image exists "$ref"; then
  exit 0
fi

# One build at a time per machine; whoever waited finds the image made.
lock=${TMPDIR:-/var/tmp}/cloud58-node-image.lock
exec 9>"$lock"
if ! flock -n 9; then
  echo "image: another build holds $lock; waiting for it"
  flock 9
fi
if podman image exists "$ref"; then
  exit 0
fi
"$recipe/build.sh" "$ref"
