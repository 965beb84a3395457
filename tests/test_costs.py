"""The cost model with known timing records and known prices: exact dollars.

Prices here come from the committed fallback table, are written out in the
test, or come from botocore's Stubber; no AWS endpoint is contacted.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime

import boto3
import pandas as pd
import pytest
from botocore.stub import Stubber

from lsst_on_aws import costs

C6I_8XL = costs.Price("c6i.8xlarge", "us-east-1", 32, 64.0, 1.36, "on-demand", "table", "2024-06-01")


def test_fallback_table_prices_carry_source_and_date():
    price = costs.table_price("c6i.8xlarge", "us-east-1")
    assert price == C6I_8XL


def test_unknown_instance_type_is_named():
    with pytest.raises(costs.PriceError, match=r"no price for c9z\.huge in us-east-1"):
        costs.table_price("c9z.huge", "us-east-1")


def test_fallback_table_is_well_formed():
    table = costs.load_price_table()
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
    assert costs.node_share(cpus, mem_mb, C6I_8XL) == pytest.approx(share)


def test_job_costs_exact_dollars():
    jobs = pd.DataFrame(
        {
            "visit": [1, 2, 3],
            "wall_s": [3600.0, 1800.0, 36.0],
            "cpus": [1, 1, 32],
            "mem_mb": [1000, 32768, 1000],
        }
    )
    out = costs.job_costs(jobs, C6I_8XL)
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
        price = costs.api_price(pricing, "c6i.8xlarge", "us-east-1")
        stub.assert_no_pending_responses()
    assert price == costs.Price(
        "c6i.8xlarge", "us-east-1", 32, 64.0, 1.36, "on-demand", "pricing-api", "2026-11-01"
    )


def test_pricing_api_without_a_price_is_an_error():
    """Stubber again (no Pricing API in moto): an empty PriceList names the instance type."""
    pricing = fake_client("pricing")
    with Stubber(pricing) as stub:
        stub.add_response("get_products", {"PriceList": [], "FormatVersion": "aws_v1"})
        with pytest.raises(costs.PriceError, match=r"no on-demand Linux price for c6i\.8xlarge"):
            costs.api_price(pricing, "c6i.8xlarge", "us-east-1")


def test_spot_price_is_the_lowest_zone_with_stubber():
    """Spot history through Stubber, with a canned answer of two zones."""
    ec2 = boto3.client(
        "ec2", region_name="us-east-1", aws_access_key_id="testing", aws_secret_access_key="testing"
    )
    when = datetime(2026, 11, 25, 12, tzinfo=UTC)
    history = [
        {
            "AvailabilityZone": "us-east-1a",
            "InstanceType": "c6i.8xlarge",
            "SpotPrice": "0.3400",
            "Timestamp": when,
        },
        {
            "AvailabilityZone": "us-east-1b",
            "InstanceType": "c6i.8xlarge",
            "SpotPrice": "0.2900",
            "Timestamp": when,
        },
    ]
    with Stubber(ec2) as stub:
        stub.add_response("describe_spot_price_history", {"SpotPriceHistory": history})
        price = costs.spot_price(ec2, C6I_8XL)
    assert price.usd_per_hour == pytest.approx(0.29)
    assert (price.market, price.source, price.as_of) == ("spot", "spot-history", "2026-11-25")
    # the same job, spot against on-demand: the ratio of the prices
    jobs = pd.DataFrame({"wall_s": [3600.0], "cpus": [32], "mem_mb": [1000]})
    assert costs.job_costs(jobs, price)["usd"].iloc[0] == pytest.approx(0.29)


def test_preflight_estimate_exact():
    # 1,000 CCDs x 210-315 core-s over 2 x 32 cores: 0.911-1.367 h; 2 nodes x 1.36 $/h
    est = costs.estimate(1000, C6I_8XL, nodes=2)
    assert est.core_s_low == 210_000
    assert est.wall_h_low == pytest.approx(210_000 / 64 / 3600)
    assert est.usd_low == pytest.approx(210_000 / 64 / 3600 * 2 * 1.36)
    assert est.usd_high == pytest.approx(315_000 / 64 / 3600 * 2 * 1.36)
    assert est.usd_high == pytest.approx(3.71875)


def test_budget_refuses_and_override_passes():
    est = costs.estimate(1000, C6I_8XL, nodes=2)  # $2.48-$3.72
    assert costs.check_budget(est, max_usd=5.0).startswith("within budget")
    with pytest.raises(costs.BudgetError, match=r"exceeds the budget: .*\$3\.72, budget \$3\.00"):
        costs.check_budget(est, max_usd=3.0)
    assert costs.check_budget(est, max_usd=3.0, override=True).startswith("OVER BUDGET, overridden")
