"""Snakemake adapter: the per-visit summary table (CSV and parquet)."""

from lsst_on_aws.accounting.slurm import job_accounting
from lsst_on_aws.logs import to_log
from lsst_on_aws.summary import add_job_accounting, failed_visits, read_jobs, visit_table

with to_log(snakemake.log[0]) as log:
    bands = {int(k): v for k, v in snakemake.params.bands.items()}
    table = visit_table(list(snakemake.params.summaries), bands)
    jobs = read_jobs(list(snakemake.params.jobs))
    accounting = job_accounting(jobs["slurm_job_id"])
    log.info("Slurm accounting for %d of %d visits", len(accounting), len(table))
    table = add_job_accounting(table, jobs, accounting)
    table.to_csv(snakemake.output.csv, index=False, float_format="%.4g")
    table.to_parquet(snakemake.output.parquet, index=False)
    log.info("\n%s", table.to_string())
    for row in failed_visits(table).itertuples():
        log.warning("visit %d failed: %s", row.visit, row.reason)
