#!/usr/bin/env bash
# Runs the chaos soak (bench/chaos): five weft sites in a ring with a chord
# carry persisted events, HTTP requests and short TCP connections while one
# transit site at a time is SIGKILLed and restarted; then it drains and
# prints what was lost, duplicated and failed, the summary line last.
# See bench/README.md, section "Chaos".
#
#   bench/run-chaos.sh                  5 minutes of load with kills
#   bench/run-chaos.sh --minutes 1      1 minute
#   bench/run-chaos.sh --keep           keep the sites' data and logs
#   bench/run-chaos.sh -- -seed 42 -site-log-level debug
#                                       anything after -- goes to the
#                                       harness (go run ./bench/chaos -h)
#
# It exits 1 when a goal was missed: an event lost, over 0.1% of HTTP
# requests failed, or a new TCP connection failed after the table converged.
set -euo pipefail

extra=()
while [ $# -gt 0 ]; do
	case "$1" in
	-h | --help) sed -n '2,16p' "$0"; exit 0 ;;
	--minutes) [ $# -ge 2 ] || { echo "--minutes needs a value" >&2; exit 2; }; extra+=(-minutes "$2"); shift ;;
	--minutes=*) extra+=(-minutes "${1#--minutes=}") ;;
	--keep) extra+=(-keep) ;;
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
go build -o "$bin/bench-chaos" ./bench/chaos
"$bin/bench-chaos" -weft "$bin/weft" "${extra[@]}"
