"""EC2 prices: the committed, dated fallback table, the Pricing API and spot price history.

Every price carries where it came from (``source``: the Pricing API, spot
price history, or the fallback table) and its date (``as_of``), so a report
never shows a dollar figure without its provenance. A run's prices
(:func:`run_prices`) come from the table, spot taken as a fraction of
on-demand, or from AWS, kept in a :class:`PriceCache`.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import pandas as pd


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


def load_price_table(path: Path | str) -> pd.DataFrame:
    """The committed fallback table (the workflow's ``config/prices/``): on-demand Linux prices by
    instance type and region.
    """
    table = pd.read_csv(path, comment="#")
    missing = {"instance_type", "region", "vcpu", "memory_gib", "usd_per_hour", "as_of"} - set(table.columns)
    if missing:
        raise ValueError(f"price table {path} lacks column(s) {', '.join(sorted(missing))}")
    return table


def table_price(instance_type: str, region: str, table: pd.DataFrame) -> Price:
    """The fallback table's on-demand price of ``instance_type`` in ``region``."""
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
    return dataclasses.replace(
        on_demand,
        usd_per_hour=float(best["SpotPrice"]),
        market="spot",
        source="spot-history",
        as_of=best["Timestamp"].date().isoformat(),
    )


def _today() -> str:
    return datetime.now(UTC).date().isoformat()


# Rubin's cloud trials paid roughly 20-25% of on-demand for spot instances.
DEFAULT_SPOT_FRACTION = 0.25


def assumed_spot(on_demand: Price, fraction: float = DEFAULT_SPOT_FRACTION) -> Price:
    """A spot price taken as ``fraction`` of an on-demand price, when spot history cannot be read."""
    return dataclasses.replace(
        on_demand,
        usd_per_hour=on_demand.usd_per_hour * fraction,
        market="spot",
        source=f"{on_demand.source} x {fraction:g} (assumed spot fraction)",
    )


class PriceCache:
    """Prices already looked up, in a JSON file, each with the date it was fetched.

    A cached price younger than ``max_age_days`` is used instead of asking
    AWS again; an older one is fetched anew.
    """

    def __init__(self, path: Path | str, max_age_days: float = 7.0):
        self.path = Path(path)
        self.max_age_days = max_age_days
        self.entries = json.loads(self.path.read_text()) if self.path.exists() else {}

    @staticmethod
    def key(instance_type: str, region: str, market: str) -> str:
        return f"{region}/{instance_type}/{market}"

    def get(self, instance_type: str, region: str, market: str, fetch, now: datetime | None = None) -> Price:
        """The cached price, or ``fetch()``'s (then cached)."""
        now = now or datetime.now(UTC)
        entry = self.entries.get(self.key(instance_type, region, market))
        if entry is not None:
            age_days = (now - datetime.fromisoformat(entry["fetched"])).total_seconds() / 86400
            if age_days <= self.max_age_days:
                return Price(**entry["price"])
        price = fetch()
        self.entries[self.key(instance_type, region, market)] = {
            "fetched": now.isoformat(timespec="seconds"),
            "price": price.__dict__,
        }
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.path.write_text(json.dumps(self.entries, indent=1, sort_keys=True) + "\n")
        return price


def run_prices(
    instance_type: str,
    region: str,
    source: str,
    *,
    table: pd.DataFrame | None = None,
    spot_fraction: float = DEFAULT_SPOT_FRACTION,
    cache: PriceCache | None = None,
    session=None,
) -> tuple[Price, Price]:
    """The on-demand and spot prices of ``instance_type`` in ``region``.

    ``source`` "table": the fallback ``table`` (:func:`load_price_table`),
    spot taken as ``spot_fraction`` of on-demand (no AWS call). ``source``
    "aws": the Pricing API and spot price history through ``session`` (a
    boto3 session), kept in ``cache`` when one is given.
    """
    if source == "table":
        if table is None:
            raise ValueError("table prices need the price table")
        on_demand = table_price(instance_type, region, table)
        return on_demand, assumed_spot(on_demand, spot_fraction)
    if source != "aws":
        raise ValueError(f"unknown price source {source!r} (table or aws)")
    if session is None:
        import boto3

        session = boto3.Session()

    def cached(market: str, fetch) -> Price:
        return cache.get(instance_type, region, market, fetch) if cache else fetch()

    pricing = session.client("pricing", region_name="us-east-1")
    on_demand = cached("on-demand", lambda: api_price(pricing, instance_type, region))
    ec2 = session.client("ec2", region_name=region)
    spot = cached("spot", lambda: spot_price(ec2, on_demand))
    return on_demand, spot


def price_lookup(settings: dict, region: str, table_path: Path | str, cache_path: Path | str):
    """The prices of any instance type in ``region`` as config ``costs`` (``settings``) says: a
    function of the instance type returning its (on-demand, spot) prices (:func:`run_prices`).

    ``table_path`` is the fallback table, ``cache_path`` where prices asked of AWS are kept.
    """
    table = load_price_table(table_path) if settings["prices"] == "table" else None
    cache = PriceCache(cache_path, settings["price_cache_days"])

    def lookup(instance_type: str) -> tuple[Price, Price]:
        return run_prices(
            instance_type,
            region,
            settings["prices"],
            table=table,
            spot_fraction=settings["spot_fraction"],
            cache=cache,
        )

    return lookup
