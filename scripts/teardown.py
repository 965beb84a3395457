"""Snakemake adapter: delete or keep the cluster as remote.teardown says; fail if the remote run failed."""

import json
from pathlib import Path

from lsst_on_aws import lifecycle
from lsst_on_aws.logs import fail, to_log, to_terminal

config = snakemake.params.config
with to_log(snakemake.log[0]) as log:

    def progress(line: str) -> None:
        log.info("%s", line)
        to_terminal(line)

    # the delete_cluster rule has no run: it deletes whatever became of one
    run = json.loads(Path(snakemake.input.run).read_text()) if hasattr(snakemake.input, "run") else None
    run_ok = None if run is None else run["rc"] == 0
    try:
        record = lifecycle.teardown(config, run_ok, on_progress=progress)
    except lifecycle.ClusterError as err:
        fail(log, f"Teardown failed: {err}")
    created = getattr(snakemake.input, "created", None)  # delete_cluster has none
    if created and Path(created).exists() and record["action"] == "deleted":
        created_at = json.loads(Path(created).read_text())["created_at"]
        record["created_at"] = created_at
        record["lifetime_h"] = round(lifecycle.lifetime_hours(created_at, record["deleted_at"]), 4)
    lifecycle.forget_cluster(config, record)
    Path(snakemake.output.record).write_text(json.dumps(record, indent=2) + "\n")
    if run_ok is False:
        fail(
            log,
            f"The run on the cluster failed (exit status {run['rc']}); its logs were fetched into logs/"
            f" and .lsst-on-aws/run.log (cluster {record['cluster']}: {record['action']}). Fix the cause"
            " and rerun.",
        )
