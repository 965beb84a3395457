"""Snakemake adapter: the timing and cost figures of the report."""

import pandas as pd

from lsst_on_aws.logs import to_log
from lsst_on_aws.plots import plot_costs, plot_efficiency, plot_gantt

with to_log(snakemake.log[0]):
    timings = pd.read_parquet(snakemake.input.timings)
    plot_gantt(timings, snakemake.output.gantt)
    plot_efficiency(timings, snakemake.params.processing_rule, snakemake.output.efficiency)
    plot_costs(
        pd.read_csv(snakemake.input.breakdown),
        pd.read_csv(snakemake.input.jobs),
        snakemake.params.market,
        snakemake.output.costs,
    )
