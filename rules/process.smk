# Per-visit processing. Visits are processed in batches of visits_per_job
# (1 by default: a job per visit): one job per batch runs pipetask on each of
# its visits in turn, all detectors of a visit into the visit's own RUN
# collection, and exports the results from the Butler
# (lsst_on_aws_tasks.process_visit: one Python process for the whole batch,
# so the middleware's imports are paid once per batch).
# A rerun first removes what an earlier (failed or outdated) attempt left in
# each RUN. A visit whose data cannot be processed (a bad raw file, no
# sources) gets a summary.json saying "status": "failed" and why, and the
# batch, the other visits and the summary go on; any other failure fails the
# batch's job, and retries apply to the whole batch.
# preview.fits holds the visit's background-subtracted images, binned to at
# most 256 pixels a side, for the report's cutouts.
# job.json records the Slurm job id (empty when run locally), the host, the
# batch, and the visit's own start, end, wall and CPU time; quanta.json each
# quantum's task, detector, times and memory (from <label>_metadata), for the
# timing table; pipetask_report.json pipetask's per-quantum report (status
# and exception of each quantum).


rule process_batch:
    input:
        activate=stack_activate(),
        raws=batch_raw_records,
        calibs=calib_record,
        dataset_types="results/butler/dataset_types.json",
        pipeline=pipeline_input(),
    output:
        # written last, it lists the batch's visits: their folders beside it
        # are complete once it exists (a folder output's time stamp, touched
        # again by the Snakemake instances that run a job under Slurm, would
        # make its visits look out of date)
        record="results/batches/{batch}/batch.json",
    log:
        "logs/batches/{batch}/process_batch.log",
    benchmark:
        "results/benchmarks/batches/{batch}/process_batch.tsv"
    conda:
        "../envs/stack-shell.yaml"
    params:
        repo=REPO,
        prefix=config["butler"]["output"],
        visits=batch_visits,
        inputs=DEFAULT_INPUTS,
        instrument=config["instrument"],
        pipeline=pipeline_spec,
        overrides=pipetask_overrides(),
        raws_dir="results/butler/raws",
        folder=lambda wildcards: f"results/batches/{wildcards.batch}",
    shell:
        "(source {input.activate} && python -m lsst_on_aws_tasks.process_visit"
        " {params.repo} --output-prefix {params.prefix} --visits {params.visits}"
        " --instrument {params.instrument} --inputs {params.inputs}"
        " --pipeline {params.pipeline:q} {params.overrides}"
        " --raws-dir {params.raws_dir} --out {params.folder}) > {log} 2>&1"


# A visit's results, taken out of its batch's folder: the per-visit files
# every later step reads, whatever the batch size.
rule visit_results:
    input:
        visit_batch,
    output:
        summary="results/visits/{visit}/summary.json",
        sources="results/visits/{visit}/sources.parquet",
        job="results/visits/{visit}/job.json",
        quanta="results/visits/{visit}/quanta.json",
        preview="results/visits/{visit}/preview.fits",
    log:
        report="logs/visits/{visit}/pipetask_report.json",
    benchmark:
        "results/benchmarks/visits/{visit}/visit_results.tsv"
    localrule: True
    conda:
        "../envs/workflow.yaml"
    params:
        folder=lambda wildcards, input: f"{Path(input[0]).parent}/{wildcards.visit}",
    shell:
        "cp {params.folder}/summary.json {output.summary}"
        " && cp {params.folder}/sources.parquet {output.sources}"
        " && cp {params.folder}/job.json {output.job}"
        " && cp {params.folder}/quanta.json {output.quanta}"
        " && cp {params.folder}/preview.fits {output.preview}"
        " && cp {params.folder}/pipetask_report.json {log.report}"
