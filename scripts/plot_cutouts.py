"""Snakemake adapter: the report's cutout of each visit, detections and PSF stars marked."""

from pathlib import Path

import pandas as pd

from lsst_on_aws.logs import to_log
from lsst_on_aws.plots import plot_cutouts

with to_log(snakemake.log[0]):
    previews = {int(Path(p).parent.name): p for p in snakemake.params.previews}
    sources = {int(Path(p).parent.name): pd.read_parquet(p) for p in snakemake.params.sources}
    plot_cutouts(previews, sources, pd.read_parquet(snakemake.input.visits), snakemake.output.png)
