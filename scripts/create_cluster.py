"""Snakemake adapter: create (or adopt) the cluster and wait until it is ready."""

import json
from pathlib import Path

import boto3

from lsst_on_aws import lifecycle
from lsst_on_aws.logs import fail, to_log, to_terminal

config = snakemake.params.config
with to_log(snakemake.log[0]) as log:

    def progress(line: str) -> None:
        log.info("%s", line)
        to_terminal(line)

    folder = Path(lifecycle.cluster_dir(config))
    folder.mkdir(parents=True, exist_ok=True)
    (folder / lifecycle.REQUESTED).write_text(lifecycle.now() + "\n")
    budgets, account = None, ""
    if hasattr(snakemake.input, "validation"):  # a cluster on AWS: a budget alarm over its tag
        account = json.loads(Path(snakemake.input.validation).read_text())["account"]
        budgets = boto3.Session(region_name=config["cluster"]["region"]).client("budgets")
    try:
        config_path = snakemake.input.yaml if hasattr(snakemake.input, "yaml") else ""
        record = lifecycle.create(config, config_path, on_progress=progress, budgets=budgets, account=account)
    except lifecycle.ClusterError as err:
        fail(log, f"Cluster creation failed: {err}")
    progress(f"cluster {record['cluster']} is ready; head node {record['head_node']}")
    Path(snakemake.output.record).write_text(json.dumps(record, indent=2) + "\n")
