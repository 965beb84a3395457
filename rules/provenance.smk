from lsst_on_aws import provenance


# The provenance bundle for publishing (lsst_on_aws.provenance), enough to rerun
# the run: the workflow's source and REPRODUCE.md, the run's Snakemake report,
# resolved config, visit table, stack manifest, workflow package versions, git
# commit (or the record of it a copy without .git carries), timing and cost
# tables, and checksums of every input and output, the science outputs apart
# from the run records; in one results/provenance/lsst-on-aws-bundle.tar.gz.
# It is the last job of every complete run.
rule bundle:
    input:
        targets=all_targets(bundle=False),
        timings="results/costs/timings.parquet",
        stack_manifest=f"{STACK}/manifest.json",
        synced=synced_source,
        source=workflow_files(),
    output:
        bundle="results/provenance/lsst-on-aws-bundle.tar.gz",
        report="results/provenance/report.zip",
        config="results/provenance/config.yaml",
    log:
        "logs/provenance/bundle.log",
    benchmark:
        "results/benchmarks/provenance/bundle.tsv"
    localrule: True
    conda:
        "../envs/workflow.yaml"
    params:
        # secrets redacted here too: Snakemake keeps a job's params in .snakemake/metadata
        config=provenance.redact(config),
        inputs=bundle_inputs(),
        members=bundle_members(),
        science=science_outputs(),
        records=RUN_RECORDS,
        workflow_dir=workflow.basedir,
        # the commit, in a copy without .git (synced to a head node, unpacked from a bundle)
        source_record=SOURCE_RECORD,
    script:
        "../scripts/bundle.py"


# The published copy (publish.uri, s3://): the bundle, the report and the
# main tables, each object with its SHA-256; published.json lists them.
rule publish:
    input:
        bundle="results/provenance/lsst-on-aws-bundle.tar.gz",
        report="results/provenance/report.zip",
        visits="results/summary/visits.csv",
        breakdown="results/costs/breakdown.csv",
        timings="results/costs/timings.csv",
    output:
        record="results/provenance/published.json",
    log:
        "logs/provenance/publish.log",
    benchmark:
        "results/benchmarks/provenance/publish.tsv"
    localrule: True
    conda:
        "../envs/workflow.yaml"
    params:
        uri=config["publish"]["uri"].rstrip("/"),
    script:
        "../scripts/publish.py"
