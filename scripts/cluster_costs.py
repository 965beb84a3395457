"""Snakemake adapter: the fetched cost breakdown, head node and storage paid over the cluster's lifetime."""

import json
from pathlib import Path

import pandas as pd

from lsst_on_aws.accounting.model import with_cluster_lifetime
from lsst_on_aws.accounting.prices import PriceError, price_lookup
from lsst_on_aws.logs import fail, to_log

cluster, settings = snakemake.params.cluster, snakemake.params.costs
with to_log(snakemake.log[0]) as log:
    teardown = json.loads(Path(snakemake.input.teardown).read_text())
    if not Path(snakemake.params.breakdown).exists():
        fail(log, f"Cluster costs: {snakemake.params.breakdown} was not fetched (config key remote.fetch)")
    breakdown = pd.read_csv(snakemake.params.breakdown)
    lifetime_h = teardown.get("lifetime_h")
    if lifetime_h is None:
        log.info(
            "cluster %s was %s: no lifetime to pay, the run's breakdown as is",
            teardown["cluster"],
            teardown["action"],
        )
        table = breakdown
    else:
        prices = price_lookup(
            settings, cluster["region"], snakemake.input.prices, snakemake.params.price_cache
        )
        try:
            head, _ = prices(cluster["head_node_instance_type"])
        except PriceError as err:
            fail(log, f"Cluster costs: {err} (config keys cluster.head_node_instance_type, costs.prices)")
        table = with_cluster_lifetime(
            breakdown, lifetime_h, head, cluster["shared_storage_gb"], settings["storage_usd_per_gb_month"]
        )
        log.info(
            "cluster %s lived %.3f h: total %.2f USD", teardown["cluster"], lifetime_h, table["usd"].iloc[-1]
        )
    table.to_csv(snakemake.output.table, index=False)
