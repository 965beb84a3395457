"""Snakemake adapter: delete retained shared storage, named by its id, and record it."""

import json

import boto3

from lsst_on_aws.cloud import storage
from lsst_on_aws.logs import fail, progress, to_log

params = snakemake.params
with to_log(snakemake.log[0]) as log:
    report = progress(log)

    session = boto3.Session(region_name=params.region)
    try:
        record = storage.delete(
            session,
            snakemake.wildcards.storage_id,
            params.tag_key,
            timeout_s=60 * params.timeout_minutes,
            poll_s=params.poll_seconds,
            on_progress=report,
        )
    except storage.StorageError as err:
        fail(log, f"Shared storage not deleted: {err}")
    with open(snakemake.output.record, "w") as out:
        json.dump(record | {"region": params.region}, out, indent=2)
        out.write("\n")
