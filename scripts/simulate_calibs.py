"""Snakemake adapter: write the simulated master bias and flat frames."""

from pathlib import Path

from lsst_on_aws.logs import to_log
from lsst_on_aws.simulate import write_master_calibs
from lsst_on_aws_tasks import simcam

with to_log(snakemake.log[0]) as log:
    p = snakemake.params
    paths = write_master_calibs(
        p.seed, Path(snakemake.output.calib), simcam.detectors(p.detectors, p.detector_pixels)
    )
    log.info("wrote %d master calibration frames", len(paths))
