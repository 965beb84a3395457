#!/usr/bin/env bash
# A ParallelCluster-shaped cluster of separate hosts on this machine, for the tests of the
# control plane and the data plane across nodes (tests/test_multihost.py).
#
#   head node   network namespace lsst-head: 10.213.0.1 on the cluster's private network, and
#               10.213.1.2, the address the "laptop" (this machine's own namespace, 10.213.1.1)
#               reaches it at, as a head node's public address. It runs munged, slurmctld,
#               slurmdbd with its own MariaDB, and sshd (port 22: the only way in, as on AWS).
#   compute     spot-st-compute-1 and -2 (partition spot, the default) and ondemand-st-compute-1
#               (partition ondemand), 10.213.0.11 up: each its own network, PID, mount and UTS
#               namespace whose root is an overlay on a cached debootstrap of Debian 12 (minbase,
#               slurmd, munge, python3 = 3.11): no Python 3.12, none of this machine's packages or
#               folders. Each runs munged and slurmd as its PID 1's children.
#               The head node also serves the Butler registry's PostgreSQL (started by the bootstrap).
#   /shared     the only folder all hosts share: $DIR/shared, bind-mounted at /shared on each.
#
# Every node runs the workflow's own bootstrap (lsst_on_aws.cloud.bootstrap, ParallelCluster's
# OnNodeConfigured) as it comes up, with cfn_node_type HeadNode or ComputeFleet, before slurmd
# starts: the head node's installs Python 3.12 on /shared and starts PostgreSQL for the Butler
# registry (its data on /shared), a compute node's checks the Python runs there and maps the
# registry's name to the head node.
#
#   tests/services/cluster.sh start          build what is missing, start what is down (a crashed node
#                                            boots again), wait until every node is idle
#   tests/services/cluster.sh stop           stop it all; node disks, Slurm state and accounting go
#   tests/services/cluster.sh status         exit 0 when ssh answers and every compute node is up
#   tests/services/cluster.sh exec NODE CMD  run CMD on head or a compute node (head: this caller's
#                                            environment; compute node: a clean one)
#   tests/services/cluster.sh crash NODE     lose a compute node at once (SIGKILL its PID 1), as a
#                                            spot reclaim does
#   tests/services/cluster.sh unplug|plug    take the laptop's link to the head node down, or up
#
# Where this differs from ParallelCluster:
# - One kernel and one machine: CPUs and memory are not isolated (no cgroups); each node offers
#   Slurm CPUs=1 RealMemory=4000 of the machine's. Nodes are not secure containers.
# - The head node is this machine's own OS (its /usr, pyenv, /tmp, /root) in its own network,
#   mount and UTS namespaces, with its own /etc/slurm, /etc/munge and /etc/hosts; compute nodes
#   see none of it.
# - /shared is a bind mount, instant and coherent: NFS cannot run on this kernel (no modules), so
#   EBS-over-NFS's and EFS's attribute caching and latency do not show. Only /shared is shared;
#   ParallelCluster also shares /home and /opt/slurm from the head node.
# - Static nodes, always up: no scaling from zero, no clustermgtd replacing a lost node (`start`
#   boots it again), no instance types, prices or spot interruptions notices. Debian's Slurm 22.05
#   (ParallelCluster ships its own build) with short timeouts so that a lost node shows in seconds.
# - No internet on any node: the bootstrap's downloads come from a local stand-in (a
#   python-build-standalone-shaped Python made from this machine's pyenv 3.12, and a uv wheel,
#   in $DIR/mirror), and everything runs as root.
#
# Root only. Settings, by environment: LOCAL_CLUSTER_DIR (/var/tmp/lsst-on-aws/cluster).
set -euo pipefail

NAME=cluster.sh
DIR=${LOCAL_CLUSTER_DIR:-/var/tmp/lsst-on-aws/cluster}
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
NET=10.213.0        # the cluster's private network: the head node .1, compute nodes .11 up
UPLINK=10.213.1     # the laptop's link to the head node: .1 this machine, .2 the head node
SPOT=(spot-st-compute-1 spot-st-compute-2)
ONDEMAND=(ondemand-st-compute-1)
NODES=("${SPOT[@]}" "${ONDEMAND[@]}")
BASE=$DIR/rootfs-base
ROOTFS_TAR=$DIR/cache/rootfs-bookworm.tar.zst
ROOTFS_PACKAGES=slurmd,munge,slurm-client,procps,iproute2,python3
HOST_PACKAGES=(slurmctld slurm-client slurmdbd munge mariadb-server openssh-server openssh-client rsync
	zstd debootstrap patchelf make git postgresql)
# the head node's own copies of these, bind-mounted over this machine's in its mount namespace
HEAD_MOUNTS="munge-etc:/etc/munge munge-run:/run/munge munge-lib:/var/lib/munge munge-log:/var/log/munge"
# what the bootstrap is given on every node: ParallelCluster's Args of the rendered config
PYTHON_DIR=/shared/lsst-on-aws-python
BOOTSTRAP_ARGS="--python-dir $PYTHON_DIR --registry /shared/lsst-on-aws-registry /shared/lsst-on-aws"
# shellcheck source=tests/services/lib.sh
source "$(dirname "$0")/lib.sh"

case $DIR in *[[:space:]]*) die "LOCAL_CLUSTER_DIR must not contain spaces" ;; esac

address() { # the private address of a node
	local i
	[ "$1" = head ] && { echo $NET.1; return; }
	for i in "${!NODES[@]}"; do [ "${NODES[$i]}" = "$1" ] && { echo "$NET.$((11 + i))"; return; }; done
	die "no node $1 (nodes: head ${NODES[*]})"
}
has_netns() { ip netns list | grep -q "^$1\b"; }
# ours PIDFILE COMMAND: the pid of that file if it is alive, runs COMMAND and is not in this namespace
ours() {
	local p
	running "$1" "$2" || return 1
	p=$(cat "$1")
	[ "$(readlink /proc/"$p"/ns/net)" != "$(readlink /proc/self/ns/net)" ] && echo "$p"
}
halt() { # halt PIDFILE COMMAND: SIGTERM, SIGKILL after 10 s
	local p
	if p=$(ours "$1" "$2"); then
		kill -TERM "$p"
		wait_until 10 bash -c "! kill -0 $p" || kill -KILL "$p" 2>/dev/null || true
	fi
	rm -f "$1"
}
# on NODE CMD...: run CMD on NODE
on() {
	local node=$1 p
	shift
	if [ "$node" = head ]; then
		p=$(ours "$DIR/run/head.pid" sleep) || die "the head node is not running"
		nsenter -t "$p" -m -u -n --wd="$PWD" -- "$@"
	else
		address "$node" >/dev/null
		p=$(ours "$DIR/run/$node.pid" node-init) || die "$node is not running"
		nsenter -t "$p" -m -u -n -p -r -w -- env -i HOME=/root LANG=C.UTF-8 \
			PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin "$@"
	fi
}

apt_mirror() {
	local m
	m=$(grep -hoE 'https?://[^ ]+/debian/?( |$)' /etc/apt/sources.list /etc/apt/sources.list.d/*.list \
		/etc/apt/sources.list.d/*.sources 2>/dev/null | head -1 | tr -d ' ') || true
	echo "${m:-http://deb.debian.org/debian}"
}

# The compute nodes' OS: a debootstrap of Debian 12, made once (about a minute) and kept as a
# tarball; unpacked again when the unpacked copy is gone.
build_rootfs() {
	[ -x "$BASE/usr/sbin/slurmd" ] && return 0
	if [ ! -s "$ROOTFS_TAR" ]; then
		say "debootstrap of Debian 12 for the compute nodes ($ROOTFS_PACKAGES)"
		rm -rf "$DIR/rootfs-build"
		mkdir -p "$DIR/cache" "$DIR/log"
		debootstrap --variant=minbase --include=$ROOTFS_PACKAGES bookworm "$DIR/rootfs-build" "$(apt_mirror)" \
			>"$DIR/log/debootstrap.log" 2>&1 || die "debootstrap failed; see $DIR/log/debootstrap.log"
		tar -C "$DIR/rootfs-build" --numeric-owner -cf - . | zstd -q -T2 -o "$ROOTFS_TAR.part"
		mv "$ROOTFS_TAR.part" "$ROOTFS_TAR"
		rm -rf "$DIR/rootfs-build"
	fi
	rm -rf "$BASE.part"
	mkdir -p "$BASE.part"
	zstd -dc "$ROOTFS_TAR" | tar -C "$BASE.part" --numeric-owner -xf -
	mkdir -p "$BASE.part"/{shared,var/spool/slurmd,var/log/slurm,etc/parallelcluster,opt/lsst-on-aws}
	touch "$BASE.part/etc/hosts"
	mv "$BASE.part" "$BASE"
}

# What the bootstrap would download on AWS, made here: a relocatable Python 3.12 in
# python-build-standalone's layout (this machine's pyenv build, its library path made relative)
# with the index uv reads, and the uv wheel the bootstrap pip-installs.
build_mirror() {
	local m=$DIR/mirror prefix version tmp uv_version sha
	uv_version=$(sed -n 's/^UV_VERSION := //p' "$ROOT/Makefile")
	if ! ls "$m/wheels/uv-$uv_version-"*.whl >/dev/null 2>&1; then
		mkdir -p "$m/wheels"
		python3 -m pip download --quiet --no-deps --only-binary=:all: -d "$m/wheels" "uv==$uv_version"
	fi
	[ -s "$m/python-downloads.json" ] && return 0
	prefix=$(pyenv prefix 3.12 2>/dev/null | head -1) || true
	[ -x "$prefix/bin/python3.12" ] || die "no Python 3.12 from pyenv to stand in for python-build-standalone"
	version=$("$prefix/bin/python3.12" -c 'import platform; print(platform.python_version())')
	tmp=$(mktemp -d "$DIR/python-build.XXXX")
	cp -a "$prefix" "$tmp/python"
	rm -rf "$tmp/python/lib/python3.12/test" "$tmp/python/lib/python3.12/site-packages"/*
	patchelf --set-rpath '$ORIGIN/../lib' "$tmp/python/bin/python3.12"
	tar -C "$tmp" -czf "$m/cpython-$version-linux-x86_64-gnu.tar.gz" python
	rm -rf "$tmp"
	sha=$(sha256sum "$m/cpython-$version-linux-x86_64-gnu.tar.gz" | cut -d' ' -f1)
	cat >"$m/python-downloads.json" <<-EOF
		{"cpython-$version-linux-x86_64-gnu": {"name": "cpython", "arch": {"family": "x86_64", "variant": null},
		 "os": "linux", "libc": "gnu", "major": 3, "minor": 12, "patch": ${version##*.}, "prerelease": "",
		 "url": "file://$m/cpython-$version-linux-x86_64-gnu.tar.gz", "sha256": "$sha", "variant": null}}
	EOF
}

configure() {
	mkdir -p "$DIR"/{etc,run,log,shared,head/state,head/home} "$DIR/head/tools"
	local p n key=$DIR/head/munge-etc/munge.key
	for p in $HEAD_MOUNTS; do mkdir -p "$DIR/head/${p%%:*}" && chown munge:munge "$DIR/head/${p%%:*}"; done
	chmod 700 "$DIR/head/munge-etc" "$DIR/head/munge-log"
	# one munge key for the cluster, copied into each node as it boots
	[ -s "$key" ] || { dd if=/dev/urandom of="$key" bs=1024 count=1 status=none && chown munge:munge "$key" && chmod 400 "$key"; }
	printf '127.0.0.1 localhost\n%s head\n' $NET.1 >"$DIR/hosts"
	for n in "${NODES[@]}"; do echo "$(address "$n") $n" >>"$DIR/hosts"; done
	cat >"$DIR/etc/slurm.conf" <<-EOF
		# Written by tests/services/cluster.sh: a head node and ${#NODES[@]} compute nodes, queues as ParallelCluster's.
		ClusterName=lsstcluster
		SlurmctldHost=head($NET.1)
		SlurmUser=root
		SlurmdUser=root
		AuthType=auth/munge
		CredType=cred/munge
		# a requeued job waits out its credential's lifetime (120 s by default) before it starts again
		AuthInfo=cred_expire=10
		StateSaveLocation=$DIR/head/state
		SlurmctldPidFile=$DIR/run/slurmctld.pid
		SlurmctldLogFile=$DIR/log/slurmctld.log
		# on the compute nodes' own disks (the log folder is $DIR/log/NODE)
		SlurmdSpoolDir=/var/spool/slurmd
		SlurmdPidFile=/run/slurmd.pid
		SlurmdLogFile=/var/log/slurm/slurmd.log
		ProctrackType=proctrack/linuxproc
		TaskPlugin=task/none
		JobAcctGatherType=jobacct_gather/linux
		SelectType=select/cons_tres
		SelectTypeParameters=CR_Core_Memory
		ReturnToService=2
		# a silent node is DOWN, and its jobs requeued, after this many seconds
		SlurmdTimeout=15
		SlurmctldTimeout=30
		# scheduling 1 s after a submission (3 s by default), backfill (which restarts a requeued
		# job) every 5 s (30 s)
		SchedulerParameters=batch_sched_delay=1,bf_interval=5
		KillWait=5
		# squeue, the workflow's status check, forgets a job this long after it ends
		MinJobAge=300
		MpiDefault=none
		JobCompType=jobcomp/none
		AccountingStorageType=accounting_storage/slurmdbd
		AccountingStorageHost=$NET.1
	EOF
	for n in "${NODES[@]}"; do
		echo "NodeName=$n NodeAddr=$(address "$n") CPUs=1 RealMemory=4000 State=UNKNOWN" >>"$DIR/etc/slurm.conf"
	done
	{
		echo "PartitionName=spot Nodes=$(IFS=,; echo "${SPOT[*]}") Default=YES PriorityTier=10 MaxTime=INFINITE State=UP"
		echo "PartitionName=ondemand Nodes=$(IFS=,; echo "${ONDEMAND[*]}") MaxTime=INFINITE State=UP"
	} >>"$DIR/etc/slurm.conf"
	cat >"$DIR/etc/slurmdbd.conf" <<-EOF
		AuthType=auth/munge
		DbdHost=head
		SlurmUser=root
		LogFile=$DIR/log/slurmdbd.log
		PidFile=$DIR/run/slurmdbd.pid
		StorageType=accounting_storage/mysql
		StorageHost=127.0.0.1
		StoragePort=7306
		StorageLoc=slurm_acct_db
		StorageUser=slurm
		StoragePass=slurm
	EOF
	chmod 600 "$DIR/etc/slurmdbd.conf"
	# slurmd 22.05 always loads a cgroup plugin, and cannot detect one on a node's empty /sys/fs/cgroup
	echo "CgroupPlugin=cgroup/v1" >"$DIR/etc/cgroup.conf"
	"$ROOT/.venv/bin/python" -m lsst_on_aws.cloud.bootstrap >"$DIR/run/on-node-configured.sh" ||
		die "cannot render the bootstrap: run make env first"
	# PID 1 of a compute node: munged, the bootstrap (OnNodeConfigured), slurmd; reap; stop on SIGTERM
	cat >"$DIR/run/node-init" <<-EOF
		#!/bin/sh
		umount -l /.oldroot && rmdir /.oldroot
		hostname "\$1"
		mkdir -p /run/munge && chown munge:munge /run/munge /etc/munge/munge.key && chmod 400 /etc/munge/munge.key
		runuser -u munge -- /usr/sbin/munged
		printf 'cfn_node_type=ComputeFleet\ncfn_cluster_user=root\n' >/etc/parallelcluster/cfnconfig
		bash /opt/lsst-on-aws/on-node-configured.sh $BOOTSTRAP_ARGS >/var/log/slurm/bootstrap.log 2>&1 ||
		    { echo "bootstrap failed: see bootstrap.log"; exit 1; }
		/usr/sbin/slurmd -N "\$1"
		trap 'kill \$(cat /run/slurmd.pid /run/munge/munged.pid); sleep 1; exit 0' TERM INT
		while :; do sleep 5 & wait \$!; done
	EOF
	# the head node's sshd (in its network namespace), its host key known to the laptop up front
	sshd_setup "$DIR/ssh" 22 "$DIR/run/sshd.pid"
	echo "$UPLINK.2 $(cut -d' ' -f1,2 "$DIR/ssh/host_ed25519.pub")" >"$DIR/ssh/known_hosts"
}

network() {
	if ! has_netns lsst-head; then
		ip netns add lsst-head
		ip -n lsst-head link set lo up
		ip -n lsst-head link add lsstbr0 type bridge
		ip -n lsst-head addr add $NET.1/24 dev lsstbr0
		ip -n lsst-head link set lsstbr0 up
		# the laptop's link: this machine's namespace gets 10.213.1.1, nothing else
		ip link add lsst-laptop type veth peer name uplink netns lsst-head
		ip addr add $UPLINK.1/30 dev lsst-laptop
		ip link set lsst-laptop up
		ip -n lsst-head addr add $UPLINK.2/30 dev uplink
		ip -n lsst-head link set uplink up
	fi
	local i n
	for i in "${!NODES[@]}"; do
		n=${NODES[$i]}
		has_netns "lsst-$n" && continue
		ip netns add "lsst-$n"
		ip -n "lsst-$n" link set lo up
		ip -n lsst-head link add "vnode$i" type veth peer name eth0 netns "lsst-$n"
		ip -n lsst-head link set "vnode$i" master lsstbr0 up
		ip -n "lsst-$n" addr add "$(address "$n")/24" dev eth0
		ip -n "lsst-$n" link set eth0 up
	done
}

head_up() {
	if ! ours "$DIR/run/head.pid" sleep >/dev/null; then
		[ -d /shared ] || { mkdir /shared && touch "$DIR/made-shared"; } # the mount point, empty here
		local m="hostname head; mount --bind $DIR/shared /shared; mount --bind $DIR/etc /etc/slurm;"
		m+=" mount --bind $DIR/hosts /etc/hosts;"
		for p in $HEAD_MOUNTS; do m+=" mount --bind $DIR/head/${p%%:*} ${p#*:};"; done
		ip netns exec lsst-head unshare --mount --uts --propagation private sh -ec "$m exec sleep infinity" \
			</dev/null >"$DIR/log/head-boot.log" 2>&1 &
		echo $! >"$DIR/run/head.pid"
		wait_until 10 ours "$DIR/run/head.pid" sleep || die "the head node did not boot: $(cat "$DIR/log/head-boot.log")"
	fi
	# ours, not running: after a restart of this machine a stale pid file can name a host daemon
	if ! ours "$DIR/head/munge-run/munged.pid" munged >/dev/null; then
		rm -f "$DIR/head/munge-run/munged.pid" "$DIR"/head/munge-run/munge.socket.2*
		on head runuser -u munge -- /usr/sbin/munged
	fi
	wait_until 20 on head bash -c 'munge -n | unmunge' || die "munge does not answer on the head node"
	local db=$DIR/head/mysql run=$DIR/head/mysql-run
	mkdir -p "$db" "$run"
	chown mysql:mysql "$db" "$run"
	[ -d "$db/mysql" ] || mariadb-install-db --no-defaults --user=mysql --datadir="$db" >"$DIR/log/mariadb-install.log" 2>&1
	if ! ours "$run/mysqld.pid" mariadbd >/dev/null; then
		on head nohup mariadbd --no-defaults --user=mysql --datadir="$db" --socket="$run/mysqld.sock" \
			--pid-file="$run/mysqld.pid" --port=7306 --bind-address=127.0.0.1 --skip-name-resolve \
			--log-error="$DIR/log/mariadb.log" </dev/null >/dev/null 2>&1 &
		wait_until 60 mariadb-admin --no-defaults --socket="$run/mysqld.sock" ping || die "MariaDB: see $DIR/log/mariadb.log"
	fi
	mariadb --no-defaults --socket="$run/mysqld.sock" -e "CREATE DATABASE IF NOT EXISTS slurm_acct_db;
		CREATE USER IF NOT EXISTS 'slurm'@'127.0.0.1' IDENTIFIED BY 'slurm';
		GRANT ALL ON slurm_acct_db.* TO 'slurm'@'127.0.0.1';"
	ours "$DIR/run/slurmdbd.pid" slurmdbd >/dev/null || on head slurmdbd
	wait_until 60 on head sacctmgr -n list cluster || die "slurmdbd: see $DIR/log/slurmdbd.log"
	on head sacctmgr -n -P list cluster format=cluster | grep -qx lsstcluster || on head sacctmgr -i add cluster lsstcluster >/dev/null
	on head sacctmgr -n -P list account format=account | grep -qx lsst ||
		on head sacctmgr -i add account lsst Cluster=lsstcluster Description=tests Organization=tests >/dev/null
	on head sacctmgr -n -P list assoc user=root account=lsst format=user | grep -qx root ||
		on head sacctmgr -i add user root Account=lsst DefaultAccount=lsst Cluster=lsstcluster >/dev/null
	ours "$DIR/run/slurmctld.pid" slurmctld >/dev/null || on head slurmctld
	mkdir -p /run/sshd
	ours "$DIR/run/sshd.pid" sshd >/dev/null || on head /usr/sbin/sshd -f "$DIR/ssh/sshd_config" -E "$DIR/log/sshd.log"
	# OnNodeConfigured of the head node; no internet here: the downloads come from the mirror
	printf 'cfn_node_type=HeadNode\ncfn_cluster_user=root\n' >"$DIR/head/cfnconfig"
	# shellcheck disable=SC2086  # BOOTSTRAP_ARGS are words
	on head env -i HOME="$DIR/head/home" PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
		LSST_ON_AWS_CFNCONFIG="$DIR/head/cfnconfig" LSST_ON_AWS_TOOLS="$DIR/head/tools" \
		PIP_NO_INDEX=1 PIP_FIND_LINKS="$DIR/mirror/wheels" UV_PYTHON_DOWNLOADS_JSON_URL="$DIR/mirror/python-downloads.json" \
		bash "$DIR/run/on-node-configured.sh" $BOOTSTRAP_ARGS >"$DIR/log/head-bootstrap.log" 2>&1 ||
		die "the head node's bootstrap failed: $(tail -5 "$DIR/log/head-bootstrap.log")"
}

node_up() {
	local n=$1 r=$DIR/nodes/$1/root up
	ours "$DIR/run/$n.pid" node-init >/dev/null && return 0
	rm -rf "$DIR/nodes/$n" # a node that comes back is a new instance: a new disk
	mkdir -p "$DIR/nodes/$n/upper" "$DIR/nodes/$n/work" "$r" "$DIR/log/$n"
	# in the node's own mount namespace: its overlay root, /shared, the cluster's Slurm config, then pivot_root
	ip netns exec "lsst-$n" unshare --mount --uts --pid --fork --propagation private sh -ec "
		mount -t overlay overlay -o lowerdir=$BASE,upperdir=$DIR/nodes/$n/upper,workdir=$DIR/nodes/$n/work $r
		mount --bind $DIR/shared $r/shared; mount --bind $DIR/etc $r/etc/slurm; mount --bind $DIR/hosts $r/etc/hosts
		mount --bind $DIR/log/$n $r/var/log/slurm; mount --rbind /dev $r/dev
		mount -t proc proc $r/proc; mount -t sysfs sysfs $r/sys; mount -t tmpfs -o size=1m cgroup $r/sys/fs/cgroup
		cp $DIR/head/munge-etc/munge.key $r/etc/munge/munge.key
		install -m 755 $DIR/run/node-init $r/sbin/node-init
		install -m 755 $DIR/run/on-node-configured.sh $r/opt/lsst-on-aws/on-node-configured.sh
		cd $r; mkdir -p .oldroot; pivot_root . .oldroot; exec /sbin/node-init $n" \
		</dev/null >>"$DIR/log/$n/boot.log" 2>&1 &
	up=$!
	wait_until 10 grep -q . "/proc/$up/task/$up/children" || die "$n did not boot: $(tail -3 "$DIR/log/$n/boot.log")"
	awk '{print $1}' "/proc/$up/task/$up/children" >"$DIR/run/$n.pid" # this machine's pid of the node's PID 1
	wait_until 10 ours "$DIR/run/$n.pid" node-init || die "$n did not boot: $(tail -3 "$DIR/log/$n/boot.log")"
}

start() {
	[ "$(id -u)" = 0 ] || die "must run as root"
	local t0=$SECONDS n st deadline
	install_packages "${HOST_PACKAGES[@]}"
	build_rootfs
	build_mirror
	local conf_before
	conf_before=$(cat "$DIR/etc/slurm.conf" 2>/dev/null || true)
	configure
	network
	head_up
	# a running cluster whose settings changed reads them again
	[ "$conf_before" = "$(cat "$DIR/etc/slurm.conf")" ] || on head scontrol reconfigure
	for n in "${NODES[@]}"; do node_up "$n"; done
	# every compute node registered and idle; one that was DOWN (crashed, booted again) is resumed
	deadline=$((SECONDS + 120))
	while :; do
		st=$(on head sinfo -h -N -o '%N %T' 2>/dev/null | sort -u) || true
		[ "$(echo "$st" | grep -cE ' (idle|mixed|allocated)$')" = ${#NODES[@]} ] && break
		for n in $(echo "$st" | awk '$2 ~ /^(down|drain)/ {print $1}'); do
			on head scontrol update nodename="$n" state=resume 2>/dev/null || true
		done
		for n in "${NODES[@]}"; do
			ours "$DIR/run/$n.pid" node-init >/dev/null || die "$n stopped while booting: $(tail -3 "$DIR/log/$n/boot.log") (see $DIR/log/$n/)"
		done
		[ $SECONDS -lt $deadline ] || die "compute nodes not idle: $st (see $DIR/log)"
		sleep 0.5
	done
	wait_until 20 ssh_answers || die "ssh to the head node ($UPLINK.2) does not answer; see $DIR/log/sshd.log"
	say "up in $((SECONDS - t0)) s: head node $UPLINK.2 (ssh root, key $DIR/ssh/id_ed25519), $(echo "$st" | tr '\n' ' ')"
}

ssh_answers() {
	ssh -i "$DIR/ssh/id_ed25519" -o IdentitiesOnly=yes -o BatchMode=yes -o ConnectTimeout=5 \
		-o UserKnownHostsFile="$DIR/ssh/known_hosts" -o StrictHostKeyChecking=yes "root@$UPLINK.2" true
}

stop() {
	local n pg=$DIR/shared/lsst-on-aws-registry bin
	for n in "${NODES[@]}"; do halt "$DIR/run/$n.pid" node-init; done
	# the registry's PostgreSQL, which the head node's bootstrap started (its data stays on /shared)
	bin=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1)
	if [ -s "$pg/postmaster.pid" ] && [ -n "$bin" ]; then
		runuser -u postgres -- "$bin/pg_ctl" -D "$pg" -m fast -w stop >/dev/null 2>&1 || true
	fi
	halt "$DIR/run/sshd.pid" sshd
	halt "$DIR/run/slurmctld.pid" slurmctld
	halt "$DIR/run/slurmdbd.pid" slurmdbd
	halt "$DIR/head/mysql-run/mysqld.pid" mariadbd
	halt "$DIR/head/munge-run/munged.pid" munged
	halt "$DIR/run/head.pid" sleep
	for n in "${NODES[@]}" head; do
		has_netns "lsst-$n" || continue
		[ -z "$(ip netns pids "lsst-$n")" ] || die "processes left on $n: $(ip netns pids "lsst-$n" | tr '\n' ' ')"
		ip netns del "lsst-$n"
	done
	ip link del lsst-laptop 2>/dev/null || true
	if [ -f "$DIR/made-shared" ]; then rmdir /shared && rm "$DIR/made-shared"; fi
	! grep -q " $DIR/" /proc/self/mountinfo || die "mounts left under $DIR"
	# instances' disks and the cluster's state go, as with terminated instances; the shared storage stays
	rm -rf "$DIR/nodes" "$DIR/head/state" "$DIR/head/mysql" "$DIR/head/mysql-run" "$DIR/run"
	say "stopped"
}

status() {
	local n rc=0
	ssh_answers || { echo "ssh: no answer"; rc=1; }
	on head sinfo -N -o '%N %P %T %E' 2>/dev/null || return 1
	for n in "${NODES[@]}"; do
		on head sinfo -h -n "$n" -o %T 2>/dev/null | grep -qE '^(idle|mixed|allocated)' || rc=1
	done
	return $rc
}

case "${1:-}" in
start) start ;;
stop) stop ;;
status) status ;;
exec)
	[ $# -ge 3 ] || die "usage: $0 exec NODE CMD..."
	n=$2
	shift 2
	on "$n" "$@"
	;;
crash)
	p=$(ours "$DIR/run/${2:-}.pid" node-init) || die "no running compute node '${2:-}'"
	kill -KILL "$p"
	say "lost ${2}: killed its PID 1 (pid $p here) and so every process on it"
	;;
unplug) ip link set lsst-laptop down && say "the laptop's link to the head node is down" ;;
plug) ip link set lsst-laptop up && say "the laptop's link to the head node is up" ;;
*)
	echo "usage: $0 start|stop|status|exec NODE CMD...|crash NODE|unplug|plug" >&2
	exit 2
	;;
esac
