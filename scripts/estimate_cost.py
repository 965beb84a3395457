"""Snakemake adapter: the pre-flight estimate and the budget check (fails when over budget)."""

import json

import pandas as pd

from lsst_on_aws import costs
from lsst_on_aws.logs import fail, to_log, to_terminal

cluster, budget, settings = snakemake.params.cluster, snakemake.params.budget, snakemake.params.costs
with to_log(snakemake.log[0]) as log:
    try:
        on_demand, spot = costs.run_prices(
            cluster["compute_instance_type"],
            cluster["region"],
            settings["prices"],
            spot_fraction=settings["spot_fraction"],
            cache=costs.PriceCache("resources/prices/cache.json", settings["price_cache_days"]),
        )
    except costs.PriceError as err:
        fail(log, f"Pre-flight estimate: {err} (config keys cluster.compute_instance_type, costs.prices)")
    price = spot if cluster["market"] == "spot" else on_demand
    per_ccd = tuple(budget["core_s_per_ccd"])
    basis = f"{per_ccd[0]:g}-{per_ccd[1]:g} core-s per CCD"
    if per_ccd == costs.RUBIN_CORE_S_PER_CCD:
        basis = f"Rubin's published {basis}"
    if snakemake.input.measured:
        measured = pd.read_parquet(snakemake.input.measured)
        requested, detectors = snakemake.params.requested, snakemake.params.detectors
        per_ccd = costs.measured_core_s_per_ccd(measured, requested, detectors)
        basis = f"{per_ccd[0]:.1f}-{per_ccd[1]:.1f} core-s per CCD measured in {snakemake.input.measured}"
    est = costs.estimate(snakemake.params.ccds, price, cluster["max_nodes"], per_ccd, basis)
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
        record["decision"] = costs.check_budget(est, budget["max_usd"], budget["override"])
    except costs.BudgetError as err:
        fail(log, f"Budget check: {err} (set budget.override: true to go ahead)")
    log.info("%s", record["decision"])
    to_terminal(f"Pre-flight estimate: {record['decision']}")
    with open(snakemake.output.json, "w") as out:
        json.dump(record, out, indent=2)
        out.write("\n")
