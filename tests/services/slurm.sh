#!/usr/bin/env bash
# A real one-node Slurm cluster on loopback for the tests: munge, slurmctld,
# slurmd, and slurmdbd with MariaDB (the slurm executor plugin and the timing
# table read `sacct`, which needs accounting). Debian packages, started by
# hand: these machines have no systemd and no cgroups.
#
#   tests/services/slurm.sh start    install what is missing, start what is down, wait for an idle node
#   tests/services/slurm.sh stop     stop every daemon it started
#   tests/services/slurm.sh status   exit 0 when the node is idle or busy and accounting answers
#
# Idempotent: `start` twice is harmless. Must run as root (it writes
# /etc/slurm and /etc/munge). Settings, by environment:
#   LOCAL_SLURM_DIR        state, spool, logs, pid files   (/var/tmp/lsst-on-aws/slurm)
#   LOCAL_SLURM_PARTITION  the one (default) partition     (debug)
#   LOCAL_SLURM_CLUSTER    cluster name in accounting      (lsstonaws)
#   LOCAL_SLURM_ACCOUNT    account created for root        (lsst)
set -euo pipefail

DIR=${LOCAL_SLURM_DIR:-/var/tmp/lsst-on-aws/slurm}
PARTITION=${LOCAL_SLURM_PARTITION:-debug}
CLUSTER=${LOCAL_SLURM_CLUSTER:-lsstonaws}
ACCOUNT=${LOCAL_SLURM_ACCOUNT:-lsst}
NODE=$(hostname -s)
PACKAGES=(munge slurmctld slurmd slurm-client slurmdbd mariadb-server)

NAME=slurm.sh
# shellcheck source=tests/services/lib.sh
source "$(dirname "$0")/lib.sh"

start_munge() {
	mkdir -p /etc/munge /run/munge /var/log/munge /var/lib/munge
	[ -s /etc/munge/munge.key ] || dd if=/dev/urandom of=/etc/munge/munge.key bs=1024 count=1 status=none
	chown munge:munge /etc/munge/munge.key /run/munge /var/log/munge /var/lib/munge
	chmod 400 /etc/munge/munge.key
	if ! running_here /run/munge/munged.pid munged; then
		rm -f /run/munge/munged.pid /run/munge/munge.socket.2*
		runuser -u munge -- /usr/sbin/munged
	fi
	wait_until 20 bash -c 'munge -n | unmunge' || die "munge does not answer"
}

# The node's memory for Slurm: 85% of physical, in whole 512 MB steps, so
# that slurm.conf is the same from one start to the next.
node_memory_mb() {
	awk '/MemTotal/ { printf "%d", int($2 / 1024 * 0.85 / 512) * 512 }' /proc/meminfo
}

write_slurm_conf() {
	mkdir -p /etc/slurm "$DIR/state" "$DIR/spool" "$DIR/log"
	local conf
	conf=$(
		cat <<EOF
# Written by tests/services/slurm.sh: a one-node cluster on loopback.
ClusterName=$CLUSTER
SlurmctldHost=$NODE(127.0.0.1)
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
# a requeued job waits out its credential lifetime (120 s by default) before
# it starts again; 30 s is ample on loopback
AuthInfo=cred_expire=30
StateSaveLocation=$DIR/state
SlurmdSpoolDir=$DIR/spool
SlurmctldPidFile=$DIR/slurmctld.pid
SlurmdPidFile=$DIR/slurmd.pid
SlurmctldLogFile=$DIR/log/slurmctld.log
SlurmdLogFile=$DIR/log/slurmd.log
# no cgroups on these machines
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/linux
# without cgroups, memory limits are enforced by polling: a step whose
# processes together hold more than the job asked for (their proportional
# set sizes, so that forked workers' shared pages count once) is killed
# within JobAcctGatherFrequency seconds, and its job ends OUT_OF_MEMORY, as
# under ParallelCluster's cgroups. Every 2 s, not 10: a step of a few seconds
# could end between two looks, unseen (and without a MaxRSS in sacct)
JobAcctGatherFrequency=2
JobAcctGatherParams=OverMemoryKill,UsePss
AccountingStorageType=accounting_storage/slurmdbd
AccountingStorageHost=127.0.0.1
JobCompType=jobcomp/none
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
# a node that went DOWN comes back as soon as its slurmd registers
ReturnToService=2
SlurmctldTimeout=30
SlurmdTimeout=30
KillWait=5
# finished jobs stay in squeue for 5 min: the profile's squeue status
# check needs MinJobAge >= 3 x slurm-init-seconds-before-status-checks
MinJobAge=300
MpiDefault=none
NodeName=$NODE NodeAddr=127.0.0.1 CPUs=$(nproc) RealMemory=$(node_memory_mb) State=UNKNOWN
PartitionName=$PARTITION Nodes=$NODE Default=YES MaxTime=INFINITE State=UP
EOF
	)
	if [ ! -f /etc/slurm/slurm.conf ] || [ "$(cat /etc/slurm/slurm.conf)" != "$conf" ]; then
		printf '%s\n' "$conf" >/etc/slurm/slurm.conf
		return 0
	fi
	return 1
}

start_accounting() {
	mkdir -p /run/mysqld
	chown mysql:mysql /run/mysqld
	[ -d /var/lib/mysql/mysql ] || mariadb-install-db --user=mysql --datadir=/var/lib/mysql >/dev/null
	if ! mariadb-admin ping >/dev/null 2>&1; then
		nohup /usr/sbin/mariadbd --user=mysql --pid-file=/run/mysqld/mysqld.pid \
			--bind-address=127.0.0.1 >"$DIR/log/mariadb.log" 2>&1 &
		wait_until 60 mariadb-admin ping || die "MariaDB did not start; see $DIR/log/mariadb.log"
	fi
	mariadb -e "CREATE DATABASE IF NOT EXISTS slurm_acct_db;
		CREATE USER IF NOT EXISTS 'slurm'@'localhost' IDENTIFIED BY 'slurm';
		GRANT ALL ON slurm_acct_db.* TO 'slurm'@'localhost'; FLUSH PRIVILEGES;"
	cat >/etc/slurm/slurmdbd.conf <<EOF
AuthType=auth/munge
DbdHost=localhost
DbdAddr=127.0.0.1
SlurmUser=root
LogFile=$DIR/log/slurmdbd.log
PidFile=$DIR/slurmdbd.pid
StorageType=accounting_storage/mysql
StorageHost=localhost
StorageLoc=slurm_acct_db
StorageUser=slurm
StoragePass=slurm
EOF
	chmod 600 /etc/slurm/slurmdbd.conf
	running_here "$DIR/slurmdbd.pid" slurmdbd || /usr/sbin/slurmdbd
	wait_until 60 sacctmgr -n list cluster || die "slurmdbd does not answer; see $DIR/log/slurmdbd.log"
	sacctmgr -n -P list cluster format=cluster | grep -qx "$CLUSTER" ||
		sacctmgr -i add cluster "$CLUSTER" >/dev/null
	sacctmgr -n -P list account format=account | grep -qx "$ACCOUNT" ||
		sacctmgr -i add account "$ACCOUNT" Cluster="$CLUSTER" Description=tests Organization=tests >/dev/null
	if ! sacctmgr -n -P list assoc user=root account="$ACCOUNT" format=user | grep -qx root; then
		sacctmgr -i add user root Account="$ACCOUNT" Cluster="$CLUSTER" >/dev/null
		sacctmgr -i modify user root set DefaultAccount="$ACCOUNT" >/dev/null
	fi
}

node_state() { sinfo -h -n "$NODE" -o %T 2>/dev/null | head -1; }

start() {
	[ "$(id -u)" = 0 ] || die "must run as root"
	local t0=$SECONDS changed=0
	install_packages "${PACKAGES[@]}"
	start_munge
	write_slurm_conf && changed=1
	start_accounting
	if [ $changed = 1 ]; then
		stop_daemon "$DIR/slurmd.pid" slurmd
		stop_daemon "$DIR/slurmctld.pid" slurmctld
	fi
	running_here "$DIR/slurmctld.pid" slurmctld || /usr/sbin/slurmctld
	running_here "$DIR/slurmd.pid" slurmd || /usr/sbin/slurmd -N "$NODE"
	local deadline=$((SECONDS + 120)) state
	while :; do
		state=$(node_state || true)
		case "$state" in
		idle | mixed | allocated) break ;;
		down* | drain*) scontrol update nodename="$NODE" state=resume >/dev/null 2>&1 || true ;;
		esac
		[ $SECONDS -lt $deadline ] || die "node $NODE is '$state', not idle; see $DIR/log"
		sleep 0.5
	done
	say "up in $((SECONDS - t0)) s: node $NODE $state, partition $PARTITION, account $ACCOUNT"
}

stop() {
	stop_daemon "$DIR/slurmd.pid" slurmd
	stop_daemon "$DIR/slurmctld.pid" slurmctld
	stop_daemon "$DIR/slurmdbd.pid" slurmdbd
	stop_daemon /run/mysqld/mysqld.pid mariadbd
	stop_daemon /run/munge/munged.pid munged
}

status() {
	case "$(node_state || true)" in
	idle | mixed | allocated) sacctmgr -n list cluster >/dev/null 2>&1 ;;
	*) return 1 ;;
	esac
}

case "${1:-}" in
start) start ;;
stop) stop ;;
status) status ;;
*) die "usage: $0 start|stop|status" ;;
esac
