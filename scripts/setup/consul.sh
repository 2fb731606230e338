#!/usr/bin/env bash
# Build the pinned Consul server and agent (`consul`, v1.14.11, MPL-2.0) from the Go module
# proxy, as pinned by upstream/consul/go.mod + go.sum (issue 15). The controller runs it in
# tests/network/test_consul_cluster.py; the consul role will install it on the lab's nodes.
#
#   scripts/setup/consul.sh                 build if needed; silent when already built
#   scripts/setup/consul.sh --print-bin-dir
#                                           print the bin dir, or fail if not built
#
# The same caching scheme as scripts/setup/upstream.sh and runtime.sh, with a key of its own
# (so a change here or to upstream/consul never rebuilds Kubernetes, and the reverse):
#   ${CLOUD58_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/cloud58}/upstream/consul/<key>/bin
# where <key> hashes upstream/consul/go.mod, go.sum, this script and `go version`. A build
# happens in a temporary directory renamed into place, with a .complete stamp written
# before the rename, so a failed or interrupted build never looks complete.
#
# Consul 1.14.11 is MPL-2.0; releases from 1.15.x/1.16.x on are BUSL. Do not bump past
# 1.14 (upstream/consul/README.md).
#
# CLOUD58_CONSUL_BIN_DIR=/path/to/official/binaries skips the build and uses that
# directory (it must hold `consul`).
set -euo pipefail

repo=$(cd "$(dirname "$0")/../.." && pwd)
mod_dir=$repo/upstream/consul
cache=${CLOUD58_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/cloud58}
programs=(consul)
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

if [[ -n "${CLOUD58_CONSUL_BIN_DIR:-}" ]]; then
  missing=$(missing_in "$CLOUD58_CONSUL_BIN_DIR")
  if [[ -n "$missing" ]]; then
    echo "consul: CLOUD58_CONSUL_BIN_DIR=$CLOUD58_CONSUL_BIN_DIR lacks these executables:$missing" >&2
    exit 1
  fi
  [[ $mode == print ]] && (cd "$CLOUD58_CONSUL_BIN_DIR" && pwd)
  exit 0
fi

export GOTOOLCHAIN=local GOFLAGS="-mod=readonly -buildvcs=false" GOWORK=off CGO_ENABLED=0
go=$(command -v go || true)
[[ -z "$go" && -x /usr/local/go/bin/go ]] && go=/usr/local/go/bin/go
if [[ -z "$go" ]]; then
  echo "consul: no 'go' found (PATH or /usr/local/go/bin); install Go >= $(sed -n 's/^go //p' "$mod_dir/go.mod")," \
    "or set CLOUD58_CONSUL_BIN_DIR=/path/to/official/binaries" >&2
  exit 1
fi
go_version=$("$go" version)
key=$( { cat "$mod_dir/go.mod" "$mod_dir/go.sum" "$0"; echo "$go_version"; } | sha256sum | cut -c1-16)
target=$cache/upstream/consul/$key

if [[ $mode == print ]]; then
  if [[ ! -f "$target/.complete" ]]; then
    echo "consul: the pinned consul is not built ($target); run 'make setup-consul'" \
      "or set CLOUD58_CONSUL_BIN_DIR=/path/to/official/binaries" >&2
    exit 1
  fi
  echo "$target/bin"
  exit 0
fi

[[ -f "$target/.complete" ]] && exit 0

mkdir -p "$cache/upstream/consul"
# One builder per key at a time; a second caller waits and then finds it complete.
exec 9>"$cache/upstream/consul/.$key.lock"
flock 9
[[ -f "$target/.complete" ]] && exit 0

tmp=$(mktemp -d "$cache/upstream/consul/.build-$key.XXXXXX")
log=$(mktemp "$cache/upstream/consul/.download-$key.XXXXXX")
trap 'rm -rf "$tmp" "$log"' EXIT
chmod 755 "$tmp"
cd "$mod_dir"

consul_version=$("$go" list -m -f '{{.Version}}' github.com/hashicorp/consul)
echo "consul: building consul $consul_version into $target (once per pin; minutes)" >&2

if ! "$go" mod download 2>"$log"; then
  tail -n 20 "$log" >&2
  echo "consul: 'go mod download' failed: the Go module proxy ($("$go" env GOPROXY)) could not serve" \
    "the pinned modules. Without it, set CLOUD58_CONSUL_BIN_DIR=/path/to/official/binaries" \
    "(${programs[*]})." >&2
  exit 1
fi

# Consul's Makefile stamps GitCommit and BuildDate from git; the version itself comes from
# the module's embedded version/VERSION file. The proxy serves no commit for the tag, so
# GitCommit stays empty; the build date is the module's publication time (reproducible).
consul_time=$("$go" list -m -f '{{.Time.UTC.Format "2006-01-02T15:04:05Z"}}' github.com/hashicorp/consul)
ldflags="-s -w -X github.com/hashicorp/consul/version.BuildDate=$consul_time"

mapfile -t packages < <("$go" list -f '{{.ImportPath}}' tool)
mkdir "$tmp/bin"
if ! nice -n 19 "$go" build -trimpath -ldflags "$ldflags" -o "$tmp/bin/" "${packages[@]}"; then
  echo "consul: 'go build' failed (above); nothing was installed" >&2
  exit 1
fi
missing=$(missing_in "$tmp/bin")
if [[ -n "$missing" ]]; then
  echo "consul: the build did not produce:$missing" >&2
  exit 1
fi
reported=$("$tmp/bin/consul" version | head -n 1)
if [[ "$reported" != "Consul $consul_version" ]]; then
  echo "consul: 'consul version' reports '$reported', not 'Consul $consul_version'" >&2
  exit 1
fi
touch "$tmp/.complete"
rm -rf "$target"  # a leftover without .complete (the rename below needs the name free)
mv -T "$tmp" "$target"
