#!/usr/bin/env bash
# Installs the brokers the event bridges' tests start (internal/bridge, test/e2e
# bridge tests): mosquitto (MQTT 5) and rabbitmq-server (AMQP 0-9-1) from
# Debian. nats-server comes from .ci/install-nats-server.sh; Kafka has no
# Debian package, so its tests run against franz-go's kfake cluster.
# Idempotent: a second run installs nothing, so CI may call it on every run.
set -euo pipefail

log() { printf '[install-bridge-deps] %s\n' "$*" >&2; }

packages=(mosquitto rabbitmq-server)
missing=()
for p in "${packages[@]}"; do
	if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed'; then
		missing+=("$p")
	fi
done
if ((${#missing[@]})); then
	sudo=()
	if [[ $(id -u) != 0 ]]; then sudo=(sudo); fi
	log "apt-get update"
	"${sudo[@]}" apt-get update -qq
	log "installing ${missing[*]}"
	# The packages' postinst scripts try to start system services; there is
	# no init system in CI and the tests start their own brokers anyway.
	DEBIAN_FRONTEND=noninteractive "${sudo[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
else
	log "apt packages present: ${packages[*]}"
fi
