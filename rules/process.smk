# Per-visit processing: one job per visit runs pipetask on all its detectors
# into the visit's own RUN collection, then exports the results from the Butler
# (lsst_on_aws_tasks.process_visit, one Python process for all three steps).
# A rerun first removes what an earlier (failed or outdated) attempt left in that RUN.
# A visit whose data cannot be processed (a bad raw file, no sources) ends
# with summary.json saying "status": "failed" and why, so the other visits and
# the summary go on; any other failure fails the job, and retries apply.
# job.json records the Slurm job id (empty when run locally), the host and the
# start and end times, for the accounting join of the summary; quanta.json
# each quantum's task, detector, times and memory (from <label>_metadata), for
# the timing table; the log keeps
# pipetask's per-quantum report (status and exception of each quantum).


rule process_visit:
    input:
        activate=stack_activate(),
        raws="results/butler/raws/{visit}.json",
        calibs="results/butler/calibs.json",
        dataset_types="results/butler/dataset_types.json",
        pipeline=config["pipeline"]["file"],
    output:
        summary="results/visits/{visit}/summary.json",
        sources="results/visits/{visit}/sources.parquet",
        job="results/visits/{visit}/job.json",
        quanta="results/visits/{visit}/quanta.json",
    log:
        main="logs/visits/{visit}/process_visit.log",
        report="logs/visits/{visit}/pipetask_report.json",
    benchmark:
        "results/benchmarks/visits/{visit}/process_visit.tsv"
    conda:
        "../envs/stack-shell.yaml"
    params:
        repo=REPO,
        run=visit_run,
        inputs=DEFAULT_INPUTS,
        instrument=config["instrument"],
        overrides=pipetask_overrides(),
    shell:
        "(source {input.activate} && python -m lsst_on_aws_tasks.process_visit"
        " {params.repo} {params.run} {wildcards.visit} --instrument {params.instrument}"
        " --inputs {params.inputs} --pipeline {input.pipeline} {params.overrides}"
        " --raws {input.raws} --summary {output.summary} --sources {output.sources}"
        " --report {log.report} --quanta {output.quanta} --job {output.job}) > {log.main} 2>&1"
