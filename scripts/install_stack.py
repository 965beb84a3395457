"""Snakemake adapter: install the LSST stack (pip mode) and write its manifest."""

from pathlib import Path

from lsst_on_aws.logs import to_log
from lsst_on_aws.stack import install_pip_stack

with to_log(snakemake.log[0]) as log:
    manifest = install_pip_stack(
        prefix=Path(snakemake.output.manifest).parent,
        tag=snakemake.wildcards.tag,
        lock=Path(snakemake.input.lock),
        tasks_dir=Path(snakemake.input.tasks_project).parent,
        python_version=snakemake.params.python,
        log=log.info,
    )
    log.info(
        "stack %s: %d packages, Python %s", manifest["tag"], len(manifest["packages"]), manifest["python"]
    )
