"""Snakemake adapter: publish a complete run's results to S3; record what was written."""

import json
from pathlib import Path

from lsst_on_aws.cloud import s3data
from lsst_on_aws.logs import fail, to_log

with to_log(snakemake.log[0]) as log:
    files = {Path(path).name: Path(path) for path in snakemake.input}
    try:
        written = s3data.publish(s3data.client(), files, snakemake.params.uri, log=log.info)
    except s3data.S3DataError as err:
        fail(log, f"Publishing failed: {err}")
    with open(snakemake.output.record, "w") as out:
        json.dump({"uri": snakemake.params.uri, "objects": written}, out, indent=2)
        out.write("\n")
