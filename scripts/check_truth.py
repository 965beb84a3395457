"""Snakemake adapter: score every visit's measurements against the simulation's truth."""

import pandas as pd

from lsst_on_aws.logs import to_log
from lsst_on_aws.summary import truth_check_table

with to_log(snakemake.log[0]) as log:
    visits = pd.read_parquet(snakemake.input.visits)
    table = truth_check_table(list(snakemake.params.sources), list(snakemake.params.truth), visits)
    table.to_csv(snakemake.output.csv, index=False, float_format="%.4g")
    log.info("\n%s", table.to_string())
