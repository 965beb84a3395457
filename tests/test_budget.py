"""The pre-flight budget check through the real ``snakemake`` command.

The estimate rule needs no stack and no data: prices come from the committed
table, so these run in seconds and contact nothing; with ``costs.prices: aws``,
from a price cache and moto's server on 127.0.0.1.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime

import boto3
import pandas as pd
import pytest
import yaml
from conftest import aws_env, copy_workflow, snakemake

ESTIMATE = "results/costs/estimate.json"


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    return copy_workflow(tmp_path_factory.mktemp("budget") / "workflow")


def run_estimate(workdir, **budget):
    (workdir / "budget.yaml").write_text(yaml.safe_dump({"budget": budget}))
    (workdir / ESTIMATE).unlink(missing_ok=True)
    return snakemake(workdir, "--cores", "1", "--configfile", "budget.yaml", "--", ESTIMATE, timeout=300)


def test_estimate_over_budget_is_refused(workdir):
    result = run_estimate(workdir, max_usd=0.001)
    output = result.stdout + result.stderr
    assert result.returncode != 0
    assert "Budget check: the estimate exceeds the budget: 24 CCDs" in output
    assert "budget $0.00" in output
    assert "set budget.override: true" in output
    assert not (workdir / ESTIMATE).exists()


def test_override_goes_ahead_and_says_so(workdir):
    result = run_estimate(workdir, max_usd=0.001, override=True)
    assert result.returncode == 0, result.stderr[-3000:]
    record = json.loads((workdir / ESTIMATE).read_text())
    assert record["decision"].startswith("OVER BUDGET, overridden by the user")
    assert "Pre-flight estimate: OVER BUDGET" in result.stderr


def test_estimate_within_budget_names_its_basis_and_price(workdir):
    result = run_estimate(workdir, max_usd=25)
    assert result.returncode == 0, result.stderr[-3000:]
    record = json.loads((workdir / ESTIMATE).read_text())
    # 6 visits x 4 SimCam detectors of 512 x 512 pixels, at the figures measured here, as 6 one-CPU
    # jobs of 1000 MB on one c6i.2xlarge at spot ($0.34 x 0.25 an hour) and a t3.medium head node
    assert record["ccds"] == 24 and (record["jobs"], record["nodes_used"]) == (6, 1)
    assert record["basis"].startswith("SimCam's measured 2.2-2.6 core-s per megapixel")
    assert record["core_s_high"] == pytest.approx(24 * 2.6 * 512**2 / 1e6)
    assert (record["price_source"], record["price_as_of"]) == (
        "table x 0.25 (assumed spot fraction)",
        "2024-06-01",
    )
    assert record["head_node_instance_type"] == "t3.medium"
    # the cluster, not only its jobs: a few seconds of work cost far less than the head node
    # and the idle node around them
    low = {category: usd[0] for category, usd in record["breakdown"].items()}
    assert set(low) == {"jobs: process_batch", "idle compute", "head node", "shared storage"}
    assert low["jobs: process_batch"] < 0.01 * record["usd_low"]
    assert low["head node"] == pytest.approx(0.0416 * (record["wall_h_low"] + 10 / 60 + 0.5))
    assert record["usd_high"] == pytest.approx(sum(usd[1] for usd in record["breakdown"].values()))
    assert record["decision"].startswith("within budget")


def test_a_job_too_large_for_the_node_type_is_refused_before_anything_runs(workdir):
    (workdir / "big.yaml").write_text(yaml.safe_dump({"visit_jobs": {"cpus": 16}}))
    (workdir / ESTIMATE).unlink(missing_ok=True)
    result = snakemake(workdir, "--cores", "1", "--configfile", "big.yaml", "--", ESTIMATE, timeout=300)
    assert result.returncode != 0
    said = "Pre-flight estimate: a processing job (16 CPUs, 8500 MB) does not fit one c6i.2xlarge"
    assert said in result.stderr
    assert not (workdir / ESTIMATE).exists()


def write_price_cache(workdir, table: pd.DataFrame) -> None:
    """A fresh price cache (resources/prices/cache.json) of the instance types of ``table`` (columns
    of the committed price table): on demand at its price, spot at a third of it.
    """
    fetched = datetime.now(UTC).isoformat(timespec="seconds")
    cache = {}
    for row in table.itertuples():
        for market, usd in (("on-demand", row.usd_per_hour), ("spot", row.usd_per_hour / 3)):
            price = {"instance_type": row.instance_type, "region": row.region, "vcpu": int(row.vcpu)}
            price |= {"memory_gib": float(row.memory_gib), "usd_per_hour": usd, "market": market}
            price |= {"source": "cache", "as_of": fetched[:10]}
            cache[f"{row.region}/{row.instance_type}/{market}"] = {"fetched": fetched, "price": price}
    (workdir / "resources/prices").mkdir(parents=True, exist_ok=True)
    (workdir / "resources/prices/cache.json").write_text(json.dumps(cache))


def test_with_aws_prices_the_estimate_names_the_cheapest_spot_zone_and_its_subnet(workdir, moto):
    """``costs.prices: aws``: the on-demand and spot prices come from the price cache (fresh, so no
    Pricing API call: moto has none), the zones' spot prices and the configured VPC's subnets from
    moto's server. Where the emulation stops: moto prices every zone alike, so the cheapest is the
    first by name (test_costs.py orders real differences through botocore's Stubber).
    """
    ec2 = boto3.client("ec2", region_name="us-east-1")
    vpc = ec2.create_vpc(CidrBlock="10.30.0.0/16")["Vpc"]["VpcId"]
    subnets = {
        zone: ec2.create_subnet(VpcId=vpc, CidrBlock=cidr, AvailabilityZone=zone)["Subnet"]["SubnetId"]
        for zone, cidr in (("us-east-1a", "10.30.1.0/24"), ("us-east-1c", "10.30.3.0/24"))
    }
    write_price_cache(workdir, pd.DataFrame(
        [("c6i.2xlarge", "us-east-1", 8, 16.0, 0.34), ("t3.medium", "us-east-1", 2, 4.0, 0.0416)],
        columns=["instance_type", "region", "vcpu", "memory_gib", "usd_per_hour"],
    ))  # fmt: skip
    settings = {"costs": {"prices": "aws"}, "cluster": {"subnet_id": subnets["us-east-1c"]}}
    (workdir / "aws.yaml").write_text(yaml.safe_dump(settings))
    (workdir / ESTIMATE).unlink(missing_ok=True)
    args = ("--cores", "1", "--configfile", "aws.yaml", "--", ESTIMATE)
    result = snakemake(workdir, *args, timeout=300, env=aws_env(moto))
    assert result.returncode == 0, result.stderr[-3000:]
    record = json.loads((workdir / ESTIMATE).read_text())
    zones = record["spot_zones"]
    assert zones["cheapest_zone"] == "us-east-1a" and zones["subnets_there"] == [subnets["us-east-1a"]]
    said = (
        f"Spot zones: spot c6i.2xlarge is cheapest in us-east-1a ($0.0000 an hour); the configured"
        f" subnet {subnets['us-east-1c']} is in us-east-1c, $0.0000; {subnets['us-east-1a']} of {vpc}"
        " is in us-east-1a (cluster.subnet_id)"
    )
    assert said in result.stderr


def test_with_aws_prices_the_recommendation_names_the_cheapest_types_zone(workdir, moto):
    """The run's last cost table names the cheapest instance type that fits its largest job and, with
    ``costs.prices: aws``, that type's cheapest spot zone and the configured VPC's subnet there. The
    rule alone (``--allowed-rules cost_tables``) over a known timing table (test_costs.py's), the
    prices from a fresh cache, the zones and subnets from moto's server (every zone priced alike).
    """
    from test_costs import known_timings

    ec2 = boto3.client("ec2", region_name="us-east-1")
    vpc = ec2.create_vpc(CidrBlock="10.40.0.0/16")["Vpc"]["VpcId"]
    subnets = {
        zone: ec2.create_subnet(VpcId=vpc, CidrBlock=cidr, AvailabilityZone=zone)["Subnet"]["SubnetId"]
        for zone, cidr in (("us-east-1a", "10.40.1.0/24"), ("us-east-1b", "10.40.2.0/24"))
    }
    table = pd.read_csv(workdir / "config/prices/ec2-on-demand-2024-06.csv", comment="#")
    write_price_cache(workdir, table[table["region"] == "us-east-1"])
    (workdir / "results/costs").mkdir(parents=True, exist_ok=True)
    known_timings().to_parquet(workdir / "results/costs/timings.parquet")
    settings = {"costs": {"prices": "aws"}, "cluster": {"subnet_id": subnets["us-east-1b"]}}
    (workdir / "aws.yaml").write_text(yaml.safe_dump(settings))
    target = "results/costs/recommendation.json"
    args = ("--cores", "1", "--configfile", "aws.yaml", "--allowed-rules", "cost_tables", "--", target)
    result = snakemake(workdir, *args, timeout=300, env=aws_env(moto))
    assert result.returncode == 0, result.stderr[-3000:]
    advice = json.loads((workdir / target).read_text())
    cheapest = advice["cheapest"]["instance_type"]
    assert advice["configured"]["instance_type"] == "c6i.2xlarge"
    assert advice["spot_zones"]["instance_type"] == cheapest
    assert advice["spot_zones"]["subnets_there"] == [subnets["us-east-1a"]]
    said = f"Instance types: cheapest instance type that fits the largest job: {cheapest}, $"
    assert said in result.stderr
    assert f"; spot {cheapest} is cheapest in us-east-1a" in result.stderr
