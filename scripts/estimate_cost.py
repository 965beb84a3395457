"""Snakemake adapter: the pre-flight estimate and the budget check (fails when over budget)."""

import json

from lsst_on_aws.accounting import budget as budgets
from lsst_on_aws.accounting import zones
from lsst_on_aws.accounting.prices import PriceError, price_lookup
from lsst_on_aws.logs import fail, to_log, to_terminal

params = snakemake.params
cluster, budget, settings = params.cluster, params.budget, params.costs
with to_log(snakemake.log[0]) as log:
    try:
        prices = price_lookup(settings, cluster["region"], snakemake.input.prices, params.price_cache)
        on_demand, spot = prices(cluster["compute_instance_type"])
    except PriceError as err:
        fail(log, f"Pre-flight estimate: {err} (config keys cluster.compute_instance_type, costs.prices)")
    try:
        head, _ = prices(cluster["head_node_instance_type"])
    except PriceError as err:
        # a small part of the cost: said, left out, and the type checked by the cluster's validation
        head = None
        said = f"Pre-flight estimate: {err}: the head node is left out of the estimate"
        log.warning("%s", said)
        to_terminal(f"{said} (config keys cluster.head_node_instance_type, costs.prices)")
    price = spot if cluster["market"] == "spot" else on_demand
    work = budgets.Processing(
        params.visits, params.detectors, params.visits_per_job, params.cpus, params.mem_mb
    )
    on = budgets.Cluster(
        compute=price,
        head=head,
        nodes=cluster["max_nodes"],
        storage_gb=cluster["shared_storage_gb"],
        storage_usd_per_gb_month=settings["storage_usd_per_gb_month"],
        scaledown_idle_s=cluster["scaledown_idle_minutes"] * 60,
    )
    try:
        est = budgets.estimate(work, on, budgets.DetectorCost(**params.cost))
    except budgets.FitError as err:
        fail(log, f"Pre-flight estimate: {err}")
    record = {
        **est.__dict__,
        "instance_type": price.instance_type,
        "market": price.market,
        "nodes": cluster["max_nodes"],
        "usd_per_hour": price.usd_per_hour,
        "head_node_instance_type": cluster["head_node_instance_type"],
        "head_node_usd_per_hour": head.usd_per_hour if head else None,
        "price_source": price.source,
        "price_as_of": price.as_of,
        "max_usd": budget["max_usd"],
        "override": budget["override"],
    }
    try:
        record["decision"] = budgets.check_budget(est, budget["max_usd"], budget["override"])
    except budgets.BudgetError as err:
        fail(log, f"Budget check: {err} (set budget.override: true to go ahead)")
    if settings["prices"] == "aws" and cluster["market"] == "spot":
        where = zones.zone_advice(cluster["region"], price.instance_type, params.subnet_id, log)
        if where:
            record["spot_zones"] = where
            to_terminal(f"Spot zones: {where['summary']}")
    log.info("%s", record["decision"])
    for category, (low, high) in est.breakdown.items():
        log.info("  %s: $%.4f-$%.4f", category, low, high)
    to_terminal(f"Pre-flight estimate: {record['decision']}")
    with open(snakemake.output.json, "w") as out:
        json.dump(record, out, indent=2)
        out.write("\n")
