# Per-visit processing. Visits are processed in batches of visits_per_job
# (1 by default: a job per visit): one job per batch ingests each of its
# visits' raws and runs the pipeline on it, in turn, all detectors of a visit
# into the visit's own RUN collection, and exports the results from the
# Butler into results/visits/<visit>/ (lsst_on_aws_tasks.process_visit: one
# Python process for the whole batch, so the middleware's imports, the Butler
# and the resolved pipeline are paid once per batch; lsst_on_aws_tasks.executor).
# One job and one declared output per batch, whatever its size, keeps the job
# graph, and so every plan, small at survey scale.
# A visit's detectors run visit_jobs.cpus at a time (the rule's threads;
# visit_job_shape). A retry (or a rerun after an interruption) resumes each
# visit: its RUN keeps the quanta an earlier attempt of the same inputs,
# configs and software finished; a RUN of other inputs is removed first. Each
# retry asks for more memory and time (visit_job_memory, visit_job_runtime).
# A visit whose data cannot be processed (a
# bad raw file, no sources) gets a summary.json saying "status": "failed" and
# why, and the batch, the other visits and the summary go on; any other
# failure fails the batch's job, and retries apply to the whole batch.
# In each visit's folder: ingest.json, what its raw ingest took (or why it
# failed); summary.json and sources.parquet; preview.fits, the visit's
# background-subtracted images, binned to at most 256 pixels a side, for the
# report's cutouts; job.json, the Slurm job id (empty when run locally), the
# host, the batch, and the visit's own start, end, wall, ingest and CPU time;
# quanta.json, each quantum's task, detector, times and memory (from
# <label>_metadata), for the timing table; report.json, the status and
# exception of each quantum.


rule process_batch:
    input:
        activate=stack_activate(),
        raws=batch_raws,
        # each made after the instrument's registration: with it, the repository is ready
        # (fewer inputs a job: a quicker plan at survey scale)
        calibs=calib_record(),
        dataset_types="results/butler/dataset_types.json",
        pipeline=pipeline_input(),
    output:
        # written last, it lists the batch's visits: their folders in
        # results/visits/ are complete once it exists (a folder output's time
        # stamp, touched again by the Snakemake instances that run a job
        # under Slurm, would make its visits look out of date)
        record="results/batches/{batch}/batch.json",
    log:
        "logs/batches/{batch}/process_batch.log",
    benchmark:
        "results/benchmarks/batches/{batch}/process_batch.tsv"
    conda:
        "../envs/stack-shell.yaml"
    threads: visit_job_shape()["cpus"]
    resources:
        # from the per-detector figures (budget.core_s_per_ccd) and the visits
        runtime=visit_job_runtime,
        mem_mb=visit_job_memory,
    params:
        repo=REPO,
        prefix=config["butler"]["output"],
        visits=batch_visits,
        inputs=DEFAULT_INPUTS,
        instrument=config["instrument"],
        pipeline=pipeline_spec,
        overrides=pipetask_overrides(),
        raws=RAW_SOURCES,
        transfer=config["butler"]["transfer"],
        visits_dir="results/visits",
    shell:
        "(source {input.activate} && python -m lsst_on_aws_tasks.process_visit"
        " {params.repo} --output-prefix {params.prefix} --visits {params.visits}"
        " --instrument {params.instrument} --inputs {params.inputs}"
        " --pipeline {params.pipeline:q} {params.overrides}"
        " {params.raws} --transfer {params.transfer}"
        " --visits-dir {params.visits_dir} --record {output.record}"
        " --processes {threads}) > {log} 2>&1"
