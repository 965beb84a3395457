"""Snakemake adapter: stage an s3:// folder of the data source onto the file system."""

from pathlib import Path

from lsst_on_aws.cloud import s3data
from lsst_on_aws.logs import fail, to_log

with to_log(snakemake.log[0]) as log:
    try:
        record = s3data.stage(
            s3data.client(),
            snakemake.params.uri,
            Path(snakemake.output[0]),
            log=log.info,
            patterns=snakemake.params.get("patterns"),
            key=snakemake.params.get("key", "data.path"),
        )
    except s3data.S3DataError as err:
        fail(log, f"Staging failed: {err}")
    log.info("%d files from %s", len(record["files"]), record["source"])
