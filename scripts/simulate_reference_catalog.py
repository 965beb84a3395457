"""Snakemake adapter: write the simulated reference catalogue."""

from lsst_on_aws.logs import to_log
from lsst_on_aws.simulate import make_reference_catalog
from lsst_on_aws_tasks import simcam

with to_log(snakemake.log[0]) as log:
    p = snakemake.params
    dets = simcam.detectors(p.detectors, p.detector_pixels)
    refcat = make_reference_catalog(p.seed, p.n_stars, p.n_galaxies, dets)
    refcat.to_parquet(snakemake.output.refcat, index=False)
    log.info("%d objects (%d stars)", len(refcat), int(refcat["is_star"].sum()))
