"""The actual bill from Cost Explorer, against moto's server on 127.0.0.1.

moto does not track costs: it answers ``get_cost_and_usage`` from a queue of
canned results that the test posts to ``/moto-api/static/ce/cost-and-usage-results``.
So this checks the request the workflow makes is accepted and the answer is
read correctly, paged and tabled; which costs AWS would report is not emulated.
"""

from __future__ import annotations

import json
import urllib.request

import boto3
import pandas as pd
import pytest
from conftest import aws_env, planned_jobs, snakemake

from lsst_on_aws.accounting.bill import actual_bill


def day(start, end, groups, estimated=False):
    return {
        "TimePeriod": {"Start": start, "End": end},
        "Total": {},
        "Groups": [
            {"Keys": [service], "Metrics": {"UnblendedCost": {"Amount": str(usd), "Unit": "USD"}}}
            for service, usd in groups
        ],
        "Estimated": estimated,
    }


CANNED = {
    "ResultsByTime": [
        day(
            "2026-11-25",
            "2026-11-26",
            [("Amazon Elastic Compute Cloud - Compute", 1.25), ("EC2 - Other", 0.1)],
        ),
        day("2026-11-26", "2026-11-27", [("Amazon Elastic Compute Cloud - Compute", 0.5)], estimated=True),
    ],
    "DimensionValueAttributes": [],
}


def post_canned(url: str, *results: dict) -> None:
    body = json.dumps({"results": list(results)}).encode()
    request = urllib.request.Request(
        f"{url}/moto-api/static/ce/cost-and-usage-results",
        data=body,
        method="POST",
        headers={"Content-Type": "application/json"},
    )
    urllib.request.urlopen(request, timeout=10).close()


def test_bill_per_day_and_service(moto):
    post_canned(moto, CANNED)
    ce = boto3.client("ce", region_name="us-east-1")
    bill = actual_bill(ce, "lsst-on-aws:cluster", "rubin-1", "2026-11-25", "2026-11-27")
    assert list(bill["day"]) == ["2026-11-25", "2026-11-25", "2026-11-26"]
    assert bill["usd"].sum() == pytest.approx(1.85)
    assert list(bill["estimated"]) == [False, False, True]
    assert set(bill["tag"]) == {"lsst-on-aws:cluster=rubin-1"}
    assert set(bill["source"]) == {"cost-explorer"}


def test_bill_follows_pages(moto):
    """Two canned pages: the first carries a NextPageToken, which the second request sends."""
    first = {
        "ResultsByTime": CANNED["ResultsByTime"][:1],
        "NextPageToken": "page-2",
        "DimensionValueAttributes": [],
    }
    second = {"ResultsByTime": CANNED["ResultsByTime"][1:], "DimensionValueAttributes": []}
    post_canned(moto, first, second)
    ce = boto3.client("ce", region_name="us-east-1")
    bill = actual_bill(ce, "lsst-on-aws:cluster", "rubin-1", "2026-11-25", "2026-11-27")
    assert len(bill) == 3
    assert bill["usd"].sum() == pytest.approx(1.85)


def test_bill_rule_writes_the_table(demo_run, moto):
    """``snakemake --profile aws results/costs/bill.csv`` after a run, its boto3 pointed at moto.

    The run's timing table is the only input; nothing of the run is planned again.
    """
    post_canned(moto, CANNED)
    plan = snakemake(demo_run, "--profile", "aws", "--dry-run", "results/costs/bill.csv", env=aws_env(moto))
    assert planned_jobs(plan) == {"actual_bill": 1}, plan.stdout[-3000:]
    result = snakemake(demo_run, "--profile", "aws", "results/costs/bill.csv", env=aws_env(moto))
    assert result.returncode == 0, result.stderr[-3000:]
    bill = pd.read_csv(demo_run / "results/costs/bill.csv")
    assert bill["usd"].sum() == pytest.approx(1.85)
    log = (demo_run / "logs/costs/actual_bill.log").read_text()
    assert "tag lsst-on-aws:cluster=lsst-on-aws: $1.85" in log
    assert "it lags about a day" in log
    (demo_run / "results/costs/bill.csv").unlink()  # the plan tests expect only a run's own files


def test_bill_without_credentials_says_so(demo_run, tmp_path):
    env = {
        "AWS_ENDPOINT_URL": "http://127.0.0.1:9",  # never reached: there are no credentials to sign with
        "AWS_CONFIG_FILE": str(tmp_path / "none"),
        "AWS_SHARED_CREDENTIALS_FILE": str(tmp_path / "none"),
        "AWS_ACCESS_KEY_ID": "",
        "AWS_SECRET_ACCESS_KEY": "",
        "AWS_SESSION_TOKEN": "",
        "AWS_EC2_METADATA_DISABLED": "true",
    }
    result = snakemake(demo_run, "--profile", "aws", "results/costs/bill.csv", env=env)
    assert result.returncode != 0
    assert "needs AWS credentials: none were found" in result.stderr
    assert not (demo_run / "results/costs/bill.csv").exists()
