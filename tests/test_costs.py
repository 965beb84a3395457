"""The cost model with known timing records and known prices: exact dollars.

Prices here come from the committed fallback table, are written out in the
test, or come from botocore's Stubber or moto's server on 127.0.0.1; no AWS
endpoint is contacted.
"""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime

import boto3
import pandas as pd
import pytest
from botocore.stub import Stubber
from conftest import REPO_ROOT

from lsst_on_aws.accounting import budget, model, prices, zones

# the workflow's committed fallback table (rules/config.smk, PRICE_TABLE)
TABLE = prices.load_price_table(REPO_ROOT / "config/prices/ec2-on-demand-2024-06.csv")

C6I_8XL = prices.Price("c6i.8xlarge", "us-east-1", 32, 64.0, 1.36, "on-demand", "table", "2024-06-01")


def test_fallback_table_prices_carry_source_and_date():
    price = prices.table_price("c6i.8xlarge", "us-east-1", TABLE)
    assert price == C6I_8XL


def test_unknown_instance_type_is_named():
    with pytest.raises(prices.PriceError, match=r"no price for c9z\.huge in us-east-1"):
        prices.table_price("c9z.huge", "us-east-1", TABLE)


def test_fallback_table_is_well_formed():
    table = TABLE
    assert not table.duplicated(["instance_type", "region"]).any()
    assert (table["usd_per_hour"] > 0).all()
    assert (table["vcpu"] > 0).all()


@pytest.mark.parametrize(
    ("cpus", "mem_mb", "share"),
    [
        (1, 1000, 1 / 32),  # CPU-bound share
        (1, 32 * 1024, 0.5),  # half the memory blocks half the node
        (64, 1000, 1.0),  # never more than the whole node
    ],
)
def test_node_share_is_the_larger_of_cpu_and_memory(cpus, mem_mb, share):
    assert model.node_share(cpus, mem_mb, C6I_8XL) == pytest.approx(share)


def test_job_costs_exact_dollars():
    jobs = pd.DataFrame(
        {
            "visit": [1, 2, 3],
            "wall_s": [3600.0, 1800.0, 36.0],
            "cpus": [1, 1, 32],
            "mem_mb": [1000, 32768, 1000],
        }
    )
    out = model.job_costs(jobs, C6I_8XL)
    # 1.36 $/h x 1 h x 1/32; 1.36 x 0.5 h x 1/2; 1.36 x 0.01 h x 1
    assert out["usd"].tolist() == pytest.approx([0.0425, 0.34, 0.0136])
    assert out["usd"].sum() == pytest.approx(0.3961)
    assert set(out["price_source"]) == {"table"}
    assert set(out["price_as_of"]) == {"2024-06-01"}


def fake_client(service: str):
    """A boto3 client with dummy credentials, for Stubber (which never sends a request)."""
    return boto3.client(
        service, region_name="us-east-1", aws_access_key_id="testing", aws_secret_access_key="testing"
    )


def _product(instance_type: str, usd: str) -> str:
    """One PriceList element as the Pricing API returns it (a JSON string)."""
    return json.dumps(
        {
            "product": {
                "attributes": {
                    "instanceType": instance_type,
                    "location": "US East (N. Virginia)",
                    "operatingSystem": "Linux",
                    "vcpu": "32",
                    "memory": "64 GiB",
                }
            },
            "terms": {
                "OnDemand": {
                    "X.JRTCKXETXF": {
                        "effectiveDate": "2026-11-01T00:00:00Z",
                        "priceDimensions": {
                            "X.JRTCKXETXF.6YS6EN2CT7": {"unit": "Hrs", "pricePerUnit": {"USD": usd}}
                        },
                    }
                }
            },
        }
    )


def test_pricing_api_price_with_stubber():
    """The live Pricing API path. moto does not implement the Pricing API, so this is
    botocore's Stubber: it checks the request against the API's model and returns a
    response shaped like AWS's; nothing leaves the process."""
    pricing = fake_client("pricing")
    with Stubber(pricing) as stub:
        stub.add_response(
            "get_products",
            {"PriceList": [_product("c6i.8xlarge", "1.3600000000")], "FormatVersion": "aws_v1"},
        )
        price = prices.api_price(pricing, "c6i.8xlarge", "us-east-1")
        stub.assert_no_pending_responses()
    assert price == prices.Price(
        "c6i.8xlarge", "us-east-1", 32, 64.0, 1.36, "on-demand", "pricing-api", "2026-11-01"
    )


def test_pricing_api_without_a_price_is_an_error():
    """Stubber again (no Pricing API in moto): an empty PriceList names the instance type."""
    pricing = fake_client("pricing")
    with Stubber(pricing) as stub:
        stub.add_response("get_products", {"PriceList": [], "FormatVersion": "aws_v1"})
        with pytest.raises(prices.PriceError, match=r"no on-demand Linux price for c6i\.8xlarge"):
            prices.api_price(pricing, "c6i.8xlarge", "us-east-1")


def spot_history(*zone_prices: tuple[str, str]) -> list[dict]:
    """describe_spot_price_history entries for c6i.8xlarge, on 2026-11-25, one per (zone, price)."""
    when = datetime(2026, 11, 25, 12, tzinfo=UTC)
    return [
        {"AvailabilityZone": zone, "InstanceType": "c6i.8xlarge", "SpotPrice": price, "Timestamp": when}
        for zone, price in zone_prices
    ]


def test_spot_price_is_the_lowest_zone_with_stubber():
    """Spot history through Stubber, with a canned answer of two zones."""
    ec2 = fake_client("ec2")
    history = spot_history(("us-east-1a", "0.3400"), ("us-east-1b", "0.2900"))
    with Stubber(ec2) as stub:
        stub.add_response("describe_spot_price_history", {"SpotPriceHistory": history})
        price = prices.spot_price(ec2, C6I_8XL)
    assert price.usd_per_hour == pytest.approx(0.29)
    assert (price.market, price.source, price.as_of) == ("spot", "spot-history", "2026-11-25")
    # the same job, spot against on-demand: the ratio of the prices
    jobs = pd.DataFrame({"wall_s": [3600.0], "cpus": [32], "mem_mb": [1000]})
    assert model.job_costs(jobs, price)["usd"].iloc[0] == pytest.approx(0.29)


def test_cheapest_spot_zone_and_its_subnet_with_stubber():
    """The zones' prices through Stubber (moto prices every zone alike): the cheapest zone is named,
    with the subnet of the configured subnet's VPC that lies in it.
    """
    ec2 = fake_client("ec2")
    history = spot_history(("us-east-1a", "0.3400"), ("us-east-1b", "0.2900"), ("us-east-1c", "0.3100"))
    with Stubber(ec2) as stub:
        stub.add_response("describe_spot_price_history", {"SpotPriceHistory": history})
        stub.add_response(
            "describe_subnets",
            {"Subnets": [{"SubnetId": "subnet-1", "VpcId": "vpc-1", "AvailabilityZone": "us-east-1a"}]},
            {"SubnetIds": ["subnet-1"]},
        )
        there = [{"SubnetId": "subnet-2", "VpcId": "vpc-1", "AvailabilityZone": "us-east-1b"}]
        stub.add_response("describe_subnets", {"Subnets": there})
        advice = zones.cheapest_zone(ec2, "c6i.8xlarge", "subnet-1")
    assert [z["zone"] for z in advice["zones"]] == ["us-east-1b", "us-east-1c", "us-east-1a"]
    assert (advice["cheapest_zone"], advice["subnets_there"]) == ("us-east-1b", ["subnet-2"])
    assert advice["summary"] == (
        "spot c6i.8xlarge is cheapest in us-east-1b ($0.2900 an hour); the configured subnet subnet-1"
        " is in us-east-1a, $0.3400; subnet-2 of vpc-1 is in us-east-1b (cluster.subnet_id)"
    )


def test_spot_zones_and_subnets_from_moto(moto):
    """The same through moto's server: its spot price history (one price, every zone that offers the
    type: the tie goes to the first zone by name) and a VPC of its own with subnets in two zones.
    Where the emulation stops: moto's prices do not differ by zone (the Stubber test above does).
    """
    import boto3

    ec2 = boto3.client("ec2", region_name="us-east-1")
    vpc = ec2.create_vpc(CidrBlock="10.20.0.0/16")["Vpc"]["VpcId"]
    subnets = {
        zone: ec2.create_subnet(VpcId=vpc, CidrBlock=cidr, AvailabilityZone=zone)["Subnet"]["SubnetId"]
        for zone, cidr in (("us-east-1a", "10.20.1.0/24"), ("us-east-1b", "10.20.2.0/24"))
    }
    advice = zones.cheapest_zone(ec2, "c6i.2xlarge", subnets["us-east-1b"])
    assert len(advice["zones"]) > 1 and advice["cheapest_zone"] == "us-east-1a"
    assert (advice["vpc_id"], advice["subnet_zone"]) == (vpc, "us-east-1b")
    assert advice["subnets_there"] == [subnets["us-east-1a"]]
    assert f"{subnets['us-east-1a']} of {vpc} is in us-east-1a" in advice["summary"]
    with pytest.raises(prices.PriceError, match=r"no spot price history for x9\.nothing"):
        zones.spot_zones(ec2, "x9.nothing")


def test_zone_advice_is_advice(moto, caplog):
    """The rules' entry: the advice from moto's server; an unpriced type, or a subnet the VPC does not
    have, a warning and no advice, not a failure.
    """
    log = logging.getLogger("test_zone_advice")
    assert zones.zone_advice("us-east-1", "c6i.2xlarge", "", log)["cheapest_zone"] == "us-east-1a"
    with caplog.at_level(logging.WARNING):
        assert zones.zone_advice("us-east-1", "x9.nothing", "", log) is None
        assert zones.zone_advice("us-east-1", "c6i.2xlarge", "subnet-0000000000", log) is None
    warnings = [r.getMessage() for r in caplog.records]
    assert "no spot price by zone for x9.nothing: no spot price history for x9.nothing" in warnings
    assert any("c6i.2xlarge" in w and "subnet-0000000000" in w for w in warnings), warnings


T3_MEDIUM = prices.Price("t3.medium", "us-east-1", 2, 4.0, 0.0416, "on-demand", "table", "2024-06-01")
RUBIN = budget.DetectorCost(210.0, 315.0, "Rubin's published 210-315 core-s per CCD")


def rubin_estimate(visits=250, nodes=2, cpus=1, mem_mb=1000.0):
    work = budget.Processing(visits=visits, detectors=4, visits_per_job=1, cpus=cpus, mem_mb=mem_mb)
    cluster = budget.Cluster(C6I_8XL, T3_MEDIUM, nodes, 100.0, 0.08, scaledown_idle_s=600.0)
    return budget.estimate(work, cluster, RUBIN)


def test_preflight_estimate_exact():
    """1,000 CCDs (250 visits of 4) at 210-315 core-s on 2 c6i.8xlarge nodes (32 one-CPU jobs each):
    4 waves of jobs of 10 + 4 x 210 s; the whole cluster paid, not only the jobs.
    """
    est = rubin_estimate()
    assert (est.ccds, est.jobs, est.jobs_per_node, est.nodes_used) == (1000, 250, 32, 2)
    assert est.core_s_low == 210_000
    job_h = (10 + 4 * 210) / 3600
    assert est.wall_h_low == pytest.approx(4 * job_h)
    low = {category: usd[0] for category, usd in est.breakdown.items()}
    jobs_usd = 250 * job_h / 32 * 1.36  # a job holds 1 of the node's 32 vCPUs
    assert low["jobs: process_batch"] == pytest.approx(jobs_usd)
    # both nodes from the start to the end and their 10 idle minutes, less what the jobs used
    assert low["idle compute"] == pytest.approx(2 * (4 * job_h + 1 / 6) * 1.36 - jobs_usd)
    lifetime_h = 4 * job_h + 1 / 6 + 0.5  # and the cluster's set-up
    assert low["head node"] == pytest.approx(0.0416 * lifetime_h)
    assert low["shared storage"] == pytest.approx(100 * 0.08 * lifetime_h / 730)
    assert est.usd_low == pytest.approx(sum(low.values()))
    assert est.usd_low == pytest.approx(3.1069, abs=1e-4)
    assert est.usd_high > est.usd_low and est.wall_h_high == pytest.approx(4 * (10 + 4 * 315) / 3600)


def test_a_small_run_pays_mostly_for_the_cluster():
    """One visit: a few seconds of work, but a node's idle time, the head node and the storage."""
    est = rubin_estimate(visits=1)
    low = {category: usd[0] for category, usd in est.breakdown.items()}
    assert est.nodes_used == 1
    assert low["jobs: process_batch"] < 0.1 * est.usd_low
    assert low["idle compute"] > low["jobs: process_batch"] and low["head node"] > 0


def test_a_head_node_without_a_price_is_left_out():
    work = budget.Processing(visits=250, detectors=4, visits_per_job=1, cpus=1, mem_mb=1000.0)
    cluster = budget.Cluster(C6I_8XL, None, 2, 100.0, 0.08, scaledown_idle_s=600.0)
    est = budget.estimate(work, cluster, RUBIN)
    assert "head node" not in est.breakdown
    assert est.usd_low == pytest.approx(rubin_estimate().usd_low - rubin_estimate().breakdown["head node"][0])


def test_a_job_that_fits_no_node_is_refused():
    with pytest.raises(budget.FitError, match=r"\(40 CPUs, 1000 MB\) does not fit one c6i.8xlarge node"):
        rubin_estimate(cpus=40)
    with pytest.raises(budget.FitError, match=r"does not fit .* 64 GiB"):
        rubin_estimate(mem_mb=70_000)
    # memory, not CPUs, can bound the jobs a node holds
    assert rubin_estimate(mem_mb=16_384).jobs_per_node == 4


def test_detector_figures():
    simcam = budget.detector_cost("auto", "SimCam", 512)
    mpx = 512**2 / 1e6
    assert (simcam.low, simcam.high) == pytest.approx((2.2 * mpx, 2.6 * mpx))
    assert "SimCam's measured 2.2-2.6 core-s per megapixel" in simcam.basis
    decam = budget.detector_cost("auto", "DECam", 512)
    assert (decam.low, decam.high, decam.basis) == (210, 315, "Rubin's published 210-315 core-s per CCD")
    given = budget.detector_cost([100, 150], "DECam", 512)
    assert (given.low, given.high) == (100, 150) and "budget.core_s_per_ccd" in given.basis


def test_job_runtime_grows_with_detectors_visits_and_attempts():
    # SimCam's default visit: 4 detectors of 0.26 Mpx, one CPU: its start and a minute
    assert budget.job_minutes(1, 4, 1, 0.68) == 5 + 1
    assert budget.job_minutes(1, 4, 1, 0.68, attempt=2) == 12
    # a 62-CCD DECam visit at 315 core-s: 8 CPUs take 8 rounds of detectors, twice over
    assert budget.job_minutes(1, 62, 8, 315.0) == 5 + 85
    assert budget.job_minutes(1, 62, 1, 315.0) == 5 + 652
    assert budget.job_minutes(25, 4, 1, 0.68) == 5 + 11


def test_automatic_cpus_aim_for_an_hour_a_visit_within_one_node():
    c6i_2xl = prices.Price("c6i.2xlarge", "us-east-1", 8, 16.0, 0.34, "on-demand", "table", "2024-06-01")
    r6i_2xl = prices.Price("r6i.2xlarge", "us-east-1", 8, 64.0, 0.504, "on-demand", "table", "2024-06-01")
    first, per_cpu = budget.detector_memory("DECam")
    assert (first, per_cpu) == (4500, 4000) and budget.detector_memory("SimCam") == (1000, 500)
    # DECam's 62 CCDs at 315 core-s: 6 CPUs make an hour; a c6i.2xlarge's 16 GiB hold 3 of them
    assert budget.visit_cpus(62, 315.0, first, per_cpu, None) == 6
    assert budget.visit_cpus(62, 315.0, first, per_cpu, c6i_2xl) == 3
    assert budget.job_memory(first, per_cpu, 3) == 12_500 <= 16 * 1024
    assert budget.visit_cpus(62, 315.0, first, per_cpu, r6i_2xl) == 6
    # LSSTCam's 189: 17 CPUs for the hour, but a node of 8 vCPUs
    assert budget.visit_cpus(189, 315.0, first, per_cpu, r6i_2xl) == 8
    # SimCam's 4 small detectors: one CPU; never more CPUs than detectors
    assert budget.visit_cpus(4, 0.68, 1000, 500, c6i_2xl) == 1
    assert budget.visit_cpus(2, 5000.0, 1000, 500, c6i_2xl) == 2


def test_budget_refuses_and_override_passes():
    est = rubin_estimate()  # $3.11-$4.56
    assert budget.check_budget(est, max_usd=5.0).startswith("within budget")
    said = r"exceeds the budget: .*\$4\.\d\d for the cluster, budget \$3\.00"
    with pytest.raises(budget.BudgetError, match=said):
        budget.check_budget(est, max_usd=3.0)
    assert budget.check_budget(est, max_usd=3.0, override=True).startswith("OVER BUDGET, overridden")


# --- a run's costs from a known timing table ---------------------------------------------------

C6I_2XL = prices.Price("c6i.2xlarge", "us-east-1", 8, 16.0, 0.34, "on-demand", "table", "2024-06-01")
T3_MEDIUM = prices.Price("t3.medium", "us-east-1", 2, 4.0, 0.0416, "on-demand", "table", "2024-06-01")
T0 = pd.Timestamp("2026-11-26T10:00:00Z")


def known_timings() -> pd.DataFrame:
    """Two visit jobs of one hour on one node, an ingest, and the first visit's quanta."""

    def row(kind, rule, visit, start_s, wall_s, cpu_s, task="", detector=None, rss=300.0):
        start = T0 + pd.Timedelta(seconds=start_s)
        return {
            "kind": kind,
            "rule": rule,
            "visit": visit,
            "detector": detector,
            "task_label": task,
            "node": "node-a",
            "start": start,
            "end": start + pd.Timedelta(seconds=wall_s),
            "wall_s": wall_s,
            "cpu_s": cpu_s,
            "max_rss_mb": rss,
        }

    rows = [
        row("job", "ingest_raws", 1, 0, 360, 300),
        row("job", "process_batch", 1, 360, 3600, 3000),
        row("job", "process_batch", 2, 360, 3600, 3600, rss=4096),
        row("quantum", "process_batch", 1, 400, 1800, 1500, task="measure", detector=0),
        row("quantum", "process_batch", 1, 2200, 900, 800, task="isr", detector=1),
    ]
    table = pd.DataFrame(rows)
    table["visit"] = table["visit"].astype("Int64")
    table["detector"] = table["detector"].astype("Int64")
    return table


REQUESTED = {"ingest_raws": {"cpus": 1, "mem_mb": 1000}, "process_batch": {"cpus": 2, "mem_mb": 1000}}


def test_run_job_costs_on_demand_and_spot_side_by_side():
    spot = prices.assumed_spot(C6I_2XL, 0.25)
    assert spot.usd_per_hour == pytest.approx(0.085)
    assert spot.source == "table x 0.25 (assumed spot fraction)"
    jobs = model.run_job_costs(known_timings(), REQUESTED, C6I_2XL, spot)
    assert len(jobs) == 3  # quanta are not jobs
    # process_batch: 2 of 8 CPUs for an hour at $0.34/h = $0.085; spot a quarter of that
    visit = jobs[jobs["rule"] == "process_batch"].iloc[0]
    assert visit["node_share"] == pytest.approx(0.25)
    assert visit["usd_on_demand"] == pytest.approx(0.085)
    assert visit["usd_spot"] == pytest.approx(0.02125)
    # ingest: 1 of 8 CPUs for 0.1 h
    ingest = jobs[jobs["rule"] == "ingest_raws"].iloc[0]
    assert ingest["usd_on_demand"] == pytest.approx(0.34 * 0.1 / 8)


def test_task_costs_share_a_visit_job_by_quantum_time():
    timings = known_timings()
    jobs = model.run_job_costs(timings, REQUESTED, C6I_2XL, prices.assumed_spot(C6I_2XL))
    tasks = model.task_costs(jobs, timings, "process_batch")
    visit1 = tasks[(tasks["rule"] == "process_batch") & (tasks["visit"] == 1)].set_index("task")
    assert visit1.loc["measure", "usd_on_demand"] == pytest.approx(0.085 * 1800 / 3600)
    assert visit1.loc["isr", "usd_on_demand"] == pytest.approx(0.085 * 900 / 3600)
    assert visit1.loc["(visit job overhead)", "wall_s"] == pytest.approx(900)
    assert visit1.loc["measure", "detector"] == 0
    # nothing is lost or counted twice
    assert tasks["usd_on_demand"].sum() == pytest.approx(jobs["usd_on_demand"].sum())
    assert tasks["usd_spot"].sum() == pytest.approx(jobs["usd_spot"].sum())


def test_detector_costs_sum_the_quanta_of_each_detector():
    timings = known_timings()
    jobs = model.run_job_costs(timings, REQUESTED, C6I_2XL, prices.assumed_spot(C6I_2XL))
    detectors = model.detector_costs(model.task_costs(jobs, timings, "process_batch")).set_index(
        ["visit", "detector"]
    )
    assert list(detectors.index) == [(1, 0), (1, 1)]
    assert detectors.loc[(1, 0), "usd_on_demand"] == pytest.approx(0.085 * 1800 / 3600)
    assert detectors.loc[(1, 1), "wall_s"] == pytest.approx(900)


def test_busy_hours_is_the_union_of_padded_intervals():
    starts = pd.Series([T0, T0 + pd.Timedelta(minutes=30), T0 + pd.Timedelta(hours=5)])
    ends = pd.Series([T0 + pd.Timedelta(hours=1), T0 + pd.Timedelta(hours=2), T0 + pd.Timedelta(hours=6)])
    assert model.busy_hours(starts, ends) == pytest.approx(3.0)
    # ten minutes of scale-down idle time after each stretch
    assert model.busy_hours(starts, ends, pad_s=600) == pytest.approx(3.0 + 2 / 6)


def test_fixed_costs_head_node_storage_and_idle_compute_exact():
    timings = known_timings()
    jobs = model.run_job_costs(timings, REQUESTED, C6I_2XL, prices.assumed_spot(C6I_2XL))
    fixed = model.fixed_costs(jobs, T3_MEDIUM, C6I_2XL, 100, 0.08, scaledown_idle_s=600).set_index("category")
    # the cluster exists from the first start to 10 minutes after the last end: 4 h 16 min ... = 70 min
    lifetime_h = (360 + 3600 + 600) / 3600
    assert fixed.loc["head node", "usd"] == pytest.approx(0.0416 * lifetime_h)
    assert fixed.loc["shared storage", "usd"] == pytest.approx(100 * 0.08 * lifetime_h / 730)
    # node paid lifetime_h; jobs hold 1/8 x 0.1 h + 2 x 1/4 x 1 h of it
    idle_h = lifetime_h - (0.1 / 8 + 0.5)
    assert fixed.loc["idle compute", "usd"] == pytest.approx(0.34 * idle_h)
    assert fixed.loc["head node", "price_source"] == "table"
    # a known cluster lifetime replaces the run's own span
    fixed = model.fixed_costs(jobs, T3_MEDIUM, C6I_2XL, 100, 0.08, 600, lifetime_h=10).set_index("category")
    assert fixed.loc["head node", "usd"] == pytest.approx(0.416)


def test_cost_breakdown_totals_jobs_and_fixed_costs_on_the_chosen_market():
    timings = known_timings()
    spot = prices.assumed_spot(C6I_2XL, 0.25)
    jobs = model.run_job_costs(timings, REQUESTED, C6I_2XL, spot)
    fixed = model.fixed_costs(jobs, T3_MEDIUM, spot, 100, 0.08, 600)
    breakdown = model.cost_breakdown(jobs, fixed, "spot").set_index("category")["usd"]
    assert breakdown["jobs: process_batch"] == pytest.approx(2 * 0.02125)
    assert breakdown["total"] == pytest.approx(jobs["usd_spot"].sum() + fixed["usd"].sum())


def test_cluster_lifetime_replaces_the_runs_own_span_for_head_node_and_storage():
    timings = known_timings()
    spot = prices.assumed_spot(C6I_2XL, 0.25)
    jobs = model.run_job_costs(timings, REQUESTED, C6I_2XL, spot)
    fixed = model.fixed_costs(jobs, T3_MEDIUM, spot, 100, 0.08, 600)
    run = model.cost_breakdown(jobs, fixed, "spot")
    whole = model.with_cluster_lifetime(run, 2.5, T3_MEDIUM, 100, 0.08).set_index("category")["usd"]
    assert whole["head node"] == pytest.approx(0.0416 * 2.5)
    assert whole["shared storage"] == pytest.approx(100 * 0.08 * 2.5 / 730)
    kept = run.set_index("category")["usd"]
    assert whole["jobs: process_batch"] == kept["jobs: process_batch"]
    assert whole["idle compute"] == kept["idle compute"]
    assert whole["total"] == pytest.approx(whole.drop("total").sum())


def test_visit_costs_sum_each_visits_jobs():
    jobs = model.run_job_costs(known_timings(), REQUESTED, C6I_2XL, prices.assumed_spot(C6I_2XL))
    visits = model.visit_costs(jobs).set_index("visit")
    assert visits.loc[1, "jobs"] == 2
    assert visits.loc[1, "usd_on_demand"] == pytest.approx(0.085 + 0.34 * 0.1 / 8)
    assert visits.loc[2, "usd_on_demand"] == pytest.approx(0.085)


def test_instance_comparison_from_measured_cpu_and_memory():
    jobs = model.run_job_costs(known_timings(), REQUESTED, C6I_2XL, prices.assumed_spot(C6I_2XL))
    r6i_large = prices.Price("r6i.large", "us-east-1", 2, 16.0, 0.126, "on-demand", "table", "2024-06-01")
    table = model.instance_comparison(
        jobs, [(C6I_2XL, prices.assumed_spot(C6I_2XL)), (r6i_large, prices.assumed_spot(r6i_large))]
    ).set_index("instance_type")
    # measured: each job needs 1 core (CPU time <= wall time); visit 2 peaks at 4 GB
    c6i = 0.34 * (0.1 * max(1 / 8, 300 / 16384) + 1 * max(1 / 8, 300 / 16384) + 1 * max(1 / 8, 4096 / 16384))
    assert table.loc["c6i.2xlarge", "usd_on_demand"] == pytest.approx(c6i)
    assert table.loc["c6i.2xlarge", "binding_resource"] == "memory"
    r6i = 0.126 * (0.1 * 0.5 + 1 * 0.5 + 1 * 0.5)
    assert table.loc["r6i.large", "usd_on_demand"] == pytest.approx(r6i)
    assert table.loc["r6i.large", "binding_resource"] == "cpu"
    assert table["largest_job_fits"].all()
    # dollars a visit: the two visits' jobs
    assert table.loc["r6i.large", "usd_per_visit_on_demand"] == pytest.approx(r6i / 2)
    assert table.loc["r6i.large", "usd_per_visit_spot"] == pytest.approx(r6i * 0.25 / 2)


def test_recommendation_names_the_cheapest_type_that_fits_beside_the_configured_one():
    jobs = model.run_job_costs(known_timings(), REQUESTED, C6I_2XL, prices.assumed_spot(C6I_2XL))
    m6i_large = prices.Price("m6i.large", "us-east-1", 2, 8.0, 0.096, "on-demand", "table", "2024-06-01")
    # a node too small for visit 2's 4 GB, and cheaper than both
    t3_small = prices.Price("t3.small", "us-east-1", 2, 2.0, 0.0208, "on-demand", "table", "2024-06-01")
    types = [C6I_2XL, m6i_large, t3_small]
    table = model.instance_comparison(jobs, [(p, prices.assumed_spot(p)) for p in types], "c6i.2xlarge")
    assert table.set_index("instance_type")["configured"].to_dict() == {
        "c6i.2xlarge": True,
        "m6i.large": False,
        "t3.small": False,
    }
    advice = model.recommend(table, "spot")
    assert advice["cheapest"]["instance_type"] == "m6i.large"  # t3.small does not fit the largest job
    assert advice["configured"]["instance_type"] == "c6i.2xlarge"
    m6i, c6i = advice["cheapest"]["usd_per_visit_spot"], advice["configured"]["usd_per_visit_spot"]
    assert m6i == pytest.approx(0.096 * 0.25 * (0.1 * 0.5 + 0.5 + 0.5) / 2)
    assert advice["summary"] == (
        f"cheapest instance type that fits the largest job: m6i.large, ${m6i:.6f} a visit on spot,"
        f" against ${c6i:.6f} on the configured c6i.2xlarge ({1 - m6i / c6i:.0%} less)"
    )
    # a type as cheap as the configured one does not displace it
    twin = table[table["configured"]].assign(instance_type="c6i.twin", configured=False)
    assert model.recommend(pd.concat([twin, table]), "spot")["cheapest"]["instance_type"] == "m6i.large"
    tie = pd.concat([twin, table[table["instance_type"] != "m6i.large"]])
    assert model.recommend(tie, "spot")["cheapest"]["instance_type"] == "c6i.2xlarge"
    alone = model.recommend(table[table["configured"]], "on-demand")
    assert alone["summary"].endswith("(the configured type)")
    nothing = model.recommend(table[table["instance_type"] == "t3.small"], "spot")
    assert nothing["cheapest"] is None
    assert nothing["summary"] == "no compared instance type fits the largest job"


def test_measured_core_seconds_per_ccd_replace_rubins_figures():
    low, high = budget.measured_core_s_per_ccd(known_timings(), REQUESTED, 4, "process_batch")
    assert (low, high) == (pytest.approx(3600 * 2 / 4), pytest.approx(3600 * 2 / 4))
    with pytest.raises(ValueError, match="no process_batch jobs"):
        budget.measured_core_s_per_ccd(known_timings().iloc[:1], REQUESTED, 4, "process_batch")


def test_price_cache_reuses_fresh_prices_and_refetches_stale_ones(tmp_path):
    cache = prices.PriceCache(tmp_path / "cache.json", max_age_days=7)
    fetched = []

    def fetch():
        fetched.append(1)
        return C6I_2XL

    now = datetime(2026, 11, 26, tzinfo=UTC)
    assert cache.get("c6i.2xlarge", "us-east-1", "on-demand", fetch, now=now) == C6I_2XL
    # a new cache object reads the file: the price is fresh, no second fetch
    again = prices.PriceCache(tmp_path / "cache.json", max_age_days=7)
    later = datetime(2026, 11, 30, tzinfo=UTC)
    assert again.get("c6i.2xlarge", "us-east-1", "on-demand", fetch, now=later) == C6I_2XL
    assert len(fetched) == 1
    stale = datetime(2026, 12, 10, tzinfo=UTC)
    again.get("c6i.2xlarge", "us-east-1", "on-demand", fetch, now=stale)
    assert len(fetched) == 2


def test_run_prices_from_the_table_need_no_aws():
    on_demand, spot = prices.run_prices("c6i.2xlarge", "us-east-1", "table", table=TABLE, spot_fraction=0.3)
    assert on_demand == C6I_2XL
    assert spot.usd_per_hour == pytest.approx(0.102)
    assert spot.market == "spot"


def test_run_prices_from_aws_are_cached(tmp_path):
    """The "aws" price source end to end: Pricing API and spot history (both through
    botocore's Stubber: moto has no Pricing API), then the cache answers a second run
    without any call (a Stubber with no responses left would fail if asked)."""
    pricing, ec2 = fake_client("pricing"), fake_client("ec2")
    history = spot_history(("us-east-1a", "0.31"))

    class Session:
        def client(self, service, region_name=None):
            return {"pricing": pricing, "ec2": ec2}[service]

    cache_path = tmp_path / "prices.json"
    with Stubber(pricing) as prices_stub, Stubber(ec2) as ec2_stub:
        prices_stub.add_response(
            "get_products", {"PriceList": [_product("c6i.8xlarge", "1.36")], "FormatVersion": "aws_v1"}
        )
        ec2_stub.add_response("describe_spot_price_history", {"SpotPriceHistory": history})
        on_demand, spot = prices.run_prices(
            "c6i.8xlarge", "us-east-1", "aws", cache=prices.PriceCache(cache_path), session=Session()
        )
        assert (on_demand.source, spot.source) == ("pricing-api", "spot-history")
        assert spot.usd_per_hour == pytest.approx(0.31)
        again = prices.run_prices(
            "c6i.8xlarge", "us-east-1", "aws", cache=prices.PriceCache(cache_path), session=Session()
        )
        prices_stub.assert_no_pending_responses()
    assert again == (on_demand, spot)
