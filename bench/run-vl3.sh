#!/usr/bin/env bash
# vL3 against WireGuard between the same two network namespaces, in one run:
# iperf3 TCP throughput and ping latency from namespace A to namespace B
#   - through vL3: A's TUN -> `weft site run` a -> link (mutual TLS, sealed
#     stream) -> `weft site run` b -> B's TUN;
#   - through WireGuard: A's wg device -> veth -> B's wg device (kernel
#     WireGuard if the kernel has it, else wireguard-go).
# Everything stays in the namespaces this script makes (100.64.0.0/10) and
# on loopback; they are deleted on exit. Needs root and .ci/install-vl3-deps.sh.
#
#   bench/run-vl3.sh              # 10 s per iperf3 run
#   SECS=30 bench/run-vl3.sh
set -euo pipefail
cd "$(dirname "$0")/.."
secs=${SECS:-10}
log() { printf '[bench-vl3] %s\n' "$*" >&2; }

tmp=$(mktemp -d)
A=wvb-a-$$ B=wvb-b-$$
pids=()
cleanup() {
	for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
	for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
	ip netns del "$A" 2>/dev/null || true
	ip netns del "$B" 2>/dev/null || true
	rm -rf "$tmp"
}
trap cleanup EXIT INT TERM

log "building weft"
go build -o "$tmp/weft" ./cmd/weft
weft() { "$tmp/weft" "$@"; }

ip netns add "$A"
ip netns add "$B"
for ns in "$A" "$B"; do ip -n "$ns" link set lo up; done

# The underlay WireGuard runs over: a veth pair between A and B.
ip link add "va$$" netns "$A" type veth peer name "vb$$" netns "$B"
ip -n "$A" addr add 100.65.0.1/30 dev "va$$"
ip -n "$B" addr add 100.65.0.2/30 dev "vb$$"
ip -n "$A" link set "va$$" up
ip -n "$B" link set "vb$$" up

wg_kind=kernel
wg_up() { # ns dev addr key port peerpub peerendpoint peeraddr
	if ip -n "$1" link add "$2" type wireguard 2>/dev/null; then :; else
		wg_kind=wireguard-go
		WG_PROCESS_FOREGROUND=1 ip netns exec "$1" wireguard-go -f "$2" >"$tmp/$2.log" 2>&1 &
		pids+=($!)
		for _ in $(seq 100); do [[ -S /var/run/wireguard/$2.sock ]] && break; sleep 0.05; done
	fi
	ip netns exec "$1" wg set "$2" private-key "$4" listen-port "$5" peer "$6" allowed-ips "$8/32" endpoint "$7"
	ip -n "$1" addr add "$3/24" dev "$2"
	ip -n "$1" link set "$2" up
}
umask 077
wg genkey >"$tmp/ka"
wg genkey >"$tmp/kb"
wg_up "$A" "wga$$" 100.66.0.1 "$tmp/ka" 51820 "$(wg pubkey <"$tmp/kb")" 100.65.0.2:51820 100.66.0.2
wg_up "$B" "wgb$$" 100.66.0.2 "$tmp/kb" 51820 "$(wg pubkey <"$tmp/ka")" 100.65.0.1:51820 100.66.0.1

log "starting sites a and b"
for s in a b; do
	"$tmp/weft" site run --name "$s" --data "$tmp/$s" --log-level warn >"$tmp/$s.log" 2>&1 &
	pids+=($!)
done
for s in a b; do
	for _ in $(seq 200); do [[ -s $tmp/$s/admin.addr ]] && break; sleep 0.05; done
done
weft --site "$tmp/a" token issue --file "$tmp/token.yaml" >/dev/null
weft --site "$tmp/b" link create "$tmp/token.yaml" >/dev/null
weft --site "$tmp/a" network create bench --cidr 100.100.0.0/16 >/dev/null
weft --site "$tmp/a" network attach bench --netns "$A" >/dev/null
for _ in $(seq 200); do
	weft --site "$tmp/b" network attach bench --netns "$B" >/dev/null 2>&1 && break
	sleep 0.1
done
addr() { weft --site "$tmp/$1" network list -o json | python3 -c 'import json,sys; print(json.load(sys.stdin)["items"][0]["attachments"][0]["ip"])'; }
vl3_b=$(addr b)
for _ in $(seq 200); do ip netns exec "$A" ping -c1 -W1 "$vl3_b" >/dev/null 2>&1 && break; done
ip netns exec "$A" ping -c1 -W1 100.66.0.2 >/dev/null

measure() { # name dst
	ip netns exec "$B" iperf3 -s -1 -B "$2" >/dev/null 2>&1 &
	local srv=$!
	local out
	for _ in $(seq 100); do
		out=$(ip netns exec "$A" iperf3 -c "$2" -t "$secs" -J 2>/dev/null) &&
			python3 -c 'import json,sys; d=json.loads(sys.argv[1]); sys.exit(1 if "error" in d else 0)' "$out" && break
		sleep 0.1
	done
	wait "$srv" || true
	local bps rtt
	bps=$(python3 -c 'import json,sys; print(json.loads(sys.argv[1])["end"]["sum_received"]["bits_per_second"])' "$out")
	rtt=$(ip netns exec "$A" ping -q -c 50 -i 0.05 "$2" | awk -F/ '/^rtt/ {print $5}')
	printf '%s %s %s\n' "$1" "$bps" "$rtt"
}
log "measuring ${secs}s of iperf3 TCP and 50 pings each"
{
	measure vl3 "$vl3_b"
	measure wireguard 100.66.0.2
} >"$tmp/results"
python3 - "$tmp/results" "$wg_kind" <<'PY'
import sys
r = {l.split()[0]: (float(l.split()[1]), float(l.split()[2])) for l in open(sys.argv[1])}
print(f"| path | TCP Mbit/s | ping avg ms |")
print(f"|---|---|---|")
print(f"| vL3 (two weft sites) | {r['vl3'][0]/1e6:.0f} | {r['vl3'][1]:.3f} |")
print(f"| WireGuard ({sys.argv[2]}) | {r['wireguard'][0]/1e6:.0f} | {r['wireguard'][1]:.3f} |")
print(f"| ratio vL3/WireGuard | {r['vl3'][0]/r['wireguard'][0]:.2f}x | {r['vl3'][1]/r['wireguard'][1]:.2f}x |")
PY
