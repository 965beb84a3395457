"""Snakemake adapter: simulate one visit's raw frames and its truth catalogue."""

from pathlib import Path

import pandas as pd

from lsst_on_aws.logs import to_log
from lsst_on_aws.simulate import Visit, simulate_visit

with to_log(snakemake.log[0]) as log:  # noqa: F821
    refcat = pd.read_parquet(snakemake.input.refcat)  # noqa: F821
    visit = Visit(**snakemake.params.visit)  # noqa: F821
    truth = simulate_visit(visit, refcat, snakemake.params.seed, Path(snakemake.output.raws))  # noqa: F821
    truth.to_parquet(snakemake.output.truth, index=False)  # noqa: F821
    log.info("visit %d: %d objects on the detectors", visit.visit, len(truth))
