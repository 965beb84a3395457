"""Snakemake adapter: the run's tidy timing table (parquet and CSV)."""

from lsst_on_aws.accounting.slurm import job_accounting
from lsst_on_aws.accounting.timing import timing_table
from lsst_on_aws.logs import to_log
from lsst_on_aws.summary import read_job_record

params = snakemake.params
with to_log(snakemake.log[0]) as log:
    job_ids = [read_job_record(p)["slurm_job_id"] for p in params.job_records]
    accounting = job_accounting(job_ids)
    log.info("Slurm accounting for %d of %d visit jobs", len(accounting), len(job_ids))
    table = timing_table(
        params.jobs,
        params.job_records,
        dict(zip(params.visits, params.quanta, strict=True)),
        {int(k): v for k, v in params.runs.items()},
        params.instance_type,
        params.processing_rule,
        accounting,
    )
    table.to_parquet(snakemake.output.parquet, index=False)
    table.to_csv(snakemake.output.csv, index=False, float_format="%.4g")
    log.info("%d jobs, %d quanta", (table["kind"] == "job").sum(), (table["kind"] == "quantum").sum())
