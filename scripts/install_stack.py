"""Snakemake adapter: install the LSST stack (pip mode) and write its manifest."""

from pathlib import Path

from lsst_on_aws.logs import to_log
from lsst_on_aws.stack import install_pip_stack

with to_log(snakemake.log[0]) as log:  # noqa: F821
    manifest = install_pip_stack(
        prefix=Path(snakemake.output.manifest).parent,  # noqa: F821
        tag=snakemake.wildcards.tag,  # noqa: F821
        lock=Path(snakemake.input.lock),  # noqa: F821
        tasks_dir=Path(snakemake.params.tasks_dir),  # noqa: F821
        python_version=snakemake.params.python,  # noqa: F821
        log=log.info,
    )
    log.info("stack %s: %d packages, Python %s", manifest["tag"], len(manifest["packages"]), manifest["python"])
