"""Snakemake adapter: the actual bill of the run's days from Cost Explorer, by the cluster's tag."""

from datetime import UTC, datetime, timedelta

import boto3
import pandas as pd
from botocore.exceptions import NoCredentialsError

from lsst_on_aws.accounting.bill import actual_bill
from lsst_on_aws.logs import fail, to_log

with to_log(snakemake.log[0]) as log:
    timings = pd.read_parquet(snakemake.input.timings)
    # the run's days, through today (Cost Explorer's end date is exclusive)
    start = timings["start"].min().date().isoformat()
    end = (datetime.now(UTC).date() + timedelta(days=1)).isoformat()
    ce = boto3.client("ce", region_name="us-east-1")  # Cost Explorer answers from us-east-1
    try:
        bill = actual_bill(ce, snakemake.params.tag_key, snakemake.params.tag_value, start, end)
    except NoCredentialsError:
        fail(
            log,
            "The bill comes from AWS Cost Explorer and needs AWS credentials: none were found"
            " (run `aws configure`, or set AWS_PROFILE).",
        )
    bill.to_csv(snakemake.output.csv, index=False)
    log.info(
        "Cost Explorer, %s to %s, tag %s=%s: $%.2f over %d rows (%d estimated); it lags about a day",
        start, end, snakemake.params.tag_key, snakemake.params.tag_value,
        bill["usd"].sum(), len(bill), bill["estimated"].sum(),
    )  # fmt: skip
