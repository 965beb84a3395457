# Per-visit processing: one job per visit runs pipetask on all its detectors
# into the visit's own RUN collection, then exports the results from the Butler.
# A rerun first removes what an earlier (failed or outdated) attempt left in that RUN.
# job.json records the Slurm job id (empty when run locally) and the host, for
# the accounting join of the summary.


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
    log:
        "logs/visits/{visit}/process_visit.log",
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
        """
        (
            source {input.activate}
            python -m lsst_on_aws_tasks.butler_setup remove-run {params.repo} {params.run}
            pipetask --long-log --log-level lsst_on_aws_tasks=INFO run -b {params.repo} -i {params.inputs} --output-run {params.run} \
                -p {input.pipeline} {params.overrides} \
                -d "instrument='{params.instrument}' AND visit={wildcards.visit}"
            python -m lsst_on_aws_tasks.export {params.repo} {params.run} {wildcards.visit} \
                --summary {output.summary} --sources {output.sources}
            printf '{{"slurm_job_id": "%s", "host": "%s"}}\n' "${{SLURM_JOB_ID:-}}" "$(hostname)" >{output.job}
        ) >{log} 2>&1
        """
