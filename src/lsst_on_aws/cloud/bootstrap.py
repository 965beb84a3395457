"""The head node's bootstrap: what the data plane needs on a fresh ParallelCluster head node.

ParallelCluster runs ``HeadNode.CustomActions.OnNodeConfigured`` as root once
the node is configured, from an ``s3://`` URL. This script installs what
``make env`` and the sync need (Python 3.12 with venv, make, rsync, git) with
the OS's package manager, and makes the folders the workflow writes on the
shared storage (``remote.directory``, an absolute ``stack.prefix``) belong to
the cluster's default user, the one the control plane logs in as. It is
idempotent: a rerun (or a second cluster on the same storage) changes
nothing that is already right.
"""

from __future__ import annotations

from lsst_on_aws.cloud.cluster import ClusterConfigError

SCRIPT = r"""#!/bin/bash
# lsst-on-aws head-node bootstrap (ParallelCluster OnNodeConfigured), run as root.
# Arguments: the folders on the shared storage that the cluster user must own.
set -euo pipefail
# pcluster's node settings: cfn_node_type, cfn_cluster_user, ...
CFNCONFIG=${LSST_ON_AWS_CFNCONFIG:-/etc/parallelcluster/cfnconfig}
# shellcheck source=/dev/null
. "$CFNCONFIG"
[ "${cfn_node_type:-HeadNode}" = HeadNode ] || exit 0
user=${cfn_cluster_user:?cfn_cluster_user is not set in $CFNCONFIG}

. "${LSST_ON_AWS_OS_RELEASE:-/etc/os-release}"
packages="make rsync git"
case "$ID" in
  amzn|rhel|rocky|almalinux)
    dnf install -y $packages python3.12 python3.12-pip ;;
  ubuntu|debian)
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -q
    if ! apt-get install -y -q $packages python3.12 python3.12-venv; then
      # Ubuntu 22.04: Python 3.12 from the deadsnakes archive
      apt-get install -y -q software-properties-common
      add-apt-repository -y ppa:deadsnakes/ppa
      apt-get update -q
      apt-get install -y -q $packages python3.12 python3.12-venv
    fi ;;
  *)
    echo "lsst-on-aws bootstrap: no package recipe for OS '$ID';" \
      "use a cluster.custom_ami with Python 3.12, make and rsync" >&2
    exit 1 ;;
esac
python3.12 -c 'import venv' # make env builds the workflow's .venv with it

for folder in "$@"; do
  mkdir -p "$folder"
  chown "$user": "$folder"
done
echo "lsst-on-aws bootstrap: Python 3.12, make, rsync, git; $* owned by $user"
"""


def script_uri(config: dict) -> str | None:
    """Where the bootstrap script goes (in ``cluster.data_bucket``); None if ``cluster.bootstrap`` is off."""
    cluster = config["cluster"]
    if not cluster["bootstrap"]:
        return None
    if not cluster["data_bucket"]:
        raise ClusterConfigError(
            "config key cluster.data_bucket is empty: the head node's bootstrap script is read from it"
            " (or set cluster.bootstrap: false, with a cluster.custom_ami that has Python 3.12, make, rsync)"
        )
    return f"s3://{cluster['data_bucket']}/lsst-on-aws/{cluster['name']}/bootstrap.sh"


def folders(config: dict) -> list[str]:
    """The folders on the shared storage the cluster user must own: the workflow's, and the stacks'."""
    wanted = [config["remote"]["directory"]]
    if config["stack"]["prefix"].startswith("/"):
        wanted.append(config["stack"]["prefix"])
    return wanted
