"""The cost model with known timing records and known prices: exact dollars.

Prices here come from the committed fallback table or are written out in the
test; no AWS endpoint is contacted.
"""

from __future__ import annotations

import pandas as pd
import pytest

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
