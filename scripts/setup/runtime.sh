#!/usr/bin/env bash
# Build the pinned container runtime programs (containerd, containerd-shim-runc-v2, ctr,
# crictl, and the CNI plugins bridge, host-local, loopback, portmap, bandwidth) from the Go
# module proxy, as pinned by upstream/runtime/go.mod + go.sum. They go into the lab's node
# containers for real kubelets (issue 13); nothing on the controller runs them.
#
#   scripts/setup/runtime.sh                build if needed; silent when already built
#   scripts/setup/runtime.sh --print-bin-dir
#                                           print the bin dir, or fail if not built
#
# The same caching scheme as scripts/setup/upstream.sh, with a key of its own (so a change
# here or to upstream/runtime never rebuilds Kubernetes, and the reverse):
#   ${CLOUD58_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/cloud58}/upstream/runtime/<key>/bin
# where <key> hashes upstream/runtime/go.mod, go.sum, this script and `go version`. A build
# happens in a temporary directory renamed into place, with a .complete stamp written
# before the rename, so a failed or interrupted build never looks complete.
#
# runc is not built here: it needs cgo (its nsexec is C); the nodes use Debian's runc.
#
# CLOUD58_RUNTIME_BIN_DIR=/path/to/official/binaries skips the build and uses that
# directory (it must hold every program above).
set -euo pipefail

repo=$(cd "$(dirname "$0")/../.." && pwd)
mod_dir=$repo/upstream/runtime
cache=${CLOUD58_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/cloud58}
programs=(containerd containerd-shim-runc-v2 ctr crictl bridge host-local loopback portmap bandwidth)
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

if [[ -n "${CLOUD58_RUNTIME_BIN_DIR:-}" ]]; then
  missing=$(missing_in "$CLOUD58_RUNTIME_BIN_DIR")
  if [[ -n "$missing" ]]; then
    echo "runtime: CLOUD58_RUNTIME_BIN_DIR=$CLOUD58_RUNTIME_BIN_DIR lacks these executables:$missing" >&2
    exit 1
  fi
  [[ $mode == print ]] && (cd "$CLOUD58_RUNTIME_BIN_DIR" && pwd)
  exit 0
fi

export GOTOOLCHAIN=local GOFLAGS="-mod=readonly -buildvcs=false" GOWORK=off CGO_ENABLED=0
go=$(command -v go || true)
[[ -z "$go" && -x /usr/local/go/bin/go ]] && go=/usr/local/go/bin/go
if [[ -z "$go" ]]; then
  echo "runtime: no 'go' found (PATH or /usr/local/go/bin); install Go >= $(sed -n 's/^go //p' "$mod_dir/go.mod")," \
    "or set CLOUD58_RUNTIME_BIN_DIR=/path/to/official/binaries" >&2
  exit 1
fi
go_version=$("$go" version)
key=$( { cat "$mod_dir/go.mod" "$mod_dir/go.sum" "$0"; echo "$go_version"; } | sha256sum | cut -c1-16)
target=$cache/upstream/runtime/$key

if [[ $mode == print ]]; then
  if [[ ! -f "$target/.complete" ]]; then
    echo "runtime: the pinned runtime programs are not built ($target); run 'make setup-runtime'" \
      "or set CLOUD58_RUNTIME_BIN_DIR=/path/to/official/binaries" >&2
    exit 1
  fi
  echo "$target/bin"
  exit 0
fi

[[ -f "$target/.complete" ]] && exit 0

mkdir -p "$cache/upstream/runtime"
# One builder per key at a time; a second caller waits and then finds it complete.
exec 9>"$cache/upstream/runtime/.$key.lock"
flock 9
[[ -f "$target/.complete" ]] && exit 0

tmp=$(mktemp -d "$cache/upstream/runtime/.build-$key.XXXXXX")
log=$(mktemp "$cache/upstream/runtime/.download-$key.XXXXXX")
trap 'rm -rf "$tmp" "$log"' EXIT
chmod 755 "$tmp"
cd "$mod_dir"

version_of() { # MODULE: its pinned version
  "$go" list -m -f '{{.Version}}' "$1"
}
echo "runtime: building containerd, crictl and the CNI plugins into $target (once per pin; minutes)" >&2

if ! "$go" mod download 2>"$log"; then
  tail -n 20 "$log" >&2
  echo "runtime: 'go mod download' failed: the Go module proxy ($("$go" env GOPROXY)) could not serve" \
    "the pinned modules. Without it, set CLOUD58_RUNTIME_BIN_DIR=/path/to/official/binaries" \
    "(${programs[*]})." >&2
  exit 1
fi

containerd_version=$(version_of github.com/containerd/containerd/v2)
crictl_version=$(version_of sigs.k8s.io/cri-tools)
cni_version=$(version_of github.com/containernetworking/plugins)
# Each project stamps its version from git in its own Makefile; here it comes from the pin.
ldflags="-s -w"
ldflags+=" -X github.com/containerd/containerd/v2/version.Version=$containerd_version"
ldflags+=" -X sigs.k8s.io/cri-tools/pkg/version.Version=$crictl_version"
ldflags+=" -X github.com/containernetworking/plugins/pkg/utils/buildversion.BuildVersion=$cni_version"

# One `go build` for every program, so packages they share are compiled once. The tags are
# those of containerd's static release builds: no btrfs snapshotter (it needs cgo), no
# urfave/cli man-page generator.
mapfile -t packages < <("$go" list -f '{{.ImportPath}}' tool)
mkdir "$tmp/bin"
if ! nice -n 19 "$go" build -trimpath -tags "no_btrfs urfave_cli_no_docs" -ldflags "$ldflags" \
  -o "$tmp/bin/" "${packages[@]}"; then
  echo "runtime: 'go build' failed (above); nothing was installed" >&2
  exit 1
fi
missing=$(missing_in "$tmp/bin")
if [[ -n "$missing" ]]; then
  echo "runtime: the build did not produce:$missing" >&2
  exit 1
fi
# -X silently ignores a variable that moved: check each stamp took.
check() { # WANT ARGV...: the first line ARGV prints must be WANT
  local got
  got=$("${@:2}" 2>&1 | head -n 1 || true)
  if [[ "$got" != "$1" ]]; then
    echo "runtime: '${*:2}' reports '$got', not '$1'; check the -X ldflags" >&2
    exit 1
  fi
}
check "containerd github.com/containerd/containerd/v2 $containerd_version " "$tmp/bin/containerd" --version
check "crictl version $crictl_version" "$tmp/bin/crictl" --version
check "CNI bridge plugin $cni_version" "$tmp/bin/bridge" --version
touch "$tmp/.complete"
rm -rf "$target"  # a leftover without .complete (the rename below needs the name free)
mv -T "$tmp" "$target"
