# The Butler repository: created once, instrument registered, calibrations ingested (each visit's
# raws are ingested by its processing job), and the processed visits chained.
# Every step runs inside the stack through its activation prefix.


rule create_repo:
    input:
        activate=stack_activate(),
        seed="config/butler-seed.yaml",
    output:
        record="results/butler/created.json",
    log:
        "logs/butler/create_repo.log",
    benchmark:
        "results/benchmarks/butler/create_repo.tsv"
    localrule: True
    conda:
        "../envs/stack-shell.yaml"
    params:
        repo=REPO,
        registry=config["butler"]["registry"],
        namespace=config["butler"]["namespace"],
    shell:
        "(source {input.activate} && python -m lsst_on_aws_tasks.butler_setup create-repo"
        " {params.repo} --seed-config {input.seed} --registry {params.registry}"
        " --namespace {params.namespace} --output {output.record}) > {log} 2>&1"


rule register_instrument:
    input:
        activate=stack_activate(),
        repo="results/butler/created.json",
    output:
        record="results/butler/instrument.json",
    log:
        "logs/butler/register_instrument.log",
    benchmark:
        "results/benchmarks/butler/register_instrument.tsv"
    localrule: True
    conda:
        "../envs/stack-shell.yaml"
    params:
        repo=REPO,
        instrument=INSTRUMENT,
        detectors=ccds_per_visit(),
    shell:
        "(source {input.activate} && python -m lsst_on_aws_tasks.butler_setup register-instrument"
        " {params.repo} --instrument {params.instrument} --detectors {params.detectors}"
        " --output {output.record}) > {log} 2>&1"


rule register_dataset_types:
    input:
        activate=stack_activate(),
        instrument="results/butler/instrument.json",
        pipeline=pipeline_input(),
    output:
        record="results/butler/dataset_types.json",
    log:
        "logs/butler/register_dataset_types.log",
    benchmark:
        "results/benchmarks/butler/register_dataset_types.tsv"
    localrule: True
    conda:
        "../envs/stack-shell.yaml"
    params:
        repo=REPO,
        pipeline=pipeline_spec,
    shell:
        "(source {input.activate} && python -m lsst_on_aws_tasks.butler_setup register-dataset-types"
        " {params.repo} {params.pipeline:q} --output {output.record}) > {log} 2>&1"


rule ingest_calibs:
    input:
        activate=stack_activate(),
        instrument="results/butler/instrument.json",
        calib=calib_dir(),
    output:
        record="results/butler/calibs.json",
    log:
        "logs/butler/ingest_calibs.log",
    benchmark:
        "results/benchmarks/butler/ingest_calibs.tsv"
    localrule: True
    conda:
        "../envs/stack-shell.yaml"
    params:
        repo=REPO,
        transfer=config["butler"]["transfer"],
    shell:
        "(source {input.activate} && python -m lsst_on_aws_tasks.butler_setup ingest-calibs"
        " {params.repo} {input.calib}/*.fits --transfer {params.transfer}"
        " --output {output.record}) > {log} 2>&1"


# The reference catalogue real visits are calibrated against (DECam: Gaia DR2).
rule ingest_refcat:
    input:
        activate=stack_activate(),
        instrument="results/butler/instrument.json",
        refcat=refcat_input(),
    output:
        record="results/butler/refcat.json",
    log:
        "logs/butler/ingest_refcat.log",
    benchmark:
        "results/benchmarks/butler/ingest_refcat.tsv"
    localrule: True
    conda:
        "../envs/stack-shell.yaml"
    params:
        repo=REPO,
        files=refcat_files,
    shell:
        "(source {input.activate} && python -m lsst_on_aws_tasks.butler_setup ingest-refcat"
        " {params.repo} {params.files} --output {output.record}) > {log} 2>&1"


rule chain_visits:
    input:
        activate=stack_activate(),
        visits="results/summary/visits.parquet",
    output:
        record="results/butler/chain.json",
    log:
        "logs/butler/chain_visits.log",
    benchmark:
        "results/benchmarks/butler/chain_visits.tsv"
    localrule: True
    conda:
        "../envs/stack-shell.yaml"
    params:
        repo=REPO,
        chain=config["butler"]["output"],
        inputs=DEFAULT_INPUTS,
    shell:
        "(source {input.activate} && python -m lsst_on_aws_tasks.butler_setup set-chain"
        " {params.repo} {params.chain} --visits-table {input.visits} --inputs {params.inputs}"
        " --output {output.record}) > {log} 2>&1"
