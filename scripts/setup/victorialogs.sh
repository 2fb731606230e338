#!/usr/bin/env bash
# Build the pinned log store (`victoria-logs`, VictoriaLogs v1.52.2, Apache-2.0) from the Go
# module proxy, as pinned by upstream/victorialogs/go.mod + go.sum (issue 17 item 4). The
# controller runs it in tests/network/test_logs_store.py; the log_store role installs it.
#
#   scripts/setup/victorialogs.sh                 build if needed; silent when already built
#   scripts/setup/victorialogs.sh --print-bin-dir
#                                                 print the bin dir, or fail if not built
#
# The caching scheme of scripts/setup/gomodule.sh (that of upstream.sh and runtime.sh), with a key
# of its own:
#   ${CLOUD58_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/cloud58}/upstream/victorialogs/<key>/bin
# where <key> hashes upstream/victorialogs/go.mod, go.sum, this script, gomodule.sh and `go version`. A
# build happens in a temporary directory renamed into place, with a .complete stamp written
# before the rename, so a failed or interrupted build never looks complete.
#
# CLOUD58_VICTORIALOGS_BIN_DIR=/path/to/official/binaries skips the build and uses that
# directory (it must hold `victoria-logs`).
set -euo pipefail

repo=$(cd "$(dirname "$0")/../.." && pwd)
# shellcheck source=scripts/setup/gomodule.sh
source "$repo/scripts/setup/gomodule.sh"
programs=(victoria-logs)
gomodule_prepare victorialogs "$repo/upstream/victorialogs" CLOUD58_VICTORIALOGS_BIN_DIR "${CLOUD58_VICTORIALOGS_BIN_DIR:-}" "${programs[@]}" -- "$@"

vl_version=$("$go" list -m -f '{{.Version}}' github.com/VictoriaMetrics/VictoriaLogs)
# Upstream's Makefile stamps lib/buildinfo.Version as <app>-<date>-<tag>; the proxy gives the
# tag and the module's publication time, so the stamp is reproducible.
vl_date=$("$go" list -m -f '{{.Time.UTC.Format "20060102-150405"}}' github.com/VictoriaMetrics/VictoriaLogs)
stamp="victoria-logs-$vl_date-$vl_version"
ldflags="-s -w -X github.com/VictoriaMetrics/VictoriaMetrics/lib/buildinfo.Version=$stamp"

gomodule_build "$ldflags"
# Not `| head -n 1`: under pipefail, a SIGPIPE when head exits first would fail the build.
reported=$("$tmp/bin/victoria-logs" -version)
reported=${reported%%$'\n'*}
if [[ "$reported" != "$stamp" ]]; then
  echo "victorialogs: 'victoria-logs -version' reports '$reported', not '$stamp'" >&2
  exit 1
fi
gomodule_install
