# The control plane's helpers (control-plane.smk): its ledgers and targets, what
# must pass before a cluster is created, the config its steps and the run on the
# head node get, the files the sync sends, and the teardown after a failure.

import json

from snakemake.logging import logger

from lsst_on_aws.cloud import bootstrap, lifecycle


def control_targets():
    """A drive of the cluster to its end: the teardown record, the last step of driving
    the run, and the run's costs over the cluster's life.
    """
    return [f"{CLUSTER_DIR}/teardown.json", f"{CLUSTER_DIR}/costs.csv"]


# the control plane's ledgers beside its records, kept by its steps and hooks (no rule makes
# them): that a cluster was asked for (written before creation, so a failure even during it
# finds the cluster to tear down), and that the teardown after a failure deleted it (so that a
# rerun creates a new one)
REQUESTED_LEDGER = f"{CLUSTER_DIR}/.requested"
# that a run was started on the cluster (written by remote_run, gone with the cluster's records)
STARTED_LEDGER = f"{CLUSTER_DIR}/.run-started"
DELETED_MARKER = f"{CLUSTER_DIR}/.deleted-after-failure"
KNOWN_HOSTS = f"{CLUSTER_DIR}/known_hosts"
# the control plane's own lock (an flock, gone with its process), and the folder of Snakemake's
# locks, which a killed Snakemake leaves behind
CONTROL_LOCK = ".lsst-on-aws/control-plane.lock"
SNAKEMAKE_LOCKS = ".snakemake/locks"
# what the sync never sends to the head node, and never deletes there: the run's own
# products, environments and caches
SYNC_EXCLUDES = [
    ".git/",
    ".venv/",
    ".snakemake/",
    "results/",
    "logs/",
    "resources/",
    "__pycache__/",
    ".pytest_cache/",
    ".ruff_cache/",
]
# what deletes what a teardown leaves, named to the user
DELETE_TARGETS = {
    "delete_cluster": f"{CLUSTER_DIR}/deleted.json",
    "delete_storage": "results/storage/{id}/deleted.json",
}


def creation_inputs(wildcards=None):
    """What must pass before a cluster is created: the budget check and, for pcluster, the validation;
    and the note that the last cluster was deleted after a failure, when there is one (a newer
    note than the creation record creates the cluster again).
    """
    inputs = {"estimate": "results/costs/estimate.json"}
    if config["remote"]["provider"] == "pcluster":
        inputs = {
            "yaml": "results/cluster/cluster-config.yaml",
            "validation": "results/cluster/validation.json",
        }
    if Path(DELETED_MARKER).exists():
        inputs["deleted"] = DELETED_MARKER
    return inputs


def control_plane_config(always=False):
    """The config sections the control plane's steps use (teardown "always" when asked)."""
    remote = dict(config["remote"])
    if always:
        remote["teardown"] = "always"
    budget = {key: config["budget"][key] for key in ("max_usd", "alarm_emails")}
    costs = {"tag_key": config["costs"]["tag_key"]}
    return {
        "cluster": config["cluster"],
        "remote": remote,
        "budget": budget,
        "costs": costs,
    }


def data_plane_config():
    """The resolved config the run on the head node uses: this one, every key filled in, the
    registry the cluster serves (cluster.registry), and no path to the laptop's SSH key.
    """
    butler = config["butler"] | {"registry": bootstrap.registry_url(config)}
    # the laptop's key to the head node stays on the laptop
    head_node = config["remote"]["head_node"] | {"ssh_key_file": ""}
    remote = config["remote"] | {"head_node": head_node}
    return dict(config) | {"butler": butler, "remote": remote}


def teardown_after_failure():
    """After a failed control-plane run, delete (or keep) the cluster as remote.teardown says, and say so."""
    if not lifecycle.was_requested(REQUESTED_LEDGER):
        return  # nothing was created
    created = rules.create_cluster.output.record
    going_on = lifecycle.run_goes_on(config, created, STARTED_LEDGER, KNOWN_HOSTS)
    if going_on:
        logger.warning(
            f"The control plane stopped, but cluster {CLUSTER_NAME} is kept: {going_on}."
            " Rerun the same command to follow the run again and fetch its results;"
            f" remote.teardown ({config['remote']['teardown']}) applies once the run has ended."
        )
        return
    record = lifecycle.teardown(
        config,
        run_ok=False,
        on_progress=logger.warning,
        targets=DELETE_TARGETS,
        after_failure=True,
    )
    if lifecycle.record_gone(record, REQUESTED_LEDGER):
        Path(DELETED_MARKER).write_text(json.dumps(record, indent=2) + "\n")
        logger.warning(
            f"The run failed: cluster {CLUSTER_NAME} was deleted (remote.teardown:"
            f" {record['policy']}). Rerun to start again on a new cluster."
        )
