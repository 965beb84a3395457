"""Snakemake adapter: create (or adopt) the cluster and wait until it is ready."""

import json
from pathlib import Path

import boto3

from lsst_on_aws.cloud import lifecycle
from lsst_on_aws.cloud.providers import ClusterError
from lsst_on_aws.logs import fail, progress, to_log

config, params = snakemake.params.config, snakemake.params
with to_log(snakemake.log[0]) as log:
    report = progress(log)
    lifecycle.mark_requested(params.ledger)
    budgets, account, config_path = None, "", ""
    if params.provider == "pcluster":  # a cluster on AWS: its configuration, and a budget alarm over its tag
        config_path = snakemake.input.yaml
        account = json.loads(Path(snakemake.input.validation).read_text())["account"]
        budgets = boto3.Session(region_name=config["cluster"]["region"]).client("budgets")
    try:
        record = lifecycle.create(config, config_path, on_progress=report, budgets=budgets, account=account)
    except ClusterError as err:
        fail(log, f"Cluster creation failed: {err}")
    report(f"cluster {record['cluster']} is ready; head node {record['head_node']}")
    Path(snakemake.output.record).write_text(json.dumps(record, indent=2) + "\n")
