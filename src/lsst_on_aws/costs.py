"""What each job cost: instance prices, and a job's share of its node.

A job that holds part of a node is charged that part: its cost is the
instance's hourly price x its wall time x the larger of its share of the
node's CPUs and its share of the node's memory (a job that takes half the
memory blocks half the node, whatever its CPU count).

Prices carry where they came from (``source``: the Pricing API, spot price
history, or the committed fallback table) and their date (``as_of``), and
every cost row keeps both, so a report never shows a dollar figure without
its provenance.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import pandas as pd

FALLBACK_TABLE = Path(__file__).resolve().parents[2] / "config/prices/ec2-on-demand-2024-06.csv"


class PriceError(LookupError):
    """No price is known for an instance type in a region."""


@dataclass(frozen=True)
class Price:
    """One instance type's hourly price, its size, and where the price came from."""

    instance_type: str
    region: str
    vcpu: int
    memory_gib: float
    usd_per_hour: float
    market: str  # "on-demand" or "spot"
    source: str  # "pricing-api", "spot-history" or "table"
    as_of: str  # ISO date of the price


def load_price_table(path: Path | str = FALLBACK_TABLE) -> pd.DataFrame:
    """The committed fallback table: on-demand Linux prices by instance type and region."""
    table = pd.read_csv(path, comment="#")
    missing = {"instance_type", "region", "vcpu", "memory_gib", "usd_per_hour", "as_of"} - set(table.columns)
    if missing:
        raise ValueError(f"price table {path} lacks column(s) {', '.join(sorted(missing))}")
    return table


def table_price(instance_type: str, region: str, table: pd.DataFrame | None = None) -> Price:
    """The fallback table's on-demand price of ``instance_type`` in ``region``."""
    table = load_price_table() if table is None else table
    rows = table[(table["instance_type"] == instance_type) & (table["region"] == region)]
    if rows.empty:
        known = sorted(table.loc[table["region"] == region, "instance_type"])
        raise PriceError(
            f"no price for {instance_type} in {region} in the fallback table"
            f" (it lists {', '.join(known) or 'nothing for this region'}); the Pricing API has it"
        )
    row = rows.iloc[0]
    return Price(
        instance_type=instance_type,
        region=region,
        vcpu=int(row["vcpu"]),
        memory_gib=float(row["memory_gib"]),
        usd_per_hour=float(row["usd_per_hour"]),
        market="on-demand",
        source="table",
        as_of=str(row["as_of"]),
    )


def node_share(cpus: float, mem_mb: float, price: Price) -> float:
    """The fraction of a node a job holds: the larger of its CPU share and memory share, at most 1."""
    cpu_share = cpus / price.vcpu
    mem_share = mem_mb / (price.memory_gib * 1024)
    return min(1.0, max(cpu_share, mem_share))


def job_costs(jobs: pd.DataFrame, price: Price) -> pd.DataFrame:
    """Each job's cost on instances priced by ``price``.

    ``jobs`` has one row per job with ``wall_s``, ``cpus`` and ``mem_mb``
    (what the job held: its requested CPUs and memory). Returns ``jobs`` with
    ``node_share``, ``usd`` and the price's ``instance_type``, ``market``,
    ``usd_per_hour``, ``price_source`` and ``price_as_of``.
    """
    out = jobs.copy()
    out["node_share"] = [node_share(c, m, price) for c, m in zip(out["cpus"], out["mem_mb"], strict=True)]
    out["usd"] = price.usd_per_hour * out["wall_s"] / 3600.0 * out["node_share"]
    out["instance_type"] = price.instance_type
    out["market"] = price.market
    out["usd_per_hour"] = price.usd_per_hour
    out["price_source"] = price.source
    out["price_as_of"] = price.as_of
    return out


# The Pricing API names regions by their location, not their code.
REGION_LOCATIONS = {
    "us-east-1": "US East (N. Virginia)",
    "us-east-2": "US East (Ohio)",
    "us-west-1": "US West (N. California)",
    "us-west-2": "US West (Oregon)",
    "eu-west-1": "EU (Ireland)",
    "eu-central-1": "EU (Frankfurt)",
    "ap-northeast-1": "Asia Pacific (Tokyo)",
}


def api_price(pricing, instance_type: str, region: str) -> Price:
    """The on-demand Linux price from the AWS Pricing API (``pricing.get_products``).

    ``pricing`` is a boto3 ``pricing`` client (the API answers from
    us-east-1 and ap-south-1 only). Shared-tenancy, no pre-installed
    software, used capacity: the price an ordinary on-demand instance pays.
    """
    if region not in REGION_LOCATIONS:
        raise PriceError(
            f"region {region} has no Pricing API location here (known: {', '.join(REGION_LOCATIONS)})"
        )
    filters = {
        "instanceType": instance_type,
        "location": REGION_LOCATIONS[region],
        "operatingSystem": "Linux",
        "tenancy": "Shared",
        "preInstalledSw": "NA",
        "capacitystatus": "Used",
    }
    response = pricing.get_products(
        ServiceCode="AmazonEC2",
        Filters=[{"Type": "TERM_MATCH", "Field": k, "Value": v} for k, v in filters.items()],
        MaxResults=10,
    )
    for text in response.get("PriceList", []):
        product = json.loads(text)
        attributes = product["product"]["attributes"]
        for term in product.get("terms", {}).get("OnDemand", {}).values():
            for dimension in term["priceDimensions"].values():
                usd = float(dimension["pricePerUnit"]["USD"])
                if dimension.get("unit") == "Hrs" and usd > 0:
                    return Price(
                        instance_type=instance_type,
                        region=region,
                        vcpu=int(attributes["vcpu"]),
                        memory_gib=float(attributes["memory"].split()[0].replace(",", "")),
                        usd_per_hour=usd,
                        market="on-demand",
                        source="pricing-api",
                        as_of=str(term.get("effectiveDate", ""))[:10] or _today(),
                    )
    raise PriceError(f"the Pricing API lists no on-demand Linux price for {instance_type} in {region}")


def spot_price(ec2, on_demand: Price) -> Price:
    """The latest Linux spot price of an instance type, from ``ec2.describe_spot_price_history``.

    The lowest over the region's availability zones, as a scheduler that may
    use any of them would pay; it keeps the on-demand price's size.
    """
    response = ec2.describe_spot_price_history(
        InstanceTypes=[on_demand.instance_type],
        ProductDescriptions=["Linux/UNIX"],
        StartTime=datetime.now(UTC),
    )
    history = response.get("SpotPriceHistory", [])
    if not history:
        raise PriceError(f"no spot price history for {on_demand.instance_type} in {on_demand.region}")
    best = min(history, key=lambda h: float(h["SpotPrice"]))
    return Price(
        instance_type=on_demand.instance_type,
        region=on_demand.region,
        vcpu=on_demand.vcpu,
        memory_gib=on_demand.memory_gib,
        usd_per_hour=float(best["SpotPrice"]),
        market="spot",
        source="spot-history",
        as_of=best["Timestamp"].date().isoformat(),
    )


def _today() -> str:
    return datetime.now(UTC).date().isoformat()


class BudgetError(RuntimeError):
    """The estimated cost exceeds the budget, and no override was given."""


# Rubin's published single-frame processing cost on AWS: 210-315 core-seconds per CCD.
RUBIN_CORE_S_PER_CCD = (210.0, 315.0)


@dataclass(frozen=True)
class Estimate:
    """A pre-flight estimate: wall time and dollars, low and high."""

    ccds: int
    core_s_low: float
    core_s_high: float
    wall_h_low: float
    wall_h_high: float
    usd_low: float
    usd_high: float
    basis: str  # where the per-CCD figure came from

    def describe(self) -> str:
        return (
            f"{self.ccds} CCDs at {self.basis}: {self.wall_h_low:.2f}-{self.wall_h_high:.2f} h of"
            f" wall time, ${self.usd_low:.2f}-${self.usd_high:.2f}"
        )


def estimate(
    ccds: int,
    price: Price,
    nodes: int,
    core_s_per_ccd: tuple[float, float] = RUBIN_CORE_S_PER_CCD,
    basis: str = "Rubin's published 210-315 core-s per CCD",
) -> Estimate:
    """Wall time and cost of processing ``ccds`` CCDs on ``nodes`` instances priced by ``price``.

    The work (core-seconds) is spread over every core of every node; the
    cost is whole nodes for that wall time (a node is paid while it works).
    Replace ``core_s_per_ccd`` by the project's own measured figure when there is one.
    """
    cores = nodes * price.vcpu
    low, high = (ccds * c for c in core_s_per_ccd)
    wall_low, wall_high = low / cores / 3600.0, high / cores / 3600.0
    return Estimate(
        ccds=ccds,
        core_s_low=low,
        core_s_high=high,
        wall_h_low=wall_low,
        wall_h_high=wall_high,
        usd_low=wall_low * nodes * price.usd_per_hour,
        usd_high=wall_high * nodes * price.usd_per_hour,
        basis=basis,
    )


def check_budget(est: Estimate, max_usd: float, override: bool = False) -> str:
    """Refuse an estimate whose high end exceeds ``max_usd``, unless ``override``; say what was decided."""
    if est.usd_high <= max_usd:
        return f"within budget: {est.describe()} (budget ${max_usd:.2f})"
    if override:
        return f"OVER BUDGET, overridden by the user: {est.describe()} (budget ${max_usd:.2f})"
    raise BudgetError(
        f"the estimate exceeds the budget: {est.describe()}, budget ${max_usd:.2f}."
        " Raise budget.max_usd, process fewer visits, or override explicitly."
    )
