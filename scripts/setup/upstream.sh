#!/usr/bin/env bash
# Build the pinned upstream programs (etcd, etcdctl, kube-apiserver,
# kube-controller-manager, kube-scheduler, kubelet, kubectl, kwok) from the Go module
# proxy, as pinned by upstream/go.mod + go.sum.
#
#   scripts/setup/upstream.sh               build if needed; silent when already built
#   scripts/setup/upstream.sh --print-bin-dir
#                                           print the bin dir, or fail if not built
#
# The binaries live in a cache keyed by the content that determines them (go.mod,
# go.sum, this script, `go version`):
#   ${CLOUD58_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/cloud58}/upstream/<key>/bin
# A build happens in a temporary directory that is renamed into place, with a
# .complete stamp written before the rename, so a failed or interrupted build never
# looks complete. Go's own module and build caches stay the default ones.
#
# CLOUD58_BIN_DIR=/path/to/official/binaries skips the build and uses that directory
# (it must hold every program above).
set -euo pipefail

repo=$(cd "$(dirname "$0")/../.." && pwd)
mod_dir=$repo/upstream
cache=${CLOUD58_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/cloud58}
programs=(etcd etcdctl kube-apiserver kube-controller-manager kube-scheduler kubelet kubectl kwok)
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

if [[ -n "${CLOUD58_BIN_DIR:-}" ]]; then
  missing=$(missing_in "$CLOUD58_BIN_DIR")
  if [[ -n "$missing" ]]; then
    echo "upstream: CLOUD58_BIN_DIR=$CLOUD58_BIN_DIR lacks these executables:$missing" >&2
    exit 1
  fi
  [[ $mode == print ]] && (cd "$CLOUD58_BIN_DIR" && pwd)
  exit 0
fi

export GOTOOLCHAIN=local GOFLAGS="-mod=readonly -buildvcs=false" GOWORK=off CGO_ENABLED=0
go=$(command -v go || true)
[[ -z "$go" && -x /usr/local/go/bin/go ]] && go=/usr/local/go/bin/go
if [[ -z "$go" ]]; then
  echo "upstream: no 'go' found (PATH or /usr/local/go/bin); install Go >= $(sed -n 's/^go //p' "$mod_dir/go.mod")," \
    "or set CLOUD58_BIN_DIR=/path/to/official/binaries" >&2
  exit 1
fi
go_version=$("$go" version)
key=$( { cat "$mod_dir/go.mod" "$mod_dir/go.sum" "$0"; echo "$go_version"; } | sha256sum | cut -c1-16)
target=$cache/upstream/$key

if [[ $mode == print ]]; then
  if [[ ! -f "$target/.complete" ]]; then
    echo "upstream: the pinned programs are not built ($target); run 'make setup-upstream'" \
      "or set CLOUD58_BIN_DIR=/path/to/official/binaries" >&2
    exit 1
  fi
  echo "$target/bin"
  exit 0
fi

[[ -f "$target/.complete" ]] && exit 0

mkdir -p "$cache/upstream"
# One builder per key at a time; a second caller waits and then finds it complete.
exec 9>"$cache/upstream/.$key.lock"
flock 9
[[ -f "$target/.complete" ]] && exit 0

tmp=$(mktemp -d "$cache/upstream/.build-$key.XXXXXX")
log=$(mktemp "$cache/upstream/.download-$key.XXXXXX")
trap 'rm -rf "$tmp" "$log"' EXIT
chmod 755 "$tmp"
cd "$mod_dir"

kube_version=$(awk '$1 == "k8s.io/kubernetes" && $2 ~ /^v/ {print $2; exit}' go.mod)
echo "upstream: building kubernetes $kube_version, etcd, kwok into $target (once per pin; minutes)" >&2

if ! "$go" mod download 2>"$log"; then
  tail -n 20 "$log" >&2
  echo "upstream: 'go mod download' failed: the Go module proxy ($("$go" env GOPROXY)) could not serve" \
    "the pinned modules. Without it, set CLOUD58_BIN_DIR=/path/to/official/binaries" \
    "(${programs[*]})." >&2
  exit 1
fi

# The version Kubernetes reports (kubectl version, the apiserver's /version): its
# release scripts stamp these variables from git; here they come from the pin. The
# build date is the module's publication time, so the build stays reproducible.
kube_time=$("$go" list -m -f '{{.Time.UTC.Format "2006-01-02T15:04:05Z"}}' k8s.io/kubernetes)
if [[ ! $kube_version =~ ^v([0-9]+)\.([0-9]+)\.[0-9]+$ ]]; then
  echo "upstream: unexpected k8s.io/kubernetes version '$kube_version' in upstream/go.mod" >&2
  exit 1
fi
ldflags="-s -w"
for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
  ldflags+=" -X $pkg.gitVersion=$kube_version"
  ldflags+=" -X $pkg.gitMajor=${BASH_REMATCH[1]} -X $pkg.gitMinor=${BASH_REMATCH[2]}"
  ldflags+=" -X $pkg.gitCommit= -X $pkg.gitTreeState=clean -X $pkg.buildDate=$kube_time"
done

# One `go build` for every program, so packages they share are compiled once.
mapfile -t packages < <("$go" list -f '{{.ImportPath}}' tool)
mkdir "$tmp/bin"
if ! "$go" build -trimpath -ldflags "$ldflags" -o "$tmp/bin/" "${packages[@]}"; then
  echo "upstream: 'go build' failed (above); nothing was installed" >&2
  exit 1
fi
# go names a binary after its package path, and go.etcd.io/etcd/server/v3 builds `server`.
mv "$tmp/bin/server" "$tmp/bin/etcd"
missing=$(missing_in "$tmp/bin")
if [[ -n "$missing" ]]; then
  echo "upstream: the build did not produce:$missing" >&2
  exit 1
fi
# -X silently ignores a variable that moved: check the stamp took.
reported=$("$tmp/bin/kube-apiserver" --version)
if [[ "$reported" != "Kubernetes $kube_version" ]]; then
  echo "upstream: kube-apiserver reports '$reported', not 'Kubernetes $kube_version'; check the -X ldflags" >&2
  exit 1
fi
touch "$tmp/.complete"
rm -rf "$target"  # a leftover without .complete (the rename below needs the name free)
mv -T "$tmp" "$target"
