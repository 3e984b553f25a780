#!/usr/bin/env bash
# Installs promtool (Debian's prometheus package) for deploy/observability's
# tests, which check the alerting rules and run their unit tests with it.
# Idempotent: a second run installs nothing, so CI may call it on every run.
set -euo pipefail

log() { printf '[install-observability-deps] %s\n' "$*" >&2; }

source "$(dirname "$0")/apt-install.sh"
apt_install prometheus
