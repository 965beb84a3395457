"""Snakemake adapter: the run's cost tables (per job, task, visit, detector, category; other instances)."""

import json

import pandas as pd

from lsst_on_aws.accounting import model, zones
from lsst_on_aws.accounting.prices import PriceError, price_lookup
from lsst_on_aws.logs import fail, to_log, to_terminal

cluster, settings = snakemake.params.cluster, snakemake.params.costs
with to_log(snakemake.log[0]) as log:
    prices = price_lookup(settings, cluster["region"], snakemake.input.prices, snakemake.params.price_cache)
    timings = pd.read_parquet(snakemake.input.timings)
    try:
        on_demand, spot = prices(cluster["compute_instance_type"])
        head, _ = prices(cluster["head_node_instance_type"])
    except PriceError as err:
        fail(log, f"Cost tables: {err} (config keys cluster.*_instance_type, costs.prices)")
    jobs = model.run_job_costs(timings, snakemake.params.requested, on_demand, spot)
    fixed = model.fixed_costs(
        jobs,
        head,
        spot if cluster["market"] == "spot" else on_demand,
        cluster["shared_storage_gb"],
        settings["storage_usd_per_gb_month"],
        cluster["scaledown_idle_minutes"] * 60,
    )
    breakdown = model.cost_breakdown(jobs, fixed, cluster["market"])
    tasks = model.task_costs(jobs, timings, snakemake.params.processing_rule)
    visits = model.visit_costs(jobs)
    detectors = model.detector_costs(tasks)
    compared = [(on_demand, spot)]  # the configured type, beside the others
    for instance_type in settings["compare_instance_types"]:
        if instance_type == on_demand.instance_type:
            continue
        try:
            compared.append(prices(instance_type))
        except PriceError as err:  # one unknown type does not stop the others
            log.warning("left out of the comparison: %s", err)
    others = model.instance_comparison(jobs, compared, configured=on_demand.instance_type)
    recommendation = model.recommend(others, cluster["market"])
    if settings["prices"] == "aws" and cluster["market"] == "spot" and recommendation["cheapest"]:
        cheapest = recommendation["cheapest"]["instance_type"]
        where = zones.zone_advice(cluster["region"], cheapest, snakemake.params.subnet_id, log)
        if where:
            recommendation["spot_zones"] = where
            recommendation["summary"] += f"; {where['summary']}"

    jobs.to_csv(snakemake.output.jobs, index=False)
    tasks.to_csv(snakemake.output.tasks, index=False)
    visits.to_csv(snakemake.output.visits, index=False)
    detectors.to_csv(snakemake.output.detectors, index=False)
    breakdown.to_csv(snakemake.output.breakdown, index=False)
    others.to_csv(snakemake.output.instance_types, index=False)
    with open(snakemake.output.recommendation, "w") as out:
        json.dump(recommendation, out, indent=2)
        out.write("\n")
    log.info("%s", recommendation["summary"])
    to_terminal(f"Instance types: {recommendation['summary']}")
    log.info("prices: %s (%s, %s); %s (%s)", on_demand, on_demand.source, on_demand.as_of, spot, spot.source)
    log.info("cost by category:\n%s", breakdown.to_string(index=False))
