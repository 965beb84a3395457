"""Snakemake adapter: the pre-flight estimate and the budget check (fails when over budget)."""

import json

import pandas as pd

from lsst_on_aws.accounting import budget as budgets
from lsst_on_aws.accounting.prices import PriceError, price_lookup
from lsst_on_aws.logs import fail, to_log, to_terminal

cluster, budget, settings = snakemake.params.cluster, snakemake.params.budget, snakemake.params.costs
with to_log(snakemake.log[0]) as log:
    try:
        prices = price_lookup(
            settings, cluster["region"], snakemake.input.prices, snakemake.params.price_cache
        )
        on_demand, spot = prices(cluster["compute_instance_type"])
    except PriceError as err:
        fail(log, f"Pre-flight estimate: {err} (config keys cluster.compute_instance_type, costs.prices)")
    price = spot if cluster["market"] == "spot" else on_demand
    per_ccd = tuple(budget["core_s_per_ccd"])
    basis = f"{per_ccd[0]:g}-{per_ccd[1]:g} core-s per CCD"
    if per_ccd == budgets.RUBIN_CORE_S_PER_CCD:
        basis = f"Rubin's published {basis}"
    if snakemake.input.measured:
        measured = pd.read_parquet(snakemake.input.measured)
        requested, detectors = snakemake.params.requested, snakemake.params.detectors
        rule = snakemake.params.processing_rule
        per_ccd = budgets.measured_core_s_per_ccd(measured, requested, detectors, rule)
        basis = f"{per_ccd[0]:.1f}-{per_ccd[1]:.1f} core-s per CCD measured in {snakemake.input.measured}"
    est = budgets.estimate(snakemake.params.ccds, price, cluster["max_nodes"], per_ccd, basis)
    record = {
        **est.__dict__,
        "instance_type": price.instance_type,
        "market": price.market,
        "nodes": cluster["max_nodes"],
        "usd_per_hour": price.usd_per_hour,
        "price_source": price.source,
        "price_as_of": price.as_of,
        "max_usd": budget["max_usd"],
        "override": budget["override"],
    }
    try:
        record["decision"] = budgets.check_budget(est, budget["max_usd"], budget["override"])
    except budgets.BudgetError as err:
        fail(log, f"Budget check: {err} (set budget.override: true to go ahead)")
    log.info("%s", record["decision"])
    to_terminal(f"Pre-flight estimate: {record['decision']}")
    with open(snakemake.output.json, "w") as out:
        json.dump(record, out, indent=2)
        out.write("\n")
