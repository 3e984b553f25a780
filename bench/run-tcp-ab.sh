#!/usr/bin/env bash
# Compares two weft revisions with the TCP benchmark (bench/tcp): builds weft
# at REF (default main) and at HEAD, then runs the full harness on each in
# turn, N times (default 4), alternating (ABBA), so that both see the same
# spells of load on a shared machine. Prints each run's table and, with python3, the
# comparison of every round (bench/tcp-ab-compare.py). See bench/README.md.
#
#   bench/run-tcp-ab.sh [REF [N]]     JSON files go to ${TMPDIR:-/tmp}/weft-bench-ab
set -euo pipefail
ref="${1:-main}"
n="${2:-4}"
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
out="${TMPDIR:-/tmp}/weft-bench-ab"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
mkdir -p "$out"
rm -f "$out"/run*
for v in ref head; do
	rev="$ref"
	[ "$v" = head ] && rev=HEAD
	mkdir "$work/$v"
	git archive "$rev" | tar -x -C "$work/$v"
	echo "run-tcp-ab: building weft at $rev ($(git rev-parse --short=12 "$rev"))" >&2
	(cd "$work/$v" && go build -o "$work/weft-$v" ./cmd/weft)
done
go build -o "$work/bench-tcp" ./bench/tcp
command -v haproxy >/dev/null || { echo "run-tcp-ab: haproxy missing: run bench/run-tcp.sh once to install it" >&2; exit 1; }
for i in $(seq "$n"); do
	# ABBA: which revision goes first alternates, so that load rising or
	# falling through the series does not favour one.
	order="ref head"
	[ $((i % 2)) -eq 0 ] && order="head ref"
	for v in $order; do
		echo "=== run $i: $v, load $(cut -d' ' -f1 /proc/loadavg)"
		# A failed run (a proxy that died, a path that did not come up in
		# time on a loaded machine) is reported and skipped, not fatal.
		if ! "$work/bench-tcp" -weft "$work/weft-$v" -weft-revision "$v" -json "$out/run$i-$v.json" \
			>"$out/run$i-$v.txt" 2>"$out/run$i-$v.log"; then
			echo "run-tcp-ab: run $i of $v failed; its log ends:" >&2
			tail -5 "$out/run$i-$v.log" >&2
			continue
		fi
		sed -n '/metric/,/req\/s/p' "$out/run$i-$v.txt"
	done
done
if command -v python3 >/dev/null; then
	python3 bench/tcp-ab-compare.py "$out"
fi
