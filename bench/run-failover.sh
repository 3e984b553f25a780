#!/usr/bin/env bash
# Runs the failover benchmark (bench/failover) on this working tree and on a
# base revision, one after the other in one run: three sites, the serving
# ones frozen in turn with SIGSTOP, two CPU hogs throughout. See
# bench/README.md, section "Failover from silence".
#
#   bench/run-failover.sh                 this working tree, then main
#   bench/run-failover.sh --base REV      ... then REV
#   bench/run-failover.sh --no-base       this working tree only
#   bench/run-failover.sh -- -trials 10 -soak 2m   harness flags after --
set -euo pipefail

base=main extra=()
while [ $# -gt 0 ]; do
	case "$1" in
	-h | --help) sed -n '2,10p' "$0"; exit 0 ;;
	--base) base="$2"; shift ;;
	--no-base) base= ;;
	--) shift; extra+=("$@"); break ;;
	*) echo "unknown argument $1 (try --help)" >&2; exit 2 ;;
	esac
	shift
done

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
go build -o "$tmp/weft" ./cmd/weft
go build -o "$tmp/bench-failover" ./bench/failover
if [ -n "$base" ]; then
	mkdir "$tmp/base"
	git archive "$base" | tar -x -C "$tmp/base"
	(cd "$tmp/base" && go build -o "$tmp/weft-base" ./cmd/weft)
fi
echo "== head (working tree)"
"$tmp/bench-failover" -weft "$tmp/weft" "${extra[@]}"
if [ -n "$base" ]; then
	echo "== base ($base)"
	"$tmp/bench-failover" -weft "$tmp/weft-base" "${extra[@]}"
fi
