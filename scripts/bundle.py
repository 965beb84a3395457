"""Snakemake adapter: the Snakemake report, then the provenance bundle around it."""

import subprocess
import sys
from pathlib import Path

import yaml

from lsst_on_aws import provenance
from lsst_on_aws.logs import to_log

with to_log(snakemake.log[0]) as log:
    resolved = Path(snakemake.output.config)
    # params.config comes redacted (rules/provenance.smk)
    resolved.write_text(yaml.safe_dump(snakemake.params.config, sort_keys=False))
    # The report of this very run: Snakemake builds it from the run's records
    # (--report takes no lock) for the run's targets short of this job (whose
    # outputs are still incomplete); the resolved config makes its captions
    # and plan those of this run, whatever --config the run was given.
    executable = Path(sys.executable).with_name("snakemake")
    command = [str(executable) if executable.exists() else "snakemake"]
    command += ["--report", snakemake.output.report, "--configfile", str(resolved)]
    command += ["--", *snakemake.input.targets]
    log.info("%s", " ".join(command))
    subprocess.run(command, check=True, stdout=sys.stdout, stderr=sys.stderr)
    members = {name: path for name, path in snakemake.params.members.items() if Path(path).exists()}
    members["report.zip"] = snakemake.output.report
    inputs = provenance.files_under(snakemake.params.inputs)
    # everything under results/ but this job's own files and a report made by hand
    mine = ["results/provenance", "results/benchmarks/provenance", "results/report.html"]
    outputs = provenance.files_under(["results"], exclude=[*snakemake.params.inputs, *mine])
    science, records = provenance.split_outputs(outputs, snakemake.params.science, snakemake.params.records)
    for path, reason in records.items():
        if reason == provenance.UNCLASSIFIED:
            log.warning("%s is neither a science output nor a known run record (RUN_RECORDS)", path)
    source = {name: Path(name) for name in snakemake.input.source}
    manifest = provenance.write_bundle(
        snakemake.output.bundle,
        config=snakemake.params.config,
        members=members,
        source=source,
        inputs=inputs,
        outputs=outputs,
        science=science,
        records=records,
        workflow=provenance.workflow_source(snakemake.params.workflow_dir, snakemake.params.source_record),
        source_record=snakemake.params.source_record,
    )
    log.info(
        "bundle %s: %d members, the workflow's %d files, %d inputs and %d outputs checksummed,"
        " %d of them science",
        snakemake.output.bundle,
        len(manifest["members"]),
        len(source),
        len(inputs),
        len(outputs),
        len(science),
    )
