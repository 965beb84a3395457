"""Snakemake adapter: the per-visit summary table (CSV and parquet)."""

from lsst_on_aws.logs import to_log
from lsst_on_aws.summary import visit_table

with to_log(snakemake.log[0]) as log:  # noqa: F821
    bands = {int(k): v for k, v in snakemake.params.bands.items()}  # noqa: F821
    table = visit_table(list(snakemake.input.summaries), list(snakemake.input.benchmarks), bands)  # noqa: F821
    table.to_csv(snakemake.output.csv, index=False, float_format="%.4g")  # noqa: F821
    table.to_parquet(snakemake.output.parquet, index=False)  # noqa: F821
    log.info("\n%s", table.to_string())
