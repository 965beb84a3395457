"""Snakemake adapter: send the workflow and the resolved config to the head node."""

import json
from pathlib import Path

import yaml

from lsst_on_aws import provenance
from lsst_on_aws.cloud import lifecycle, remote
from lsst_on_aws.logs import fail, to_log, to_terminal

config = snakemake.params.config
with to_log(snakemake.log[0]) as log:
    record = json.loads(Path(snakemake.input.created).read_text())
    node = lifecycle.node_from_record(config, record, snakemake.params.known_hosts)
    directory = config["remote"]["directory"]
    with open(snakemake.output.config, "w") as out:
        out.write("# The resolved configuration of the run on the head node, written by the control plane\n")
        yaml.safe_dump(snakemake.params.data_plane, out, sort_keys=False)
    # the copy there has no .git: what it was synced from, for the run's bundle
    source = provenance.git_state(Path.cwd())
    Path(snakemake.output.source).write_text(json.dumps(source, indent=2) + "\n")
    try:
        remote.sync(node, str(Path.cwd()), directory, excludes=snakemake.params.excludes)
        remote.run(node, f"mkdir -p {directory}/{remote.STATE_DIR}")
        remote.copy_to(node, snakemake.output.config, f"{directory}/{remote.RUN_CONFIG}")
        remote.copy_to(node, snakemake.output.source, f"{directory}/{snakemake.params.source_record}")
    except remote.RemoteError as err:
        fail(log, f"Sync to the head node failed: {err}")
    dirty = " with uncommitted changes" if source["dirty"] else ""
    to_terminal(f"workflow (commit {source['commit'][:12]}{dirty}) synced to {node.describe()}:{directory}")
    synced = {"head_node": node.describe(), "directory": directory, "when": lifecycle.now(), **source}
    Path(snakemake.output.record).write_text(json.dumps(synced, indent=2) + "\n")
