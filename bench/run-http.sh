#!/usr/bin/env bash
# Runs the HTTP hedging benchmark (bench/http): three weft sites, a Go load
# generator through a listener at the ingress, two backends, one with a slow
# tail; p50/p99 and backend load with hedging off, always and auto.
# See bench/README.md, sections "HTTP hedging" and "gRPC and the latency
# policy".
#
#   bench/run-http.sh                 full run (3000 requests per mode)
#   bench/run-http.sh --grpc          gRPC unary, 32 concurrent RPCs on one
#                                     connection: direct, weft, HAProxy
#   bench/run-http.sh --policy        --balance cost vs latency, the cheap
#                                     candidate 10x slower than the costly one
#   bench/run-http.sh -- -n 500 -c 8  anything after -- goes to the harness
#                                     (go run ./bench/http -h, ./bench/grpc -h)
set -euo pipefail

extra=()
harness=http
while [ $# -gt 0 ]; do
	case "$1" in
	-h | --help) sed -n '2,15p' "$0"; exit 0 ;;
	--grpc) harness=grpc; extra+=(-mode grpc) ;;
	--policy) harness=grpc; extra+=(-mode policy) ;;
	--) shift; extra+=("$@"); break ;;
	*) echo "unknown argument $1 (try --help)" >&2; exit 2 ;;
	esac
	shift
done

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
bin="$(mktemp -d)"
trap 'rm -rf "$bin"' EXIT
go build -o "$bin/weft" ./cmd/weft
go build -o "$bin/bench-$harness" "./bench/$harness"
"$bin/bench-$harness" -weft "$bin/weft" "${extra[@]}"
