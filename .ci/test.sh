#!/usr/bin/env bash
# The test command of README.md: installs what the tests need on a fresh Debian
# machine, then runs every test with the race detector. Real components only:
# haproxy, wrk and nats-server (benchmark harnesses), etcd, kube-apiserver,
# PostgreSQL and BIND (controller) are installed here and started by the tests
# themselves.
set -euo pipefail
cd "$(dirname "$0")/.."

log() { printf '[test] %s\n' "$*" >&2; }

if ! command -v go >/dev/null; then
	log "Go is missing: install Go 1.26 (https://go.dev/dl) and run again"
	exit 1
fi

need=()
command -v haproxy >/dev/null || need+=(haproxy)
command -v wrk >/dev/null || need+=(wrk)
if ((${#need[@]})); then
	log "installing ${need[*]}"
	apt-get update -qq
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi
if [[ -x .ci/install-controller-deps.sh ]]; then
	bash .ci/install-controller-deps.sh
fi
bash .ci/install-bridge-deps.sh
bash .ci/install-observability-deps.sh
bash .ci/install-browser-deps.sh
bash .ci/install-vl3-deps.sh
bash .ci/install-jaeger.sh
nats_dir=$(bash .ci/install-nats-server.sh)
export PATH=$nats_dir:$PATH

log "go mod download"
go mod download
log "go vet ./..."
go vet ./...
log "go test -race ./..."
go test -race -timeout 40m ./... 2>&1
