# LSST-on-AWS, the data plane: raw exposures -> LSST pipeline per visit ->
# timings, costs and summary. Plain `snakemake` (local) and `--profile slurm`
# run it; `--profile aws` runs control-plane.smk instead, which drives this
# Snakefile on a cluster's head node.
#
# resources/stack/<tag>/          the LSST stack (venv/), activate.sh, manifest.json
# results/simulated/              refcat.parquet, calib/, raw/<visit>/, truth/<visit>.parquet,
#                                 batches/<batch>.json (a simulated batch's record)
# resources/data/                 calib/, raw/<visit>/ staged from an s3:// data source
# results/butler/repo/            the Butler repository (SQLite registry + files)
# results/butler/*.json           records of repository set-up, ingest and the output chain
# results/batches/<batch>/        batch.json, a processing job's record (a batch of visits)
# results/visits/<visit>/         summary.json, sources.parquet, ... exported from the Butler
# results/summary/                visits.{csv,parquet}, truth_check.csv, figures
# results/costs/                  estimate.json, timings.{parquet,csv}, cost tables, figures
# results/provenance/             the publishing bundle (.tar.gz), report.zip, resolved config,
#                                 published.json (what went to publish.uri)
# results/benchmarks/, logs/      per-rule timings and logs, mirroring the paths above


import gc

from snakemake.utils import min_version

min_version("9.0")


configfile: "config/config.yaml"


report: "report/workflow.rst"


include: "rules/config.smk"
include: "rules/inputs.smk"
include: "rules/targets.smk"
include: "rules/hooks.smk"
include: "rules/simulate.smk"
include: "rules/data.smk"
include: "rules/stack.smk"
include: "rules/butler.smk"
include: "rules/process.smk"
include: "rules/summary.smk"
include: "rules/estimate.smk"
include: "rules/costs.smk"
include: "rules/provenance.smk"


rule all:
    input:
        all_targets(),
    localrule: True


onstart:
    cancel_orphaned_slurm_jobs()


onsuccess:
    warn_failed_visits()


# What parsing made (modules, config, the visit table, the rules) lives as long as the run:
# frozen, the garbage collector does not scan it again at each collection of the plan,
# 3 s of 40 at 20,000 visits (benchmarks/plan_scaling.py)
gc.freeze()
