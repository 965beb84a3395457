"""Snakemake adapter: bring the run's results, logs and report back from the head node."""

import json
from pathlib import Path

from lsst_on_aws.cloud import lifecycle, remote
from lsst_on_aws.logs import fail, to_log, to_terminal

config = snakemake.params.config
settings = config["remote"]
with to_log(snakemake.log[0]) as log:
    node = lifecycle.node_from_created(config, snakemake.input.created, snakemake.params.known_hosts)
    paths = [*settings["fetch"], f"{remote.STATE_DIR}/run.log"]
    try:
        got = remote.fetch(node, settings["directory"], paths, str(Path.cwd()))
    except remote.RemoteError as err:
        fail(log, f"Fetching the results failed: {err}")
    missing = sorted(set(paths) - set(got))
    to_terminal(f"fetched {', '.join(got) or 'nothing'} from {node.describe()}")
    if missing:
        log.warning("not on the head node: %s", ", ".join(missing))
    record = {"fetched": got, "missing": missing, "when": lifecycle.now()}
    Path(snakemake.output.record).write_text(json.dumps(record, indent=2) + "\n")
