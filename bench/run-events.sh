#!/usr/bin/env bash
# Runs the events benchmark (bench/events): two weft sites joined by a link
# against two nats-server processes joined by a gateway, cross-site
# publish/subscribe of 256-byte events, volatile and persisted (JetStream).
# See bench/README.md, section "Events".
#
#   bench/run-events.sh              full run, about 1.5 minutes
#   bench/run-events.sh --quick      smoke run, 1 s per measurement
#   bench/run-events.sh -- -workers 8 -batch 50   anything after -- goes to
#                                    the harness (go run ./bench/events -h)
#
# nats-server is installed by .ci/install-nats-server.sh (`go install` of the
# pinned version, cached under ~/.cache/weft), the one CI's quick test uses.
set -euo pipefail

extra=()
while [ $# -gt 0 ]; do
	case "$1" in
	-h | --help) sed -n '2,13p' "$0"; exit 0 ;;
	--quick) extra+=(-quick) ;;
	--) shift; extra+=("$@"); break ;;
	*) echo "unknown argument $1 (try --help)" >&2; exit 2 ;;
	esac
	shift
done

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
nats="$(bash .ci/install-nats-server.sh)/nats-server"
bin="$(mktemp -d)"
trap 'rm -rf "$bin"' EXIT
go build -o "$bin/weft" ./cmd/weft
go build -o "$bin/bench-events" ./bench/events
"$bin/bench-events" -weft "$bin/weft" -nats-server "$nats" "${extra[@]}"
