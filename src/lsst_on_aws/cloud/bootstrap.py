"""The cluster's bootstrap: what the data plane needs on every node of a fresh ParallelCluster.

ParallelCluster runs an ``OnNodeConfigured`` action as root once a node is
configured, from an ``s3://`` URL, on the head node (``HeadNode.CustomActions``)
and on each queue's compute nodes (``SlurmQueues[].CustomActions``); the
script reads which it is from ``cfn_node_type`` in
``/etc/parallelcluster/cfnconfig``. The rendered cluster config gives every
node type the same script and arguments (:func:`arguments`).

Compute nodes share only the shared storage with the head node: their own
``/usr`` has no Python 3.12 (Amazon Linux 2023's is 3.9), and the Slurm plugin
starts every job with the head node's interpreter. So the head node installs a
relocatable Python (python-build-standalone, by ``uv python install``) on the
shared storage, at ``<python_dir>/<version>``; the workflow's ``.venv`` and the
stack's venv are made from it (``make env PYTHON_PREFIX=...``) and run on every
node. The head node also gets make, rsync and git (only those missing, with
the OS's package manager) and gives the cluster user the workflow's folders.
A compute node checks that the shared interpreter runs there (its C
libraries load), or fails to configure, which ParallelCluster reports and
replaces, before any job reaches it. Idempotent: a rerun, a replaced node, or
a second cluster on the same storage changes nothing that is already right.
"""

from __future__ import annotations

from lsst_on_aws.cloud.cluster import ClusterConfigError

# The workflow's Python and the uv that installs it (the Makefile's UV_VERSION)
PYTHON_VERSION = "3.12"
UV_VERSION = "0.13.8"
# the Butler registry's PostgreSQL on the head node: the name every node knows it by, its port, its
# database
REGISTRY_HOST = "lsst-on-aws-registry"
REGISTRY_PORT = 5432
REGISTRY_DB = "lsst_on_aws"

SCRIPT = r"""#!/bin/bash
# lsst-on-aws node bootstrap (ParallelCluster OnNodeConfigured, every node type), run as root.
# Arguments: --python-dir DIR [--registry DIR], then the folders on the shared storage the cluster
# user must own.
set -euo pipefail
PYTHON_VERSION=@PYTHON_VERSION@
UV_VERSION=@UV_VERSION@
# pcluster's node settings: cfn_node_type, cfn_cluster_user, ...
CFNCONFIG=${LSST_ON_AWS_CFNCONFIG:-/etc/parallelcluster/cfnconfig}
# shellcheck source=/dev/null
. "$CFNCONFIG"
say() { echo "lsst-on-aws bootstrap ($(hostname), ${cfn_node_type:-HeadNode}): $*"; }
[ "${1:-}" = --python-dir ] || { echo "usage: $0 --python-dir DIR [--registry DIR] [FOLDER...]" >&2; exit 2; }
python_dir=$2
shift 2
registry=""
if [ "${1:-}" = --registry ]; then registry=$2; shift 2; fi
prefix=$python_dir/$PYTHON_VERSION        # a link to the installed interpreter's prefix
python=$prefix/bin/python$PYTHON_VERSION
# what the workflow imports that needs the node's C libraries
probe='import ssl, sqlite3, ctypes, zlib, lzma, bz2, venv'

# every node reaches the registry's database by one name, whichever head node serves it
registry_name() {
  [ -n "$registry" ] || return 0
  for _ in $(seq "$((${LSST_ON_AWS_PYTHON_WAIT:-300} / 5))"); do
    [ -s "$registry.host" ] && break
    sleep 5
  done
  if [ ! -s "$registry.host" ]; then
    say "no $registry.host on the shared storage: the head node did not start the registry" >&2
    exit 1
  fi
  grep -q " @REGISTRY_HOST@\$" /etc/hosts || echo "$(cat "$registry.host") @REGISTRY_HOST@" >> /etc/hosts
}

if [ "${cfn_node_type:-HeadNode}" != HeadNode ]; then
  # a compute node: the head node put the interpreter on the shared storage before any compute
  # node was started; give a slow shared filesystem a few minutes to show it
  for _ in $(seq "$((${LSST_ON_AWS_PYTHON_WAIT:-300} / 5))"); do [ -x "$python" ] && break; sleep 5; done
  [ -x "$python" ] ||
    { say "no $python on the shared storage: the head node's bootstrap did not install it" >&2; exit 1; }
  "$python" -c "$probe" || { say "$python does not run on this node" >&2; exit 1; }
  registry_name
  say "$("$python" --version) from the shared storage runs here${registry:+; the registry is @REGISTRY_HOST@}"
  exit 0
fi
user=${cfn_cluster_user:?cfn_cluster_user is not set in $CFNCONFIG}

# make, rsync and git, and a python3 with venv to bootstrap uv: only what is missing
missing=""
for tool in make rsync git; do command -v "$tool" >/dev/null || missing="$missing $tool"; done
python3 -c 'import venv, ensurepip' 2>/dev/null || missing="$missing python3-venv"
pg_bin() { # PostgreSQL's server programs: on PATH (Amazon Linux, RHEL), or Debian's and PGDG's folders
  dirname "$(command -v initdb || ls -d /usr/lib/postgresql/*/bin/initdb /usr/pgsql-*/bin/initdb 2>/dev/null |
    sort -V | tail -1)"
}
[ -z "$registry" ] || [ -x "$(pg_bin)/initdb" ] || missing="$missing postgresql-server"
if [ -n "$missing" ]; then
  . "${LSST_ON_AWS_OS_RELEASE:-/etc/os-release}"
  case "$ID" in
    amzn|rhel|rocky|almalinux)
      missing=${missing/python3-venv/python3 python3-pip}
      dnf install -y ${missing/postgresql-server/postgresql15-server postgresql15-contrib} ;;
    ubuntu|debian)
      export DEBIAN_FRONTEND=noninteractive
      apt-get update -q
      apt-get install -y -q ${missing/postgresql-server/postgresql} ;;
    *)
      echo "lsst-on-aws bootstrap: no package recipe for OS '$ID' (missing:$missing);" \
        "use a cluster.custom_ami that has make, rsync, git and python3 with venv" >&2
      exit 1 ;;
  esac
fi

# Python on the shared storage, relocatable (python-build-standalone, needs only glibc), by uv
if ! "$python" -c "$probe" 2>/dev/null; then
  uv=$(command -v uv || true)
  if [ -z "$uv" ]; then
    tools=${LSST_ON_AWS_TOOLS:-/opt/lsst-on-aws}/uv
    [ -x "$tools/bin/uv" ] || { python3 -m venv "$tools" && "$tools/bin/pip" install -q "uv==$UV_VERSION"; }
    uv=$tools/bin/uv
  fi
  UV_PYTHON_DOWNLOADS=automatic "$uv" python install "$PYTHON_VERSION" --install-dir "$python_dir/uv" --no-bin
  found=$(UV_PYTHON_INSTALL_DIR="$python_dir/uv" \
    "$uv" python find --managed-python --no-project "$PYTHON_VERSION")
  # the interpreter's prefix (.../bin/pythonX.Y -> ...), linked at one path that outlives upgrades
  ln -sfn "$(dirname "$(dirname "$(readlink -f "$found")")")" "$prefix"
  "$python" -c "$probe"
fi

for folder in "$@" "$python_dir"; do
  mkdir -p "$folder"
  chown "$user": "$folder"
done

# PostgreSQL for the Butler registry (jobs on many nodes write it at once; SQLite over NFS is not
# safe for that): its data on the shared storage, so a later cluster on the same storage serves the
# same repository; reachable from the cluster's nodes only (ParallelCluster's security groups),
# by the name @REGISTRY_HOST@, which each node maps to the head node that serves it.
if [ -n "$registry" ]; then
  bin=$(pg_bin)
  mkdir -p "$registry"
  chown postgres: "$registry"
  chmod 700 "$registry"
  if [ ! -s "$registry/PG_VERSION" ]; then
    runuser -u postgres -- "$bin/initdb" -D "$registry" -A trust -U postgres -E UTF8 --locale=C >/dev/null
    echo "host all all samenet trust" >> "$registry/pg_hba.conf"
  fi
  if ! runuser -u postgres -- "$bin/pg_ctl" -D "$registry" status >/dev/null 2>&1; then
    runuser -u postgres -- "$bin/pg_ctl" -D "$registry" -l "$registry/server.log" -w -t 120 \
      -o "-p @REGISTRY_PORT@ -k $registry -c listen_addresses='*'" start >/dev/null
  fi
  psql_() { runuser -u postgres -- psql -h "$registry" -p @REGISTRY_PORT@ -v ON_ERROR_STOP=1 -qAt "$@"; }
  [ "$(psql_ -d postgres -c "select 1 from pg_roles where rolname = '$user'")" = 1 ] ||
    psql_ -d postgres -c "create role \"$user\" login"
  [ "$(psql_ -d postgres -c "select 1 from pg_database where datname = '@REGISTRY_DB@'")" = 1 ] ||
    psql_ -d postgres -c "create database @REGISTRY_DB@ owner \"$user\""
  psql_ -d @REGISTRY_DB@ -c "create extension if not exists btree_gist"
  # the head node's address on the cluster's network: what its own name resolves to there
  getent ahostsv4 "$(hostname)" | awk '$1 !~ /^127\./ {print $1; exit}' > "$registry.host.tmp"
  [ -s "$registry.host.tmp" ] || hostname -I | awk '{print $1}' > "$registry.host.tmp"
  mv "$registry.host.tmp" "$registry.host"
  registry_name
  say "the Butler registry: postgresql://$user@@REGISTRY_HOST@:@REGISTRY_PORT@/@REGISTRY_DB@ ($registry)"
fi
say "$("$python" --version) at $python, make, rsync, git; $* owned by $user"
"""
for _key, _value in {
    "@PYTHON_VERSION@": PYTHON_VERSION,
    "@UV_VERSION@": UV_VERSION,
    "@REGISTRY_HOST@": REGISTRY_HOST,
    "@REGISTRY_PORT@": str(REGISTRY_PORT),
    "@REGISTRY_DB@": REGISTRY_DB,
}.items():
    SCRIPT = SCRIPT.replace(_key, _value)


def script_uri(config: dict) -> str | None:
    """Where the bootstrap script goes (in ``cluster.data_bucket``); None if ``cluster.bootstrap`` is off."""
    cluster = config["cluster"]
    if not cluster["bootstrap"]:
        return None
    if not cluster["data_bucket"]:
        raise ClusterConfigError(
            "config key cluster.data_bucket is empty: the nodes' bootstrap script is read from it"
            " (or set cluster.bootstrap: false, with a cluster.custom_ami that has Python 3.12"
            " at cluster.python_dir, make and rsync)"
        )
    return f"s3://{cluster['data_bucket']}/lsst-on-aws/{cluster['name']}/bootstrap.sh"


def folders(config: dict) -> list[str]:
    """The folders on the shared storage the cluster user must own: the workflow's, and the stacks'."""
    wanted = [config["remote"]["directory"]]
    if config["stack"]["prefix"].startswith("/"):
        wanted.append(config["stack"]["prefix"])
    return wanted


def arguments(config: dict) -> list[str]:
    """The script's arguments, the same on every node type: where Python goes, the registry's data
    (when the cluster serves one), and the folders.
    """
    registry = ["--registry", config["cluster"]["registry_dir"]] if serves_registry(config) else []
    return ["--python-dir", config["cluster"]["python_dir"], *registry, *folders(config)]


def serves_registry(config: dict) -> bool:
    """Whether the cluster's head node serves the Butler registry (``cluster.registry``)."""
    choice = config["cluster"]["registry"]
    return choice == "postgresql" or (choice == "auto" and config["remote"]["provider"] == "pcluster")


def registry_url(config: dict) -> str:
    """The Butler registry a run on the cluster uses: ``butler.registry`` when it names a database,
    else the head node's PostgreSQL when it serves one, else SQLite.
    """
    if config["butler"]["registry"] != "sqlite" or not serves_registry(config):
        return config["butler"]["registry"]
    user = config["remote"]["head_node"]["user"]
    return f"postgresql://{user}@{REGISTRY_HOST}:{REGISTRY_PORT}/{REGISTRY_DB}"


def python_prefix(config: dict) -> str:
    """The prefix of the interpreter the bootstrap installs on the shared storage (has bin/python3.12)."""
    return f"{config['cluster']['python_dir']}/{PYTHON_VERSION}"


if __name__ == "__main__":  # the script itself, for a node that runs it by hand (and the test cluster)
    print(SCRIPT, end="")
