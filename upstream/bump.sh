#!/usr/bin/env bash
# Re-pin upstream/go.mod to another Kubernetes release, in one go:
#
#   upstream/bump.sh KUBERNETES_VERSION [KWOK_VERSION] [ETCD_VERSION]
#   upstream/bump.sh v1.36.3 v0.8.0
#
# * k8s.io/kubernetes at KUBERNETES_VERSION (v1.Y.Z);
# * every staging module it requires at v0.0.0 (and replaces with ./staging/... in its
#   own go.mod, which does not reach us) replaced by the published v0.Y.Z;
# * etcd server and etcdctl at ETCD_VERSION, by default the etcd client version that
#   Kubernetes release itself requires;
# * kwok at KWOK_VERSION (default: unchanged). Pick a release whose go.mod requires
#   k8s.io/* at v0.Y.* or older, or the build may not compile.
# Then `go mod tidy`. Build and test afterwards: make setup-upstream integration.
set -euo pipefail
cd "$(dirname "$0")"
export GOTOOLCHAIN=local GOFLAGS=-mod=mod GOWORK=off
kube=${1:?usage: $0 KUBERNETES_VERSION [KWOK_VERSION] [ETCD_VERSION]}
if [[ ! $kube =~ ^v1\.([0-9]+)\.([0-9]+)$ ]]; then
  echo "bump: '$kube' is not a Kubernetes release version like v1.36.3" >&2
  exit 2
fi
staging_version=v0.${BASH_REMATCH[1]}.${BASH_REMATCH[2]}
kube_mod=$(go mod download -json "k8s.io/kubernetes@$kube" | sed -n 's/^\s*"GoMod": "\(.*\)",$/\1/p')
[[ -f "$kube_mod" ]] || { echo "bump: could not fetch k8s.io/kubernetes@$kube's go.mod" >&2; exit 1; }
etcd=${3:-$(awk '$1 == "go.etcd.io/etcd/client/v3" {print $2; exit}' "$kube_mod")}
kwok=${2:-$(go list -m -f '{{.Version}}' sigs.k8s.io/kwok)}

# Staging modules: replaced with ./staging in Kubernetes' go.mod and required by it.
mapfile -t staging < <(awk '
  $2 == "=>" && $3 ~ /^\.\/staging\// {replaced[$1] = 1}
  $2 == "v0.0.0" {required[$1] = 1}
  END {for (m in replaced) if (m in required) print m}' "$kube_mod" | sort)

# The replace block is generated: it is the end of go.mod, from its comment on.
marker='// k8s.io/kubernetes requires its staging modules'
if ! grep -qF "$marker" go.mod; then
  echo "bump: go.mod lacks the line '$marker...' that starts the generated replace block" >&2
  exit 1
fi
sed -i "\|^$marker|,\$d" go.mod
{
  echo "$marker at v0.0.0 and replaces them with"
  echo "// ./staging/... in its own go.mod, which does not apply to a module that imports it."
  echo "// Map each one to the published ${staging_version%.*}.x that matches kubernetes ${kube%.*}.x."
  echo "replace ("
  for m in "${staging[@]}"; do
    printf '\t%s => %s %s\n' "$m" "$m" "$staging_version"
  done
  echo ")"
} >> go.mod
edits=(
  "-require=k8s.io/kubernetes@$kube"
  "-require=go.etcd.io/etcd/server/v3@$etcd"
  "-require=go.etcd.io/etcd/etcdctl/v3@$etcd"
  "-require=sigs.k8s.io/kwok@$kwok"
)
go mod edit "${edits[@]}"
go mod tidy
echo "bump: kubernetes $kube (staging $staging_version, ${#staging[@]} modules), etcd $etcd, kwok $kwok"
