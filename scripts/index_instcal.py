"""Snakemake adapter: index a directory of DECam InstCal files by exposure and CCD (headers only)."""

from pathlib import Path

import pandas as pd

from lsst_on_aws.logs import fail, to_log
from lsst_on_aws_tasks import decam

with to_log(snakemake.log[0]) as log:
    root = Path(snakemake.params.path)
    rows = decam.index_directory(root)
    if not rows:
        fail(
            log,
            f"Data directory {root} holds no DECam InstCal image files (*_ooi_*.fits) (config key data.path)",
        )
    table = pd.DataFrame(rows, columns=["path", "exposure", "detector", "band", "error"])
    table.to_csv(snakemake.output.index, index=False)
    unreadable = table[table["exposure"] < 0]
    log.info(
        "%d InstCal image files, %d exposures", len(table) - len(unreadable), table["exposure"].nunique()
    )
    for error in unreadable["error"]:
        log.warning("%s", error)
