"""Snakemake adapter: write the simulated master bias and flat frames."""

from pathlib import Path

from lsst_on_aws.logs import to_log
from lsst_on_aws.simulate import write_master_calibs

with to_log(snakemake.log[0]) as log:
    paths = write_master_calibs(snakemake.params.seed, Path(snakemake.output.calib))
    log.info("wrote %d master calibration frames", len(paths))
