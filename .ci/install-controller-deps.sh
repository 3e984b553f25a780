#!/usr/bin/env bash
# Installs the real components the controller's tests start (test/envtest):
# etcd, PostgreSQL and BIND from Debian, and kube-apiserver built from the Go
# module proxy through tools/kube-apiserver. Idempotent: a second run installs
# nothing and reuses the cached binary, so CI may call it on every run.
#
# The binary is cached under ${XDG_CACHE_HOME:-$HOME/.cache}/weft, keyed by the
# Kubernetes version, because building it takes about four minutes here.
# envtest looks there too, or wherever WEFT_KUBE_APISERVER points.
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
# Keep in step with tools/kube-apiserver/go.mod and the -X flags below.
k8s_version=v1.33.4
cache_dir=${XDG_CACHE_HOME:-$HOME/.cache}/weft
apiserver=$cache_dir/kube-apiserver-$k8s_version

log() { printf '[install-controller-deps] %s\n' "$*" >&2; }

source "$(dirname "$0")/apt-install.sh"
apt_install etcd-server postgresql bind9 bind9-dnsutils

if [[ -x $apiserver ]]; then
	log "kube-apiserver $k8s_version cached at $apiserver"
else
	mkdir -p "$cache_dir"
	log "building kube-apiserver $k8s_version (about 4 minutes) into $apiserver"
	start=$(date +%s)
	# Build to a temporary name and rename, so that an interrupted build never
	# leaves a truncated binary that later runs would take for a cached one.
	tmp=$(mktemp "$cache_dir/.kube-apiserver-$k8s_version.XXXXXX")
	trap 'rm -f "$tmp"' EXIT
	(cd "$root/tools/kube-apiserver" && go build -trimpath -buildvcs=false -o "$tmp" \
		-ldflags="-s -w -X k8s.io/component-base/version.gitVersion=$k8s_version -X k8s.io/component-base/version.gitMajor=1 -X k8s.io/component-base/version.gitMinor=33" \
		k8s.io/kubernetes/cmd/kube-apiserver)
	chmod 0755 "$tmp"
	mv -f "$tmp" "$apiserver"
	trap - EXIT
	log "built kube-apiserver in $(($(date +%s) - start))s"
fi
"$apiserver" --version >&2
