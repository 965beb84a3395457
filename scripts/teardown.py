"""Snakemake adapter: delete or keep the cluster as remote.teardown says (teardown, after its run;
delete_cluster, whatever became of it); fail if the remote run failed.
"""

import json
from pathlib import Path

from lsst_on_aws.cloud import lifecycle, remote
from lsst_on_aws.cloud.providers import ClusterError
from lsst_on_aws.logs import fail, progress, to_log

config, params = snakemake.params.config, snakemake.params
with to_log(snakemake.log[0]) as log:
    run = json.loads(Path(snakemake.input.run).read_text()) if params.after_run else None
    run_ok = None if run is None else run["rc"] == 0
    try:
        record = lifecycle.teardown(config, run_ok, on_progress=progress(log), targets=params.targets)
    except ClusterError as err:
        fail(log, f"Teardown failed: {err}")
    if params.after_run and record["action"] == "deleted":
        created_at = json.loads(Path(snakemake.input.created).read_text())["created_at"]
        record["created_at"] = created_at
        record["lifetime_h"] = round(lifecycle.lifetime_hours(created_at, record["deleted_at"]), 4)
    lifecycle.record_gone(record, params.ledger)
    if params.after_run and record["action"] in ("kept", "left running"):
        # the cluster's fate is decided: its dead man's switch stands down
        node = lifecycle.node_from_created(config, snakemake.input.created, params.known_hosts)
        try:
            remote.mark_settled(node, config["remote"]["directory"])
        except remote.RemoteError as err:
            log.warning(
                "could not tell the head node that the cluster is to be kept (%s): its dead man's switch"
                " deletes it remote.abandon_hours after the run's end; rerun to try again",
                err,
            )
            raise SystemExit(1) from err
    Path(snakemake.output.record).write_text(json.dumps(record, indent=2) + "\n")
    if run_ok is False:
        fail(
            log,
            f"The run on the cluster failed (exit status {run['rc']}); its logs were fetched into logs/"
            f" and .lsst-on-aws/run.log (cluster {record['cluster']}: {record['action']}). Fix the cause"
            " and rerun.",
        )
