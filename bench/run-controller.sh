#!/usr/bin/env bash
# Runs the controller benchmark (bench/controller) on two revisions in one
# run, alternating them, so that a loaded machine moves both alike: compile
# and plan of 10,000 intents over 100 clusters, and the re-plan of one
# changed intent's group. See bench/README.md, section "Controller".
#
#   bench/run-controller.sh                  this working tree against main
#   bench/run-controller.sh --base REV       ... against REV
#   bench/run-controller.sh --rounds N       N rounds of each (default 2)
#   bench/run-controller.sh --profile DIR    also write CPU and memory profiles
#                                            of the working tree's runs to DIR
#
# The benchmark's source is this working tree's for both, so both run the
# same fixtures and report the same figures, unless it does not build
# against the base: then the base runs its own.
set -euo pipefail

base=main rounds=2 profile=
while [ $# -gt 0 ]; do
	case "$1" in
	-h | --help) sed -n '2,16p' "$0"; exit 0 ;;
	--base) base="$2"; shift ;;
	--rounds) rounds="$2"; shift ;;
	--profile) profile="$2"; shift ;;
	*) echo "unknown argument $1 (try --help)" >&2; exit 2 ;;
	esac
	shift
done

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
mkdir "$tmp/base"
git archive "$base" | tar -x -C "$tmp/base"
cp "$tmp/base/bench/controller/controller_test.go" "$tmp/base-bench.go"
cp bench/controller/controller_test.go "$tmp/base/bench/controller/"
if ! (cd "$tmp/base" && go test -c -o "$tmp/base.test" ./bench/controller 2>/dev/null); then
	# The benchmark uses API the base does not have (compile.Cache,
	# stored bodies): the base runs its own benchmark source.
	echo "# base runs its own bench/controller source: this tree's does not build against it"
	cp "$tmp/base-bench.go" "$tmp/base/bench/controller/controller_test.go"
	(cd "$tmp/base" && go test -c -o "$tmp/base.test" ./bench/controller)
fi
go test -c -o "$tmp/head.test" ./bench/controller

run() { # name binary [profile flags]
	local name=$1 bin=$2
	shift 2
	echo "== $name"
	"$bin" -test.run '^$' -test.bench . -test.benchtime 1x "$@" | grep '^summary'
}
for i in $(seq "$rounds"); do
	echo "# round $i, $(date -u +%H:%M:%S), load $(cut -d' ' -f1-3 /proc/loadavg)"
	run "base ($base)" "$tmp/base.test"
	if [ -n "$profile" ] && [ "$i" = 1 ]; then
		mkdir -p "$profile"
		cp "$tmp/head.test" "$profile/controller.test"
		run "head" "$tmp/head.test" -test.cpuprofile "$profile/cpu.out" -test.memprofile "$profile/mem.out"
	else
		run "head" "$tmp/head.test"
	fi
done
