#!/usr/bin/env bash
# Installs what the vL3 tests and benchmark run inside the network namespaces
# they create (test/e2e vl3 tests, bench/run-vl3.sh): iproute2 (ip netns),
# iputils-ping, iperf3, and wireguard-tools with wireguard-go for the benchmark's reference
# tunnel. Idempotent, so CI may call it on every run.
set -euo pipefail

log() { printf '[install-vl3-deps] %s\n' "$*" >&2; }

source "$(dirname "$0")/apt-install.sh"
apt_install iproute2 iputils-ping iperf3 wireguard-tools wireguard-go
