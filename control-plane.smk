# LSST-on-AWS, the control plane: what `snakemake --profile aws` runs (the
# profile names this file), on the user's own machine. It runs nothing of the
# analysis: it checks the budget and the cluster's configuration, creates or
# adopts the cluster, syncs the workflow there, runs the data plane (Snakefile)
# on its head node detached, follows it, fetches the results and tears the
# cluster down. Its rules are the only ones here, so no target, --config or
# --configfile can make it process visits locally, and the data plane
# (plain `snakemake`, `--profile slurm`) cannot drive a cluster.
#
# results/costs/estimate.json     the pre-flight estimate and budget check
# results/cluster/                the ParallelCluster configuration and its validation
# results/clusters/<name>/        records: created, synced, run, fetched, teardown; costs.csv
# results/storage/<id>/           deleted.json: retained shared storage deleted on request
# results/costs/bill.csv          the bill from Cost Explorer, asked for after the run
# results/..., logs/              what the run on the cluster made, fetched (remote.fetch)
# .lsst-on-aws/run.log            the remote run's own log, fetched


from snakemake.utils import min_version

min_version("9.0")


configfile: "config/config.yaml"


report: "report/workflow.rst"


include: "rules/config.smk"
include: "rules/control.smk"
include: "rules/estimate.smk"
include: "rules/cluster.smk"
include: "rules/lifecycle.smk"


# A control plane that was killed (a laptop that died) left Snakemake's locks: rerunning the
# same command goes on, unless another control plane is running in this folder.
for stale in lifecycle.release_stale_locks(CONTROL_LOCK, SNAKEMAKE_LOCKS):
    logger.warning(f"removed {stale}, left by a control plane that was killed")


rule all:
    input:
        control_targets(),
    localrule: True


onerror:
    teardown_after_failure()
