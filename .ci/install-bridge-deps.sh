#!/usr/bin/env bash
# Installs the brokers the event bridges' tests start (internal/bridge, test/e2e
# bridge tests): mosquitto (MQTT 5) and rabbitmq-server (AMQP 0-9-1) from
# Debian. nats-server comes from .ci/install-nats-server.sh; Kafka has no
# Debian package, so its tests run against franz-go's kfake cluster.
# Idempotent: a second run installs nothing, so CI may call it on every run.
set -euo pipefail

log() { printf '[install-bridge-deps] %s\n' "$*" >&2; }

source "$(dirname "$0")/apt-install.sh"
apt_install mosquitto rabbitmq-server
