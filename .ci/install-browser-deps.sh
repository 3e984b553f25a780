#!/usr/bin/env bash
# Installs the browser the console's tests drive (test/e2e console tests,
# through chromedp): headless Chromium from Debian. Idempotent: a second run
# installs nothing, so CI may call it on every run.
set -euo pipefail

log() { printf '[install-browser-deps] %s\n' "$*" >&2; }

source "$(dirname "$0")/apt-install.sh"
apt_install chromium chromium-driver
