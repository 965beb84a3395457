#!/usr/bin/env bash
# A stand-in cluster head node for the tests of the AWS control plane: Debian's
# OpenSSH server as root on 127.0.0.1, with a throwaway host key and user key,
# so that ssh and rsync to this machine work as they do to a ParallelCluster
# head node (sync, detached remote run, follow, fetch), the local Slurm behind it.
#
#   tests/services/sshd.sh start    install what is missing, make the keys, start sshd, wait until ssh works
#   tests/services/sshd.sh stop     stop sshd
#   tests/services/sshd.sh status   exit 0 when ssh to the stand-in answers
#   tests/services/sshd.sh config   print the ssh client config (Host lsst-head-test) the tests use
#
# Idempotent: `start` twice is harmless. Must run as root. Settings, by environment:
#   LOCAL_SSHD_DIR    keys, config, pid file and log   (/var/tmp/lsst-on-aws/sshd)
#   LOCAL_SSHD_PORT   TCP port on 127.0.0.1            (2222)
set -euo pipefail

NAME=sshd.sh
DIR=${LOCAL_SSHD_DIR:-/var/tmp/lsst-on-aws/sshd}
PORT=${LOCAL_SSHD_PORT:-2222}
HOST_ALIAS=lsst-head-test
# shellcheck source=tests/services/lib.sh
source "$(dirname "$0")/lib.sh"

write_files() {
	sshd_setup "$DIR" "$PORT" "$DIR/sshd.pid" 127.0.0.1
	# the stand-in's host key is known up front: no trust-on-first-use prompt
	echo "[127.0.0.1]:$PORT $(cut -d' ' -f1,2 "$DIR/host_ed25519.pub")" >"$DIR/known_hosts"
	cat >"$DIR/ssh_config" <<CONF
Host $HOST_ALIAS
    HostName 127.0.0.1
    Port $PORT
    User root
    IdentityFile $DIR/id_ed25519
    IdentitiesOnly yes
    UserKnownHostsFile $DIR/known_hosts
    StrictHostKeyChecking yes
    BatchMode yes
    ConnectTimeout 10
CONF
}

answers() { ssh -F "$DIR/ssh_config" "$HOST_ALIAS" true; }

start() {
	[ "$(id -u)" = 0 ] || die "must run as root"
	install_packages openssh-server openssh-client rsync
	write_files
	running_here "$DIR/sshd.pid" sshd || /usr/sbin/sshd -f "$DIR/sshd_config" -E "$DIR/sshd.log"
	wait_until 30 answers || die "ssh to 127.0.0.1:$PORT does not answer; see $DIR/sshd.log"
	say "up: ssh -F $DIR/ssh_config $HOST_ALIAS"
}

case "${1:-}" in
start) start ;;
stop) stop_daemon "$DIR/sshd.pid" sshd ;;
status) answers ;;
config) cat "$DIR/ssh_config" ;;
*)
	echo "usage: $0 start|stop|status|config" >&2
	exit 2
	;;
esac
