#!/usr/bin/env bash
# Build the Kubernetes test binaries from the Go module proxy into a cache outside the repo.
#
#   scripts/build-testbins.sh            build whatever is missing, print the cache dir
#   scripts/build-testbins.sh --check    exit 1 (naming what is missing) instead of building
#
# Layout: $AKENEO_TESTBIN_CACHE (default ~/.cache/akeneo-connector)/
#   k8s/<K8S_VERSION>/{kube-apiserver,kube-controller-manager,kube-scheduler,kubectl}
#   etcd/<ETCD_VERSION>/etcd   kwok/<KWOK_VERSION>/kwok   helm/<HELM_VERSION>/helm
#   promtool/<PROMTOOL_VERSION>/promtool (github.com/prometheus/prometheus/cmd/promtool)
#   crds/{keda,cert-manager,prometheus-operator}/<version>/*.yaml: the real CRDs, copied from
#   the YAML their Go modules ship (the module proxy serves them; nothing else is fetched)
#
# k8s.io/kubernetes cannot be `go install`ed (it replaces its staging modules with local
# paths that module zips do not carry), so it is built from a throw-away wrapper module that
# requires it and replaces each staging module with its published v0.Y.Z (kubernetes#79384).
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
# shellcheck source=testbin-versions.env
source "$here/testbin-versions.env"
cache="${AKENEO_TESTBIN_CACHE:-$HOME/.cache/akeneo-connector}"
check_only=0
[[ "${1:-}" == "--check" ]] && check_only=1

export GOTOOLCHAIN=local CGO_ENABLED=0 GOFLAGS=-mod=mod

k8s_dir="$cache/k8s/$K8S_VERSION"
etcd_dir="$cache/etcd/$ETCD_VERSION"
kwok_dir="$cache/kwok/$KWOK_VERSION"
helm_dir="$cache/helm/$HELM_VERSION"
promtool_dir="$cache/promtool/$PROMTOOL_VERSION"
# name|module@version|directory in the module zip|files
crd_sets=(
  "keda|github.com/kedacore/keda/v2@$KEDA_VERSION|config/crd/bases|keda.sh_scaledobjects.yaml keda.sh_triggerauthentications.yaml keda.sh_clustertriggerauthentications.yaml keda.sh_scaledjobs.yaml"
  "cert-manager|github.com/cert-manager/cert-manager@$CERT_MANAGER_VERSION|deploy/crds|cert-manager.io_certificates.yaml cert-manager.io_issuers.yaml cert-manager.io_clusterissuers.yaml cert-manager.io_certificaterequests.yaml"
  "prometheus-operator|github.com/prometheus-operator/prometheus-operator@$PROMETHEUS_OPERATOR_VERSION|example/prometheus-operator-crd|monitoring.coreos.com_prometheusrules.yaml monitoring.coreos.com_podmonitors.yaml monitoring.coreos.com_servicemonitors.yaml"
)
crd_dir() { local v="${2#*@}"; echo "$cache/crds/$1/$v"; }
k8s_bins=(kube-apiserver kube-controller-manager kube-scheduler kubectl)

missing=()
for b in "${k8s_bins[@]}"; do [[ -x "$k8s_dir/$b" ]] || missing+=("$b"); done
[[ -x "$etcd_dir/etcd" ]] || missing+=(etcd)
[[ -x "$kwok_dir/kwok" ]] || missing+=(kwok)
[[ -x "$helm_dir/helm" ]] || missing+=(helm)
[[ -x "$promtool_dir/promtool" ]] || missing+=(promtool)
for set in "${crd_sets[@]}"; do
  IFS="|" read -r name mod _sub files <<< "$set"
  for f in $files; do
    [[ -f "$(crd_dir "$name" "$mod")/$f" ]] || { missing+=("crds-$name"); break; }
  done
done

if (( ${#missing[@]} == 0 )); then
  echo "$cache"; exit 0
fi
if (( check_only )); then
  echo "missing test binaries: ${missing[*]} (run: make testbins)" >&2; exit 1
fi
command -v go >/dev/null || { echo "go is required to build the test binaries" >&2; exit 1; }

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
needs() { local m; for m in "${missing[@]}"; do [[ "$m" == "$1" ]] && return 0; done; return 1; }
log() { echo "[build-testbins] $(date +%T) $*" >&2; }

build_k8s() {
  local minor="${K8S_VERSION#v1.}"; minor="${minor%%.*}"
  local staging=(api apiextensions-apiserver apimachinery apiserver cli-runtime client-go
    cloud-provider cluster-bootstrap code-generator component-base component-helpers
    controller-manager cri-api cri-client csi-translation-lib dynamic-resource-allocation
    endpointslice externaljwt kms kube-aggregator kube-controller-manager kube-proxy
    kube-scheduler kubectl kubelet metrics mount-utils pod-security-admission sample-apiserver)
  local d="$work/k8s"; mkdir -p "$d"
  {
    echo "module akeneo.local/k8s-testbins"
    echo
    echo "go 1.24.0"
    echo
    echo "godebug default=go1.24"
    echo
    echo "require k8s.io/kubernetes $K8S_VERSION"
    echo
    echo "replace ("
    for s in "${staging[@]}"; do echo "	k8s.io/$s => k8s.io/$s v0.$minor.${K8S_VERSION##*.}"; done
    echo ")"
  } > "$d/go.mod"
  local pkgs=() b
  for b in "${k8s_bins[@]}"; do needs "$b" && pkgs+=("k8s.io/kubernetes/cmd/$b"); done
  local v="$K8S_VERSION" ld=""
  for p in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
    ld+=" -X $p.gitVersion=$v -X $p.gitMajor=1 -X $p.gitMinor=$minor -X $p.gitTreeState=clean"
  done
  mkdir -p "$k8s_dir"
  log "building ${pkgs[*]} $v"
  (cd "$d" && go build -trimpath -ldflags "-s -w$ld" -o "$d/out/" "${pkgs[@]}")
  for b in "${k8s_bins[@]}"; do [[ -f "$d/out/$b" ]] && mv "$d/out/$b" "$k8s_dir/$b"; done
}

build_etcd() {
  local d="$work/etcd"; mkdir -p "$d" "$etcd_dir"
  printf 'module akeneo.local/etcd-testbin\n\ngo 1.24.0\n\nrequire go.etcd.io/etcd/server/v3 %s\n' \
    "$ETCD_VERSION" > "$d/go.mod"
  log "building etcd $ETCD_VERSION"
  (cd "$d" && go build -trimpath -ldflags "-s -w" -o "$d/etcd" go.etcd.io/etcd/server/v3)
  mv "$d/etcd" "$etcd_dir/etcd"
}

gobin_install() {  # name module version dir
  local d="$work/$1"; mkdir -p "$d" "$4"
  log "building $1 $3"
  (cd "$d" && GOBIN="$d" GOFLAGS= go install -trimpath -ldflags "-s -w" "$2@$3")
  mv "$d/$1" "$4/$1"
}

fetch_crds() {  # name: copy the CRD YAML out of the module zip (go mod download)
  local set name mod sub files dir src f
  for set in "${crd_sets[@]}"; do
    IFS="|" read -r name mod sub files <<< "$set"
    [[ "crds-$name" == "$1" ]] || continue
    log "fetching $name CRDs from $mod"
    src="$(cd "$work" && GOFLAGS= go mod download -json "$mod" | sed -n 's/^\t"Dir": "\(.*\)",$/\1/p')"
    [[ -d "$src/$sub" ]] || { echo "$mod has no $sub" >&2; exit 1; }
    dir="$(crd_dir "$name" "$mod")"; mkdir -p "$dir"
    for f in $files; do install -m 0644 "$src/$sub/$f" "$dir/$f"; done
  done
}

start=$(date +%s)
if needs kube-apiserver || needs kube-controller-manager || needs kube-scheduler || needs kubectl; then build_k8s; fi
needs etcd && build_etcd
needs kwok && gobin_install kwok sigs.k8s.io/kwok/cmd/kwok "$KWOK_VERSION" "$kwok_dir"
needs helm && gobin_install helm helm.sh/helm/v3/cmd/helm "$HELM_VERSION" "$helm_dir"
# promtool `go install`s cleanly (no replace directives); about 4 min on 2 cores
needs promtool && gobin_install promtool github.com/prometheus/prometheus/cmd/promtool \
  "$PROMTOOL_VERSION" "$promtool_dir"
for m in "${missing[@]}"; do [[ "$m" == crds-* ]] && fetch_crds "$m"; done
log "built ${missing[*]} in $(( $(date +%s) - start ))s"
echo "$cache"
