#!/usr/bin/env bash
# Build the pinned Consul server and agent (`consul`, v1.14.11, MPL-2.0) from the Go module
# proxy, as pinned by upstream/consul/go.mod + go.sum (issue 15). The controller runs it in
# tests/network/test_consul_cluster.py; the consul role will install it on the lab's nodes.
#
#   scripts/setup/consul.sh                 build if needed; silent when already built
#   scripts/setup/consul.sh --print-bin-dir
#                                           print the bin dir, or fail if not built
#
# The caching scheme of scripts/setup/gomodule.sh (that of upstream.sh and runtime.sh), with a key of its own
# (so a change here or to upstream/consul never rebuilds Kubernetes, and the reverse):
#   ${CLOUD58_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/cloud58}/upstream/consul/<key>/bin
# where <key> hashes upstream/consul/go.mod, go.sum, this script, gomodule.sh and `go version`. A build
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
# shellcheck source=scripts/setup/gomodule.sh
source "$repo/scripts/setup/gomodule.sh"
programs=(consul)
gomodule_prepare consul "$repo/upstream/consul" CLOUD58_CONSUL_BIN_DIR "${CLOUD58_CONSUL_BIN_DIR:-}" "${programs[@]}" -- "$@"

consul_version=$("$go" list -m -f '{{.Version}}' github.com/hashicorp/consul)
# Consul's Makefile stamps GitCommit and BuildDate from git; the version itself comes from
# the module's embedded version/VERSION file. The proxy serves no commit for the tag, so
# GitCommit stays empty; the build date is the module's publication time (reproducible).
consul_time=$("$go" list -m -f '{{.Time.UTC.Format "2006-01-02T15:04:05Z"}}' github.com/hashicorp/consul)
ldflags="-s -w -X github.com/hashicorp/consul/version.BuildDate=$consul_time"

gomodule_build "$ldflags"
# Not `| head -n 1`: under pipefail, consul's SIGPIPE when head exits first fails the build.
reported=$("$tmp/bin/consul" version)
reported=${reported%%$'\n'*}
if [[ "$reported" != "Consul $consul_version" ]]; then
  echo "consul: 'consul version' reports '$reported', not 'Consul $consul_version'" >&2
  exit 1
fi
gomodule_install
