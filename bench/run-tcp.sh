#!/usr/bin/env bash
# Runs the TCP benchmark (bench/tcp): direct loopback vs two weft sites joined
# by a link vs two HAProxy instances joined by mutual TLS. See bench/README.md.
#
#   bench/run-tcp.sh                 full run (about 2-3 minutes)
#   bench/run-tcp.sh --quick         smoke run (about 20 seconds with the builds)
#   bench/run-tcp.sh --head          measure weft as committed at HEAD rather
#                                    than the working tree (others' uncommitted
#                                    edits would otherwise be in the binary)
#   bench/run-tcp.sh --unsealed      also measure the same tree built with
#                                    -tags weft_bench_unsealed (no end-to-end
#                                    seal): what sealing costs, same run
#   bench/run-tcp.sh --json FILE     where the JSON results go
#                                    (default: ${TMPDIR:-/tmp}/weft-bench-tcp.json)
#   bench/run-tcp.sh -- -rounds 5    anything after -- goes to the harness
#                                    (go run ./bench/tcp -h lists its flags)
set -euo pipefail

quick=()
head=0
unsealed=0
json="${TMPDIR:-/tmp}/weft-bench-tcp.json"
extra=()
while [ $# -gt 0 ]; do
	case "$1" in
	--quick) quick=(-quick) ;;
	--head) head=1 ;;
	--unsealed) unsealed=1 ;;
	--json) json="$2"; shift ;;
	--json=*) json="${1#*=}" ;;
	-h | --help) sed -n '2,17p' "$0"; exit 0 ;;
	--) shift; extra+=("$@"); break ;;
	*) echo "unknown argument $1 (try --help)" >&2; exit 2 ;;
	esac
	shift
done

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"

if ! command -v haproxy >/dev/null 2>&1; then
	echo "run-tcp: installing haproxy from Debian's packages" >&2
	sudo=()
	if [ "$(id -u)" -ne 0 ]; then sudo=(sudo); fi
	"${sudo[@]}" apt-get update -qq >&2
	DEBIAN_FRONTEND=noninteractive "${sudo[@]}" apt-get install -y -qq haproxy >&2
fi

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

# The revision is passed explicitly because builds here may run with
# GOFLAGS=-buildvcs=false, which leaves the binary without a VCS stamp.
src="$root"
rev="$(git describe --always --dirty --abbrev=12 2>/dev/null || echo unknown)"
if [ "$head" -eq 1 ]; then
	mkdir "$work/src"
	git archive HEAD | tar -x -C "$work/src"
	src="$work/src"
	rev="$(git rev-parse --short=12 HEAD)"
fi
echo "run-tcp: building weft ($rev) and the harness" >&2
(cd "$src" && go build -o "$work/weft" ./cmd/weft)
if [ "$unsealed" -eq 1 ]; then
	(cd "$src" && go build -tags weft_bench_unsealed -o "$work/weft-unsealed" ./cmd/weft)
	extra=(-weft-unsealed "$work/weft-unsealed" ${extra[@]+"${extra[@]}"})
fi
go build -o "$work/bench-tcp" ./bench/tcp

# The harness runs in the background so that a TERM or INT sent to this
# script alone still reaches it; it then stops the weft sites and HAProxy
# instances it started before exiting.
"$work/bench-tcp" -weft "$work/weft" -weft-revision "$rev" -json "$json" \
	${quick[@]+"${quick[@]}"} ${extra[@]+"${extra[@]}"} &
pid=$!
trap 'kill -TERM "$pid" 2>/dev/null || true' INT TERM
rc=0
wait "$pid" || rc=$?
# wait returns early when a trapped signal arrives; wait for the real exit.
while kill -0 "$pid" 2>/dev/null; do
	rc=0
	wait "$pid" || rc=$?
done
exit "$rc"
