#!/usr/bin/env bash
# Create the project's virtualenv from requirements.txt (every package pinned).
#
# The environment lives in a cache keyed by the hash of requirements.txt and the
# interpreter version, and the repo's .venv is a symlink to it: a second clone on the
# same machine, or a second `make setup`, finds it ready in well under a second.
set -euo pipefail
repo=$(cd "$(dirname "$0")/../.." && pwd)
python=${CLOUD58_PYTHON:-/usr/bin/python3}
cache=${CLOUD58_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/cloud58}
if ! "$python" -c 'import sys; assert sys.version_info >= (3, 11)' 2>/dev/null; then
  echo "setup: $python is missing or older than 3.11; set CLOUD58_PYTHON to a Python 3.11+ interpreter" >&2
  exit 1
fi
pyver=$("$python" -c 'import sys; print("%d.%d.%d" % sys.version_info[:3])')
key=$( { cat "$repo/requirements.txt"; echo "$python $pyver"; } | sha256sum | cut -c1-16)
target="$cache/venv/$key"
if [[ ! -f "$target/.complete" ]]; then
  # Built in place (a venv's scripts carry its absolute path); only the .complete
  # stamp, written last, makes it usable, so a failed build is never mistaken for one.
  echo "setup: building virtualenv $target (Python $pyver)"
  rm -rf "$target"
  mkdir -p "$cache/venv"
  "$python" -m venv "$target"
  if ! "$target/bin/pip" install -q --disable-pip-version-check --no-deps -r "$repo/requirements.txt" \
      || ! "$target/bin/pip" check >/dev/null; then
    rm -rf "$target"
    echo "setup: 'pip install -r requirements.txt' failed (is PyPI reachable?); the half-built virtualenv was removed" >&2
    exit 1
  fi
  touch "$target/.complete"
fi
if [[ "$(readlink "$repo/.venv" 2>/dev/null)" != "$target" ]]; then
  rm -rf "$repo/.venv"
  ln -s "$target" "$repo/.venv"
fi
