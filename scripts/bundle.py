"""Snakemake adapter: the Snakemake report, then the provenance bundle around it."""

import subprocess
import sys
from pathlib import Path

import yaml

from lsst_on_aws.logs import to_log
from lsst_on_aws.provenance import files_under, workflow_source, write_bundle

with to_log(snakemake.log[0]) as log:
    resolved = Path(snakemake.output.config)
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
    inputs = files_under(snakemake.params.inputs)
    # everything under results/ but this job's own files and a report made by hand
    mine = ["results/provenance", "results/benchmarks/provenance", "results/report.html"]
    outputs = files_under(["results"], exclude=[*snakemake.params.inputs, *mine])
    manifest = write_bundle(
        snakemake.output.bundle,
        config=snakemake.params.config,
        members=members,
        inputs=inputs,
        outputs=outputs,
        workflow=workflow_source(snakemake.params.workflow_dir, snakemake.params.source_record),
    )
    log.info(
        "bundle %s: %d members, %d inputs and %d outputs checksummed",
        snakemake.output.bundle,
        len(manifest["members"]),
        len(inputs),
        len(outputs),
    )
