"""Snakemake adapter: the per-visit figure of the report."""

import pandas as pd

from lsst_on_aws.logs import to_log
from lsst_on_aws.plots import plot_visits

with to_log(snakemake.log[0]):
    plot_visits(pd.read_parquet(snakemake.input.visits), snakemake.output.png)
