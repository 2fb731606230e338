#!/usr/bin/env bash
# Quality gates for the collection: ansible-test sanity, ansible-doc for every module,
# and a collection build. Run by `make sanity` (and so by `make test`).
set -euo pipefail
repo=$(cd "$(dirname "$0")/../.." && pwd)
export PATH="$repo/.venv/bin:$PATH"
collection="$repo/collections/ansible_collections/cloud58/platform"

# ansible-test bootstraps pip in its sanity virtualenvs with a script it downloads from a
# host that is not reachable here; ours does the same from ensurepip and PyPI.
pip_version=$(python -c 'import ansible_test, pathlib, re
src = (pathlib.Path(ansible_test.__file__).parent / "_internal/python_requirements.py").read_text()
print(re.search(r"pip=.([0-9.]+).", src).group(1))')
bootstrap="$HOME/.ansible/test/cache/get_pip_${pip_version//./_}.py"
if [[ ! -f "$bootstrap" ]]; then
  mkdir -p "$(dirname "$bootstrap")"
  cp "$repo/scripts/ci/pip_bootstrap.py" "$bootstrap"
fi

echo "== ansible-test sanity"
(cd "$collection" && ansible-test sanity --venv --python 3.11 --color no)

echo "== ansible-doc for every module"
modules=$(find "$collection/plugins/modules" -name '*.py' ! -name '__init__.py' -printf '%f\n' | sed 's/\.py$//' | sort)
for m in $modules; do
  ansible-doc "cloud58.platform.$m" >/dev/null || { echo "ansible-doc failed for cloud58.platform.$m" >&2; exit 1; }
  echo "ok cloud58.platform.$m"
done

echo "== ansible-galaxy collection build"
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
ansible-galaxy collection build "$collection" --output-path "$out" >/dev/null
ls "$out"/cloud58-platform-*.tar.gz >/dev/null
echo "ok $(cd "$out" && ls cloud58-platform-*.tar.gz)"
