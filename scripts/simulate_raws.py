"""Snakemake adapter: simulate a batch's visits, each its raw frames and truth catalogue."""

from pathlib import Path

import pandas as pd

from lsst_on_aws.logs import to_log
from lsst_on_aws.simulate import Visit, simulate_batch
from lsst_on_aws_tasks import simcam

params = snakemake.params
with to_log(snakemake.log[0]) as log:
    refcat = pd.read_parquet(snakemake.input.refcat)
    visits = [Visit(**row) for row in params.visits]
    paths = Path(params.raw_dir), Path(params.truth_dir), Path(snakemake.output.record)
    dets = simcam.detectors(params.detectors, params.detector_pixels)
    for visit, n_objects in simulate_batch(visits, refcat, params.seed, *paths, dets):
        log.info("visit %d: %d objects on the detectors", visit, n_objects)
