#!/usr/bin/env bash
# Builds the Jaeger v2 binary the tracing tests start (test/envtest/jaeger.go)
# from the Go module proxy through tools/jaeger, a module of its own so that
# Jaeger's dependencies stay out of weft's. Idempotent: the binary is cached
# under ${XDG_CACHE_HOME:-$HOME/.cache}/weft, keyed by the version; envtest
# looks there too, or wherever WEFT_JAEGER points.
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
# Keep in step with tools/jaeger/go.mod and envtest.JaegerVersion.
version=v1.76.0
cache_dir=${XDG_CACHE_HOME:-$HOME/.cache}/weft
bin=$cache_dir/jaeger-$version

log() { printf '[install-jaeger] %s\n' "$*" >&2; }

if [[ -x $bin ]]; then
	log "jaeger $version cached at $bin"
	exit 0
fi
mkdir -p "$cache_dir"
log "building jaeger $version into $bin"
start=$(date +%s)
# Build to a temporary name and rename, so that an interrupted build never
# leaves a truncated binary that later runs would take for a cached one.
tmp=$(mktemp "$cache_dir/.jaeger-$version.XXXXXX")
trap 'rm -f "$tmp"' EXIT
(cd "$root/tools/jaeger" && go build -trimpath -buildvcs=false -o "$tmp" github.com/jaegertracing/jaeger/cmd/jaeger)
chmod 0755 "$tmp"
mv -f "$tmp" "$bin"
trap - EXIT
log "built jaeger in $(($(date +%s) - start))s"
