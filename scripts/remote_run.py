"""Snakemake adapter: run the workflow on the head node, detached, and follow it to its end."""

import json
from pathlib import Path

from lsst_on_aws.cloud import abandon, bootstrap, cluster, lifecycle, remote
from lsst_on_aws.logs import fail, progress, to_log

config = snakemake.params.config
settings = config["remote"]
with to_log(snakemake.log[0]) as log:
    report = progress(log)

    node = lifecycle.node_from_created(config, snakemake.input.created, snakemake.params.known_hosts)
    # {config}: the resolved configuration the sync sent; {python_prefix}: the bootstrap's Python;
    # {partitions}: the cluster's queues the jobs go to
    command = settings["command"].replace("{config}", remote.RUN_CONFIG)
    command = command.replace("{python_prefix}", bootstrap.python_prefix(config))
    command = command.replace("{partitions}", cluster.partitions(config))
    # the dead man's switch: the cluster tears itself down if no control plane settles it in time
    watchdog = ""
    if settings["abandon_hours"]:
        teardown = abandon.teardown_command(
            snakemake.params.python, remote.RUN_CONFIG, snakemake.params.abandoned, snakemake.params.targets
        )
        hours = settings["abandon_hours"]
        watchdog = abandon.watchdog_script(
            settings["directory"], hours, remote.SETTLED, teardown, poll_s=min(60, hours * 180)
        )
    try:
        started = remote.start_detached(node, settings["directory"], command, watchdog=watchdog)
        # from here on, a failure of this machine's control plane keeps the cluster while the run goes on
        lifecycle.mark_started(snakemake.params.started, started["id"])
        how = "following the run already going on" if started["adopted"] else "started"
        where = f"{settings['directory']}/{remote.STATE_DIR}/run.log"
        report(f"{how} on {node.describe()}: {command} (its log: {where})")
        final = remote.follow(
            node,
            settings["directory"],
            poll_s=settings["poll_seconds"],
            timeout_s=3600 * settings["run_timeout_hours"],
            on_progress=report,
            reconnect_s=60 * settings["reconnect_minutes"],
        )
    except remote.RemoteError as err:
        fail(log, f"The run on the head node could not be followed: {err}")
    log.info("last lines of the remote run:\n%s", final["log_tail"][-5000:])
    report(f"the run on {node.describe()} ended with exit status {final['rc']}")
    record = {key: final[key] for key in ("rc", "id", "progress")}
    record |= {"command": command, "head_node": node.describe(), "ended": lifecycle.now()}
    record["log_tail"] = final["log_tail"][-3000:]
    Path(snakemake.output.record).write_text(json.dumps(record, indent=2) + "\n")
