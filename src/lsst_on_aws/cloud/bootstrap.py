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

SCRIPT = r"""#!/bin/bash
# lsst-on-aws node bootstrap (ParallelCluster OnNodeConfigured, every node type), run as root.
# Arguments: --python-dir DIR, then the folders on the shared storage the cluster user must own.
set -euo pipefail
PYTHON_VERSION=@PYTHON_VERSION@
UV_VERSION=@UV_VERSION@
# pcluster's node settings: cfn_node_type, cfn_cluster_user, ...
CFNCONFIG=${LSST_ON_AWS_CFNCONFIG:-/etc/parallelcluster/cfnconfig}
# shellcheck source=/dev/null
. "$CFNCONFIG"
say() { echo "lsst-on-aws bootstrap ($(hostname), ${cfn_node_type:-HeadNode}): $*"; }
[ "${1:-}" = --python-dir ] || { echo "usage: $0 --python-dir DIR [FOLDER...]" >&2; exit 2; }
python_dir=$2
shift 2
prefix=$python_dir/$PYTHON_VERSION        # a link to the installed interpreter's prefix
python=$prefix/bin/python$PYTHON_VERSION
# what the workflow imports that needs the node's C libraries
probe='import ssl, sqlite3, ctypes, zlib, lzma, bz2, venv'

if [ "${cfn_node_type:-HeadNode}" != HeadNode ]; then
  # a compute node: the head node put the interpreter on the shared storage before any compute
  # node was started; give a slow shared filesystem a few minutes to show it
  for _ in $(seq "$((${LSST_ON_AWS_PYTHON_WAIT:-300} / 5))"); do [ -x "$python" ] && break; sleep 5; done
  [ -x "$python" ] ||
    { say "no $python on the shared storage: the head node's bootstrap did not install it" >&2; exit 1; }
  "$python" -c "$probe" || { say "$python does not run on this node" >&2; exit 1; }
  say "$("$python" --version) from the shared storage runs here"
  exit 0
fi
user=${cfn_cluster_user:?cfn_cluster_user is not set in $CFNCONFIG}

# make, rsync and git, and a python3 with venv to bootstrap uv: only what is missing
missing=""
for tool in make rsync git; do command -v "$tool" >/dev/null || missing="$missing $tool"; done
python3 -c 'import venv, ensurepip' 2>/dev/null || missing="$missing python3-venv"
if [ -n "$missing" ]; then
  . "${LSST_ON_AWS_OS_RELEASE:-/etc/os-release}"
  case "$ID" in
    amzn|rhel|rocky|almalinux)
      dnf install -y ${missing/python3-venv/python3 python3-pip} ;;
    ubuntu|debian)
      export DEBIAN_FRONTEND=noninteractive
      apt-get update -q
      apt-get install -y -q $missing ;;
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
say "$("$python" --version) at $python, make, rsync, git; $* owned by $user"
""".replace("@PYTHON_VERSION@", PYTHON_VERSION).replace("@UV_VERSION@", UV_VERSION)


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
    """The script's arguments, the same on every node type: where Python goes, and the folders."""
    return ["--python-dir", config["cluster"]["python_dir"], *folders(config)]


def python_prefix(config: dict) -> str:
    """The prefix of the interpreter the bootstrap installs on the shared storage (has bin/python3.12)."""
    return f"{config['cluster']['python_dir']}/{PYTHON_VERSION}"


if __name__ == "__main__":  # the script itself, for a node that runs it by hand (and the test cluster)
    print(SCRIPT, end="")
