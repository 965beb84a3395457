"""Snakemake adapter: simulate one visit's raw frames and its truth catalogue."""

from pathlib import Path

import pandas as pd

from lsst_on_aws.logs import to_log
from lsst_on_aws.simulate import Visit, simulate_visit

with to_log(snakemake.log[0]) as log:
    refcat = pd.read_parquet(snakemake.input.refcat)
    visit = Visit(**snakemake.params.visit)
    truth = simulate_visit(visit, refcat, snakemake.params.seed, Path(snakemake.output.raws))
    truth.to_parquet(snakemake.output.truth, index=False)
    log.info("visit %d: %d objects on the detectors", visit.visit, len(truth))
