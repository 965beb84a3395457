"""The pre-flight budget check through the real ``snakemake`` command.

The estimate rule needs no stack and no data: prices come from the committed
table, so these run in seconds and contact nothing.
"""

from __future__ import annotations

import json

import pytest
import yaml
from conftest import copy_workflow, snakemake

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
    # 6 visits x 4 CCDs x 210-315 core-s on 4 nodes of 8 vCPUs at spot, $0.34 x 0.25 per node-hour
    assert record["ccds"] == 24
    assert record["basis"] == "Rubin's published 210-315 core-s per CCD"
    assert record["usd_high"] == pytest.approx(24 * 315 / 32 / 3600 * 4 * 0.085)
    assert (record["price_source"], record["price_as_of"]) == (
        "table x 0.25 (assumed spot fraction)",
        "2024-06-01",
    )
    assert record["decision"].startswith("within budget")
