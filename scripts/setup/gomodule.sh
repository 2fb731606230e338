# shellcheck shell=bash
# Sourced by the build scripts of single upstream programs (consul.sh, victorialogs.sh): the
# caching scheme of scripts/setup/upstream.sh and runtime.sh, written once.
#
#   gomodule_prepare NAME MODULE_DIR BIN_DIR_VARIABLE "$BIN_DIR_VARIABLE" PROGRAM... -- "$@"
#       reads the script's arguments ("" or --print-bin-dir); honours the directory of
#       official binaries named by BIN_DIR_VARIABLE (no build); finds go; computes the key (the module's go.mod and
#       go.sum, the calling script, this file, `go version`) and the target
#         ${CLOUD58_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/cloud58}/upstream/NAME/<key>/bin;
#       prints the bin dir (--print-bin-dir) or exits 0 when it is built; otherwise takes the
#       key's lock, downloads the modules and leaves the caller in MODULE_DIR with $go, $tmp
#       (the temporary build directory) and $target set.
#   gomodule_build LDFLAGS   builds every `tool` package of the module into $tmp/bin and
#       checks that each PROGRAM came out.
#   gomodule_install         writes the .complete stamp and renames $tmp into place, so a
#       failed or interrupted build never looks complete.

gomodule_missing_in() { # DIR: the programs that are not executable files in DIR
  local p
  for p in "${gomodule_programs[@]}"; do
    [[ -f "$1/$p" && -x "$1/$p" ]] || printf ' %s' "$p"
  done
}

gomodule_prepare() {
  gomodule_name=$1 gomodule_dir=$2 gomodule_bin_var=$3
  local official=$4
  shift 4
  gomodule_programs=()
  while [[ $1 != -- ]]; do gomodule_programs+=("$1"); shift; done
  shift
  local mode=build missing cache key go_version
  case "${1:-}" in
    "") ;;
    --print-bin-dir) mode=print ;;
    *) echo "usage: $0 [--print-bin-dir]" >&2; exit 2 ;;
  esac
  if [[ -n "$official" ]]; then
    missing=$(gomodule_missing_in "$official")
    if [[ -n "$missing" ]]; then
      echo "$gomodule_name: $gomodule_bin_var=$official lacks these executables:$missing" >&2
      exit 1
    fi
    [[ $mode == print ]] && (cd "$official" && pwd)
    exit 0
  fi
  export GOTOOLCHAIN=local GOFLAGS="-mod=readonly -buildvcs=false" GOWORK=off CGO_ENABLED=0
  go=$(command -v go || true)
  [[ -z "$go" && -x /usr/local/go/bin/go ]] && go=/usr/local/go/bin/go
  if [[ -z "$go" ]]; then
    echo "$gomodule_name: no 'go' found (PATH or /usr/local/go/bin); install Go >=" \
      "$(sed -n 's/^go //p' "$gomodule_dir/go.mod"), or set $gomodule_bin_var=/path/to/official/binaries" >&2
    exit 1
  fi
  go_version=$("$go" version)
  key=$( { cat "$gomodule_dir/go.mod" "$gomodule_dir/go.sum" "$0" "${BASH_SOURCE[0]}"; echo "$go_version"; } \
    | sha256sum | cut -c1-16)
  cache=${CLOUD58_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/cloud58}/upstream/$gomodule_name
  target=$cache/$key
  if [[ $mode == print ]]; then
    if [[ ! -f "$target/.complete" ]]; then
      echo "$gomodule_name: the pinned ${gomodule_programs[*]} is not built ($target); run" \
        "'make setup-$gomodule_name' or set $gomodule_bin_var=/path/to/official/binaries" >&2
      exit 1
    fi
    echo "$target/bin"
    exit 0
  fi
  [[ -f "$target/.complete" ]] && exit 0
  mkdir -p "$cache"
  # One builder per key at a time; a second caller waits and then finds it complete.
  exec 9>"$cache/.$key.lock"
  flock 9
  [[ -f "$target/.complete" ]] && exit 0
  tmp=$(mktemp -d "$cache/.build-$key.XXXXXX")
  gomodule_log=$(mktemp "$cache/.download-$key.XXXXXX")
  trap 'rm -rf "$tmp" "$gomodule_log"' EXIT
  chmod 755 "$tmp"
  cd "$gomodule_dir"
  echo "$gomodule_name: building ${gomodule_programs[*]} into $target (once per pin; minutes)" >&2
  if ! "$go" mod download 2>"$gomodule_log"; then
    tail -n 20 "$gomodule_log" >&2
    echo "$gomodule_name: 'go mod download' failed: the Go module proxy ($("$go" env GOPROXY)) could not" \
      "serve the pinned modules. Without it, set $gomodule_bin_var=/path/to/official/binaries" \
      "(${gomodule_programs[*]})." >&2
    exit 1
  fi
}

gomodule_build() { # LDFLAGS
  local packages missing
  mapfile -t packages < <("$go" list -f '{{.ImportPath}}' tool)
  mkdir "$tmp/bin"
  if ! nice -n 19 "$go" build -trimpath -ldflags "$1" -o "$tmp/bin/" "${packages[@]}"; then
    echo "$gomodule_name: 'go build' failed (above); nothing was installed" >&2
    exit 1
  fi
  missing=$(gomodule_missing_in "$tmp/bin")
  if [[ -n "$missing" ]]; then
    echo "$gomodule_name: the build did not produce:$missing" >&2
    exit 1
  fi
}

gomodule_install() {
  touch "$tmp/.complete"
  rm -rf "$target"  # a leftover without .complete (the rename below needs the name free)
  mv -T "$tmp" "$target"
}
