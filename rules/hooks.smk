# The data plane's hooks: before a run, Slurm jobs an interrupted run left
# here are cancelled; after it, the visits that could not be processed are named.

from snakemake.logging import logger

from lsst_on_aws.accounting.slurm import cancel_orphaned_jobs


def cancel_orphaned_slurm_jobs():
    """Before submitting anything, cancel Slurm jobs an interrupted run left running here."""
    cancelled = cancel_orphaned_jobs(Path.cwd())
    if cancelled:
        logger.warning(
            f"Cancelled Slurm jobs {', '.join(cancelled)}: an earlier, interrupted run of"
            " this workflow left them running in this directory. Their work is redone"
            " by this run."
        )


def warn_failed_visits():
    """At the end of a run, name the visits whose data could not be processed."""
    # imported here, not with the rules: scipy's import would slow every plan
    from lsst_on_aws.summary import failed_visit_reasons

    failed = failed_visit_reasons(visit_outputs("summary.json"))
    if failed:
        lines = [
            f"  visit {visit}: {reason}" for visit, reason in sorted(failed.items())
        ]
        batches = sorted({BATCH_OF[visit] for visit in failed})
        rerun = " ".join(f"results/batches/{batch}/batch.json" for batch in batches)
        logger.warning(
            f"{len(failed)} of {len(PROCESS_VISITS)} visits could not be processed"
            " (results/summary/visits.csv lists them; fix the data, then rerun their"
            f" batches with --forcerun {rerun}):\n" + "\n".join(lines)
        )
