# LSST-on-AWS: raw exposures -> LSST pipeline per visit -> timings and summary.
#
# resources/stack/<tag>/          the LSST stack (venv/), activate.sh, manifest.json
# results/simulated/              refcat.parquet, calib/, raw/<visit>/, truth/<visit>.parquet
# resources/data/                 calib/, raw/<visit>/ staged from an s3:// data source
# results/butler/repo/            the Butler repository (SQLite registry + files)
# results/butler/*.json           records of repository set-up, ingest and the output chain
# results/batches/<batch>/        what each processing job (a batch of visits) wrote
# results/visits/<visit>/         summary.json and sources.parquet exported from the Butler
# results/summary/                visits.{csv,parquet}, truth_check.csv, figures
# results/costs/                  estimate.json, timings.{parquet,csv}, cost tables, figures
# results/provenance/             the publishing bundle (.tar.gz), report.zip, resolved config,
#                                 published.json (what went to publish.uri)
# results/cluster/                the ParallelCluster configuration and its validation
# results/clusters/<name>/        the control plane's records: created, synced, run, fetched, teardown
# results/storage/<id>/           deleted.json: retained shared storage deleted on request
# results/benchmarks/, logs/      per-rule timings and logs, mirroring the paths above


from snakemake.utils import min_version

min_version("9.0")


configfile: "config/config.yaml"


report: "report/workflow.rst"


include: "rules/common.smk"
include: "rules/simulate.smk"
include: "rules/data.smk"
include: "rules/stack.smk"
include: "rules/butler.smk"
include: "rules/process.smk"
include: "rules/summary.smk"
include: "rules/costs.smk"
include: "rules/provenance.smk"
include: "rules/cluster.smk"
include: "rules/lifecycle.smk"


# Run by Snakemake itself, never submitted to Slurm: aggregates, copies,
# the control plane, and the Butler's one-off set-up steps (seconds each: a
# Slurm job apiece would add its queue and status-check delay to each).
localrules:
    all,
    create_repo,
    register_instrument,
    register_dataset_types,
    ingest_calibs,
    ingest_refcat,
    visit_results,
    chain_visits,
    summarise_visits,
    check_truth,
    plot_visits,
    plot_cutouts,
    timing_table,
    estimate_cost,
    cost_tables,
    plot_costs,
    actual_bill,
    bundle,
    publish,
    stage_calibs,
    stage_raws,
    stage_instcal,
    stage_refcat,
    index_instcal,
    cluster_config,
    validate_cluster,
    create_cluster,
    sync_workflow,
    remote_run,
    fetch_results,
    teardown,
    cluster_costs,
    delete_cluster,
    delete_storage,


rule all:
    input:
        all_targets(),


onstart:
    cancel_orphaned_slurm_jobs()


onsuccess:
    warn_failed_visits()


onerror:
    teardown_after_failure()
