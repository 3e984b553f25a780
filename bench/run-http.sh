#!/usr/bin/env bash
# Runs the HTTP benchmarks. See bench/README.md, sections "HTTP mode",
# "HTTP hedging" and "gRPC and the latency policy".
#
#   bench/run-http.sh                 hedging (bench/http): three weft sites,
#                                     one backend with a slow tail; p50/p99
#                                     and backend load, hedge off/always/auto
#   bench/run-http.sh --wrk           HTTP mode: wrk -c32 keep-alive, tiny
#                                     answers: direct, weft a -> b, and two
#                                     HAProxy (mode http, h2 over mutual TLS)
#   bench/run-http.sh --grpc          gRPC unary, 32 concurrent RPCs on one
#                                     connection: direct, weft, HAProxy pair
#   bench/run-http.sh --policy        --balance cost vs latency, the cheap
#                                     candidate 10x slower than the costly one
#   --profile DIR                     (with --wrk or --grpc) weft built with
#                                     -tags pprof; CPU and allocation profiles
#                                     of both sites in DIR
#   bench/run-http.sh -- -n 500 -c 8  anything after -- goes to the harness
#                                     (go run ./bench/http -h, ./bench/grpc -h)
set -euo pipefail

extra=()
harness=http
tags=()
while [ $# -gt 0 ]; do
	case "$1" in
	-h | --help) sed -n '2,21p' "$0"; exit 0 ;;
	--wrk)
		harness=grpc; extra+=(-mode wrk)
		command -v wrk >/dev/null || apt-get install -y -qq wrk
		command -v haproxy >/dev/null || apt-get install -y -qq haproxy
		;;
	--profile) shift; tags=(-tags pprof); extra+=(-profile "$1") ;;
	--grpc)
		harness=grpc; extra+=(-mode grpc)
		command -v haproxy >/dev/null || apt-get install -y -qq haproxy
		;;
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
go build "${tags[@]}" -o "$bin/weft" ./cmd/weft
go build -o "$bin/bench-$harness" "./bench/$harness"
"$bin/bench-$harness" -weft "$bin/weft" "${extra[@]}"
