#!/usr/bin/env bash
# Installs nats-server, which bench/events compares weft with (its quick
# test skips without one), with `go install` from the Go module proxy, and
# prints the directory that holds it for the caller to put on PATH.
# Idempotent: the binary is cached under ${XDG_CACHE_HOME:-$HOME/.cache}/weft,
# keyed by version, so CI may call it on every run.
set -euo pipefail

# The version bench/README.md's figures were taken with; bench/run-events.sh
# installs through this script too.
nats_version=v2.15.2
cache_dir=${XDG_CACHE_HOME:-$HOME/.cache}/weft
bin_dir=$cache_dir/nats-server-$nats_version

log() { printf '[install-nats-server] %s\n' "$*" >&2; }

if [[ -x $bin_dir/nats-server ]]; then
	log "nats-server $nats_version cached in $bin_dir"
else
	mkdir -p "$cache_dir"
	log "installing nats-server $nats_version into $bin_dir"
	# Install into a temporary directory and rename it, so that an
	# interrupted install never leaves a truncated binary that later runs
	# would take for a cached one.
	tmp=$(mktemp -d "$cache_dir/.nats-server-$nats_version.XXXXXX")
	trap 'rm -rf "$tmp"' EXIT
	chmod 0755 "$tmp"
	GOBIN=$tmp go install "github.com/nats-io/nats-server/v2@$nats_version"
	mv -T "$tmp" "$bin_dir"
	trap - EXIT
fi
"$bin_dir/nats-server" --version >&2
echo "$bin_dir"
