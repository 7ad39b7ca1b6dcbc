#!/usr/bin/env bash
# Builds the binaries of the test cluster from the pinned upstream Go modules in tests/cluster/go/.
#
# Each folder there is one small Go module whose go.mod pins one upstream project and names the
# commands to build (`tool` lines); go.sum holds the checksums. The binaries go to a cache outside
# the checkout, one folder per module keyed by its go.mod + go.sum and the Go version, so a fresh
# clone on the same machine reuses them and a changed pin rebuilds only that module.
#
#   tests/cluster/build.sh BINDIR [MODULE…]   build what is missing (of MODULE… or all), then link
#                                            the binaries into BINDIR
set -euo pipefail

here="$(cd "$(dirname "$0")" && pwd)"
bindir="${1:?usage: build.sh BINDIR [MODULE…]}"
shift
modules=("$@")
cache="${CITY_CLUSTER_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/city-platform/cluster}"

export PATH="/usr/local/go/bin:$PATH"
if ! command -v go >/dev/null; then
  echo "make cluster: no Go toolchain (expected /usr/local/go/bin/go); the cluster is built from Go modules" >&2
  exit 1
fi
gover="$(go env GOVERSION)"
# Module sources come through the Go module proxy; -mod=readonly keeps go.sum as committed.
export GOFLAGS="-mod=readonly -trimpath -buildvcs=false"
export CGO_ENABLED=0

mkdir -p "$bindir" "$cache"
[ ${#modules[@]} -gt 0 ] || modules=($(cd "$here/go" && ls -d */ | tr -d /))
for name in "${modules[@]}"; do
  mod="$here/go/$name"
  [ -f "$mod/go.mod" ] || { echo "make cluster: no module $name in $here/go" >&2; exit 1; }
  # Versions stamped into the binaries the way upstream's release builds do: clients and charts
  # read them (helm refuses a chart's kubeVersion against "v0.0.0-master").
  pin() {
    awk -v m="$1" '$1 == m && $2 ~ /^v/ {print $2; exit} $1 == "require" && $2 == m {print $3; exit}' "$mod/go.mod"
  }
  ldflags="-s -w"
  case "$name" in
    kubernetes)
      v="$(pin k8s.io/kubernetes)"; minor="$(echo "$v" | cut -d. -f2)"
      [ -n "$v" ] || { echo "make cluster: no k8s.io/kubernetes version in $mod/go.mod" >&2; exit 1; }
      for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
        ldflags+=" -X $pkg.gitVersion=$v -X $pkg.gitMajor=1 -X $pkg.gitMinor=$minor"
        ldflags+=" -X $pkg.gitTreeState=clean -X $pkg.buildDate=1970-01-01T00:00:00Z"
      done ;;
    helm) ldflags+=" -X helm.sh/helm/v4/internal/version.version=$(pin helm.sh/helm/v4)" ;;
  esac
  key="$( (cat "$mod/go.mod" "$mod/go.sum"; echo "$ldflags") | sha256sum | cut -c1-12)"
  out="$cache/$name-$key-$gover"
  if [ ! -f "$out/.complete" ]; then
    tools=$(awk '/^tool \(/{f=1;next} f&&/^\)/{f=0} f{print $1} /^tool [^(]/{print $2}' "$mod/go.mod")
    echo "make cluster: building $name ($(echo $tools | wc -w) commands) into $out"
    start=$SECONDS
    rm -rf "$out.tmp" && mkdir -p "$out.tmp" && : >"$out.tmp.log"
    # Progress: every 30 s, how long it has been and how many packages were compiled (go -v).
    ( while sleep 30; do
        echo "make cluster:   … $name: $((SECONDS - start)) s, $(grep -vc '^go: ' "$out.tmp.log" 2>/dev/null) packages"
      done ) &
    ticker=$!
    # `|| true`: the ticker is normally gone by then, and a failing EXIT trap would turn a
    # successful build into exit status 1 (make stops on it).
    trap 'kill $ticker 2>/dev/null || true' EXIT
    # A module without `tool` lines only pins manifests (cert-manager's, CloudNativePG's CRDs, …): nothing to build.
    if [ -n "$tools" ] && ! (cd "$mod" && go build -v -ldflags="$ldflags" -o "$out.tmp/" $tools) >"$out.tmp.log" 2>&1; then
      kill $ticker 2>/dev/null
      echo "make cluster: building $name failed; the log is $out.tmp.log" >&2
      tail -n 20 "$out.tmp.log" >&2
      exit 1
    fi
    kill $ticker 2>/dev/null
    # Upstream names that say too little here, and the manifests (CRDs) of the same pinned module.
    case "$name" in
      etcd) mv "$out.tmp/server" "$out.tmp/etcd" ;;
      sealed-secrets)
        mv "$out.tmp/controller" "$out.tmp/sealed-secrets-controller"
        dir=$(cd "$mod" && go list -m -f '{{.Dir}}' github.com/bitnami-labs/sealed-secrets)
        mkdir -p "$out.tmp/manifests" && cp "$dir/helm/sealed-secrets/crds/"*.yaml "$out.tmp/manifests/" ;;
      cert-manager)
        # deploy/crds/ holds the CRDs as plain YAML (the Helm chart's copies are templated);
        # the download is checked against the module's go.sum.
        dir=$(cd "$mod" && go mod download -json github.com/cert-manager/cert-manager \
          | awk -F'"' '$2 == "Dir" {print $4}')
        [ -n "$dir" ] || { echo "make cluster: cert-manager module download failed" >&2; exit 1; }
        mkdir -p "$out.tmp/manifests" && cp "$dir/deploy/crds/"*.yaml "$out.tmp/manifests/"
        if grep -l '{{' "$out.tmp/manifests/"*.yaml; then
          echo "make cluster: cert-manager's deploy/crds are templated in this version" >&2; exit 1
        fi ;;
      cloudnative-pg|plugin-barman-cloud)
        # config/crd/bases/ holds the CRDs as plain YAML (the plugin's: the ObjectStore); only
        # the CRDs, no operator or plugin runs.
        dir=$(cd "$mod" && go mod download -json "github.com/cloudnative-pg/$name" \
          | awk -F'"' '$2 == "Dir" {print $4}')
        [ -n "$dir" ] || { echo "make cluster: $name module download failed" >&2; exit 1; }
        mkdir -p "$out.tmp/manifests" && cp "$dir/config/crd/bases/"*.yaml "$out.tmp/manifests/"
        if grep -l '{{' "$out.tmp/manifests/"*.yaml; then
          echo "make cluster: $name's config/crd/bases are templated in this version" >&2; exit 1
        fi ;;
    esac
    rm -rf "$out" && mv "$out.tmp" "$out" && mv "$out.tmp.log" "$out/build.log"
    touch "$out/.complete"
    echo "make cluster: built $name in $((SECONDS - start)) s"
  fi
  for f in "$out"/*; do
    if [ -f "$f" ] && [ -x "$f" ]; then ln -sfn "$f" "$bindir/$(basename "$f")"; fi
  done
  if [ -d "$out/manifests" ]; then
    mkdir -p "$bindir/../manifests" && ln -sfn "$out/manifests" "$bindir/../manifests/$name"
  fi
done
