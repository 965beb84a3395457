"""Snakemake adapter: install (or adopt) the LSST stack by the configured method; write its manifest."""

from pathlib import Path

from lsst_on_aws.logs import to_log
from lsst_on_aws.stack.eups import adopt_loaded_stack, install_lsstinstall_stack
from lsst_on_aws.stack.pip import install_pip_stack

with to_log(snakemake.log[0]) as log:
    params = snakemake.params
    prefix = Path(snakemake.output.manifest).parent
    tag = snakemake.wildcards.tag
    tasks_dir = Path(snakemake.input.tasks_project).parent
    if params.method == "pip":
        manifest = install_pip_stack(
            prefix, tag, Path(snakemake.input.lock), tasks_dir, params.python, log=log.info
        )
    elif params.method == "lsstinstall":
        manifest = install_lsstinstall_stack(
            prefix, tag, list(params.products), tasks_dir, params.lsstinstall_url, log=log.info
        )
    else:
        manifest = adopt_loaded_stack(
            prefix, tag, Path(params.load_script), list(params.products), tasks_dir, log=log.info
        )
    log.info(
        "stack %s (%s): %d Python packages, %d EUPS products, Python %s",
        manifest["tag"],
        manifest["method"],
        len(manifest["packages"]),
        len(manifest.get("eups_products", {})),
        manifest["python"],
    )
