# Sourced by the .ci/install-*.sh scripts: apt_install PACKAGE... installs
# from Debian what is not installed yet, quietly, and says what it did
# through the caller's log function. Package postinst scripts try to start
# system services; there is no init system in CI and the tests start their
# own instances anyway.
apt_install() {
	local missing=() p
	for p in "$@"; do
		if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed'; then
			missing+=("$p")
		fi
	done
	if ((${#missing[@]} == 0)); then
		log "apt packages present: $*"
		return
	fi
	local sudo=()
	if [[ $(id -u) != 0 ]]; then sudo=(sudo); fi
	log "apt-get update"
	"${sudo[@]}" apt-get update -qq
	log "installing ${missing[*]}"
	DEBIAN_FRONTEND=noninteractive "${sudo[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}
