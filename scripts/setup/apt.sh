#!/usr/bin/env bash
# Install the Debian packages listed in apt-packages.txt, only those missing.
# Idempotent: a machine that has them all returns in well under a second.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
mapfile -t wanted < <(sed -e 's/#.*//' -e '/^\s*$/d' "$here/apt-packages.txt")
missing=()
for pkg in "${wanted[@]}"; do
  status=$(dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null || true)
  [[ "$status" == "install ok installed" ]] || missing+=("$pkg")
done
if ((${#missing[@]} == 0)); then
  exit 0
fi
if [[ $(id -u) -ne 0 ]]; then
  echo "setup: these Debian packages are missing and installing them needs root: ${missing[*]}" >&2
  exit 1
fi
echo "setup: installing Debian packages: ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
if ! apt-get update -qq; then
  echo "setup: 'apt-get update' failed; check the Debian mirror in /etc/apt/sources.list" >&2
  exit 1
fi
if ! apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null; then
  echo "setup: 'apt-get install ${missing[*]}' failed; install them by hand and rerun" >&2
  exit 1
fi
# frr and haproxy start as services on install; the lab and tests run their own copies.
for svc in frr haproxy bird; do
  systemctl disable --now "$svc" >/dev/null 2>&1 || true
done
