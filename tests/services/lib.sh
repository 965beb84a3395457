# Shared by the test services' scripts (slurm.sh, postgres.sh, sshd.sh): source it
# after setting NAME (the script's name in messages).
# shellcheck shell=bash

say() { echo "[$NAME] $*"; }
die() {
	echo "[$NAME] error: $*" >&2
	exit 1
}

# running <pidfile> <command name>: the pid file names a live process of that name
running() {
	local pid
	[ -s "$1" ] || return 1
	pid=$(cat "$1")
	[ -n "$pid" ] && [ "$(cat "/proc/$pid/comm" 2>/dev/null)" = "$2" ]
}

# wait_until <seconds> <command...>
wait_until() {
	local deadline=$(($(date +%s) + $1))
	shift
	until "$@" >/dev/null 2>&1; do
		[ "$(date +%s)" -lt "$deadline" ] || return 1
		sleep 0.5
	done
}

# install_packages <package...>: apt-get install the Debian packages not yet installed
install_packages() {
	local missing=()
	for p in "$@"; do dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p"); done
	[ ${#missing[@]} -eq 0 ] && return 0
	say "installing ${missing[*]}"
	# postinst scripts must not try to start services: there is no init system
	local policy=/usr/sbin/policy-rc.d made_policy=0
	if [ ! -e $policy ]; then
		printf '#!/bin/sh\nexit 101\n' >$policy
		chmod +x $policy
		made_policy=1
	fi
	DEBIAN_FRONTEND=noninteractive apt-get update -qq
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
	[ $made_policy = 1 ] && rm -f $policy
	return 0
}

# stop_daemon <pidfile> <command name>
stop_daemon() {
	local pid
	if running "$1" "$2"; then
		pid=$(cat "$1")
		kill "$pid"
		wait_until 30 bash -c "! kill -0 $pid" || kill -9 "$pid"
		say "stopped $2 ($pid)"
	fi
	rm -f "$1"
}
