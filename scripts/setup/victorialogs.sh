#!/usr/bin/env bash
# Build the pinned log store (`victoria-logs`, VictoriaLogs v1.52.2, Apache-2.0) from the Go
# module proxy, as pinned by upstream/victorialogs/go.mod + go.sum (issue 17 item 4). The
# controller runs it in tests/network/test_logs_store.py; the log_store role installs it.
#
#   scripts/setup/victorialogs.sh                 build if needed; silent when already built
#   scripts/setup/victorialogs.sh --print-bin-dir
#                                                 print the bin dir, or fail if not built
#
# The same caching scheme as scripts/setup/consul.sh, with a key of its own:
#   ${CLOUD58_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/cloud58}/upstream/victorialogs/<key>/bin
# where <key> hashes upstream/victorialogs/go.mod, go.sum, this script and `go version`. A
# build happens in a temporary directory renamed into place, with a .complete stamp written
# before the rename, so a failed or interrupted build never looks complete.
#
# CLOUD58_VICTORIALOGS_BIN_DIR=/path/to/official/binaries skips the build and uses that
# directory (it must hold `victoria-logs`).
set -euo pipefail

repo=$(cd "$(dirname "$0")/../.." && pwd)
mod_dir=$repo/upstream/victorialogs
cache=${CLOUD58_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/cloud58}
programs=(victoria-logs)
mode=build
case "${1:-}" in
  "") ;;
  --print-bin-dir) mode=print ;;
  *) echo "usage: $0 [--print-bin-dir]" >&2; exit 2 ;;
esac

missing_in() { # DIR: print the programs that are not executable files in DIR
  local p
  for p in "${programs[@]}"; do
    [[ -f "$1/$p" && -x "$1/$p" ]] || printf ' %s' "$p"
  done
}

if [[ -n "${CLOUD58_VICTORIALOGS_BIN_DIR:-}" ]]; then
  missing=$(missing_in "$CLOUD58_VICTORIALOGS_BIN_DIR")
  if [[ -n "$missing" ]]; then
    echo "victorialogs: CLOUD58_VICTORIALOGS_BIN_DIR=$CLOUD58_VICTORIALOGS_BIN_DIR lacks these executables:$missing" >&2
    exit 1
  fi
  [[ $mode == print ]] && (cd "$CLOUD58_VICTORIALOGS_BIN_DIR" && pwd)
  exit 0
fi

export GOTOOLCHAIN=local GOFLAGS="-mod=readonly -buildvcs=false" GOWORK=off CGO_ENABLED=0
go=$(command -v go || true)
[[ -z "$go" && -x /usr/local/go/bin/go ]] && go=/usr/local/go/bin/go
if [[ -z "$go" ]]; then
  echo "victorialogs: no 'go' found (PATH or /usr/local/go/bin); install Go >= $(sed -n 's/^go //p' "$mod_dir/go.mod")," \
    "or set CLOUD58_VICTORIALOGS_BIN_DIR=/path/to/official/binaries" >&2
  exit 1
fi
go_version=$("$go" version)
key=$( { cat "$mod_dir/go.mod" "$mod_dir/go.sum" "$0"; echo "$go_version"; } | sha256sum | cut -c1-16)
target=$cache/upstream/victorialogs/$key

if [[ $mode == print ]]; then
  if [[ ! -f "$target/.complete" ]]; then
    echo "victorialogs: the pinned victoria-logs is not built ($target); run 'make setup-victorialogs'" \
      "or set CLOUD58_VICTORIALOGS_BIN_DIR=/path/to/official/binaries" >&2
    exit 1
  fi
  echo "$target/bin"
  exit 0
fi

[[ -f "$target/.complete" ]] && exit 0

mkdir -p "$cache/upstream/victorialogs"
# One builder per key at a time; a second caller waits and then finds it complete.
exec 9>"$cache/upstream/victorialogs/.$key.lock"
flock 9
[[ -f "$target/.complete" ]] && exit 0

tmp=$(mktemp -d "$cache/upstream/victorialogs/.build-$key.XXXXXX")
log=$(mktemp "$cache/upstream/victorialogs/.download-$key.XXXXXX")
trap 'rm -rf "$tmp" "$log"' EXIT
chmod 755 "$tmp"
cd "$mod_dir"

vl_version=$("$go" list -m -f '{{.Version}}' github.com/VictoriaMetrics/VictoriaLogs)
echo "victorialogs: building victoria-logs $vl_version into $target (once per pin; minutes)" >&2

if ! "$go" mod download 2>"$log"; then
  tail -n 20 "$log" >&2
  echo "victorialogs: 'go mod download' failed: the Go module proxy ($("$go" env GOPROXY)) could not serve" \
    "the pinned modules. Without it, set CLOUD58_VICTORIALOGS_BIN_DIR=/path/to/official/binaries" \
    "(${programs[*]})." >&2
  exit 1
fi

# Upstream's Makefile stamps lib/buildinfo.Version as <app>-<date>-<tag>; the proxy gives the
# tag and the module's publication time, so the stamp is reproducible.
vl_date=$("$go" list -m -f '{{.Time.UTC.Format "20060102-150405"}}' github.com/VictoriaMetrics/VictoriaLogs)
stamp="victoria-logs-$vl_date-$vl_version"
ldflags="-s -w -X github.com/VictoriaMetrics/VictoriaMetrics/lib/buildinfo.Version=$stamp"

mapfile -t packages < <("$go" list -f '{{.ImportPath}}' tool)
mkdir "$tmp/bin"
if ! nice -n 19 "$go" build -trimpath -ldflags "$ldflags" -o "$tmp/bin/" "${packages[@]}"; then
  echo "victorialogs: 'go build' failed (above); nothing was installed" >&2
  exit 1
fi
missing=$(missing_in "$tmp/bin")
if [[ -n "$missing" ]]; then
  echo "victorialogs: the build did not produce:$missing" >&2
  exit 1
fi
reported=$("$tmp/bin/victoria-logs" -version | head -n 1)
if [[ "$reported" != "$stamp" ]]; then
  echo "victorialogs: 'victoria-logs -version' reports '$reported', not '$stamp'" >&2
  exit 1
fi
touch "$tmp/.complete"
rm -rf "$target"  # a leftover without .complete (the rename below needs the name free)
mv -T "$tmp" "$target"
