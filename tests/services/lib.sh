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

# running_here <pidfile> <command name>: as running, and the process is in this network namespace.
# A pid file left by an earlier boot of the machine can name a pid now reused by the same daemon
# of another namespace (the local cluster's head node runs its own munged, slurmctld, sshd).
running_here() {
	running "$1" "$2" && [ "$(readlink /proc/"$(cat "$1")"/ns/net)" = "$(readlink /proc/self/ns/net)" ]
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
	if running_here "$1" "$2"; then
		pid=$(cat "$1")
		kill "$pid"
		wait_until 30 bash -c "! kill -0 $pid" || kill -9 "$pid"
		say "stopped $2 ($pid)"
	fi
	rm -f "$1"
}

# sshd_setup <dir> <port> <pidfile> [listen address]: throwaway host and user keys in <dir>, the
# user's key authorised, and <dir>/sshd_config: key only, root allowed, no PAM
sshd_setup() {
	local dir=$1 port=$2 pidfile=$3 listen=${4:-}
	mkdir -p "$dir" /run/sshd
	chmod 700 "$dir"
	[ -s "$dir/host_ed25519" ] || ssh-keygen -q -t ed25519 -N "" -C "lsst-on-aws-test-host" -f "$dir/host_ed25519"
	[ -s "$dir/id_ed25519" ] || ssh-keygen -q -t ed25519 -N "" -C "lsst-on-aws-test-user" -f "$dir/id_ed25519"
	cp "$dir/id_ed25519.pub" "$dir/authorized_keys"
	{
		echo "# Written by tests/services/$NAME: key only, root allowed."
		[ -z "$listen" ] || echo "ListenAddress $listen"
		cat <<CONF
Port $port
HostKey $dir/host_ed25519
PidFile $pidfile
AuthorizedKeysFile $dir/authorized_keys
PermitRootLogin prohibit-password
PasswordAuthentication no
KbdInteractiveAuthentication no
UsePAM no
StrictModes no
Subsystem sftp internal-sftp
CONF
	} >"$dir/sshd_config"
}
