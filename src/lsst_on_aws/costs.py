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

import dataclasses
import json
import math
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import pandas as pd

from lsst_on_aws.timing import PROCESSING_RULE

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
    return dataclasses.replace(
        on_demand,
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


# --- prices for a run: a cache, spot by assumption when offline --------------------------------

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
    spot_fraction: float = DEFAULT_SPOT_FRACTION,
    cache: PriceCache | None = None,
    session=None,
    table: pd.DataFrame | None = None,
) -> tuple[Price, Price]:
    """The on-demand and spot prices of ``instance_type`` in ``region``.

    ``source`` "table": the committed fallback table, spot taken as
    ``spot_fraction`` of on-demand (no AWS call). ``source`` "aws": the
    Pricing API and spot price history through ``session`` (a boto3
    session), kept in ``cache``.
    """
    if source == "table":
        on_demand = table_price(instance_type, region, table)
        return on_demand, assumed_spot(on_demand, spot_fraction)
    if source != "aws":
        raise ValueError(f"unknown price source {source!r} (table or aws)")
    if session is None:
        import boto3

        session = boto3.Session()
    cache = cache or PriceCache(Path(".prices-cache.json"))
    pricing = session.client("pricing", region_name="us-east-1")
    on_demand = cache.get(
        instance_type, region, "on-demand", lambda: api_price(pricing, instance_type, region)
    )
    ec2 = session.client("ec2", region_name=region)
    spot = cache.get(instance_type, region, "spot", lambda: spot_price(ec2, on_demand))
    return on_demand, spot


# --- the run's costs ----------------------------------------------------------------------------


def requested_of(rules: pd.Series, requested: dict[str, dict]) -> pd.DataFrame:
    """CPUs and memory (MB) each job held, from the rules' requested resources (default 1 CPU, 0 MB)."""
    cpus = [float(requested.get(r, {}).get("cpus", 1) or 1) for r in rules]
    mem = [float(requested.get(r, {}).get("mem_mb", 0) or 0) for r in rules]
    return pd.DataFrame({"cpus": cpus, "mem_mb": mem}, index=rules.index)


def run_job_costs(
    timings: pd.DataFrame, requested: dict[str, dict], on_demand: Price, spot: Price
) -> pd.DataFrame:
    """Every job of a timing table costed on demand and on spot, side by side, with both prices' sources.

    A job holds the CPUs and memory its rule requested (``requested``: rule
    -> ``{"cpus", "mem_mb"}``) for its wall time.
    """
    jobs = timings[timings["kind"] == "job"].copy()
    jobs[["cpus", "mem_mb"]] = requested_of(jobs["rule"], requested)
    on = job_costs(jobs, on_demand)
    jobs["node_share"] = on["node_share"]
    jobs["usd_on_demand"] = on["usd"]
    jobs["usd_spot"] = job_costs(jobs, spot)["usd"]
    jobs["instance_type"] = on_demand.instance_type
    jobs["usd_per_hour_on_demand"] = on_demand.usd_per_hour
    jobs["usd_per_hour_spot"] = spot.usd_per_hour
    jobs["price_source_on_demand"] = on_demand.source
    jobs["price_source_spot"] = spot.source
    jobs["price_as_of"] = on_demand.as_of
    return jobs.reset_index(drop=True)


def task_costs(jobs: pd.DataFrame, timings: pd.DataFrame) -> pd.DataFrame:
    """Cost per pipeline task: each visit's row of its processing job shared among its quanta by run time.

    What the job spent on the visit outside its quanta (its share of starting
    the middleware, clearing the RUN, exporting) is the task "(visit job
    overhead)"; the other rules are tasks of their own name.
    """
    quanta = timings[timings["kind"] == "quantum"]
    rows = []
    for job in jobs.itertuples():
        processing = job.rule == PROCESSING_RULE
        inside = quanta[quanta["visit"] == job.visit] if processing else quanta.iloc[:0]
        parts = [(q.task_label, q.detector, q.wall_s, q.cpu_s) for q in inside.itertuples()]
        overhead = max(0.0, job.wall_s - sum(p[2] for p in parts))
        label = "(visit job overhead)" if processing else job.rule
        parts.append((label, pd.NA, overhead, max(0.0, job.cpu_s - sum(p[3] for p in parts))))
        for task, detector, wall, cpu in parts:
            fraction = wall / job.wall_s if job.wall_s > 0 else 0.0
            rows.append(
                {
                    "rule": job.rule,
                    "visit": job.visit,
                    "detector": detector,
                    "task": task,
                    "wall_s": wall,
                    "cpu_s": cpu,
                    "usd_on_demand": job.usd_on_demand * fraction,
                    "usd_spot": job.usd_spot * fraction,
                }
            )
    out = pd.DataFrame(rows)
    for column in ("visit", "detector"):
        out[column] = out[column].astype("Int64")
    return out


def busy_hours(starts: pd.Series, ends: pd.Series, pad_s: float = 0.0) -> float:
    """Hours covered by the union of the intervals [start, end + pad_s]."""
    total, current_start, current_end = 0.0, None, None
    for start, end in sorted(zip(starts, ends, strict=True)):
        end = end + pd.Timedelta(seconds=pad_s)
        if current_end is None or start > current_end:
            if current_end is not None:
                total += (current_end - current_start).total_seconds()
            current_start, current_end = start, end
        else:
            current_end = max(current_end, end)
    if current_end is not None:
        total += (current_end - current_start).total_seconds()
    return total / 3600.0


def fixed_costs(
    jobs: pd.DataFrame,
    head: Price,
    compute: Price,
    storage_gb: float,
    storage_usd_per_gb_month: float,
    scaledown_idle_s: float,
    lifetime_h: float | None = None,
) -> pd.DataFrame:
    """The cluster's costs that no job carries: head node, shared storage, idle compute.

    ``lifetime_h`` is how long the cluster existed (from its creation and
    deletion); None, for a run not on a ParallelCluster, takes the time jobs
    ran, each extended by the scale-down idle time (as if the cluster existed
    only while it worked). Idle compute: a ParallelCluster node runs from its
    first job until it has been idle for the scale-down time, so each node is
    paid over the union of its jobs' [start, end + idle time], at
    ``compute``'s price; the jobs' node shares of that time are costed with
    the jobs, the rest is idle.
    """
    if lifetime_h is None:
        lifetime_h = busy_hours(jobs["start"], jobs["end"], scaledown_idle_s)
    idle_node_h = 0.0
    for _, on_node in jobs[jobs["node"] != ""].groupby("node"):
        paid_h = busy_hours(on_node["start"], on_node["end"], scaledown_idle_s)
        busy_h = float((on_node["node_share"] * on_node["wall_s"]).sum()) / 3600.0
        idle_node_h += max(0.0, paid_h - busy_h)
    rows = [
        ("head node", head.usd_per_hour * lifetime_h, f"{head.instance_type} x {lifetime_h:.3f} h", head),
        (
            "shared storage",
            storage_gb * storage_usd_per_gb_month * lifetime_h / 730.0,
            f"{storage_gb:g} GB x ${storage_usd_per_gb_month:g}/GB-month x {lifetime_h:.3f} h",
            None,
        ),
        (
            "idle compute",
            compute.usd_per_hour * idle_node_h,
            f"{compute.instance_type} {compute.market} x {idle_node_h:.3f} idle node-h",
            compute,
        ),
    ]
    return pd.DataFrame(
        [
            {
                "category": category,
                "usd": usd,
                "basis": basis,
                "price_source": price.source if price else "config",
                "price_as_of": price.as_of if price else "",
            }
            for category, usd, basis, price in rows
        ]
    )


def cost_breakdown(jobs: pd.DataFrame, fixed: pd.DataFrame, market: str) -> pd.DataFrame:
    """Dollars by category: the jobs of each rule (on ``market``), then the fixed costs, then the total."""
    column = "usd_spot" if market == "spot" else "usd_on_demand"
    per_rule = jobs.groupby("rule", sort=False)[column].sum()
    rows = [{"category": f"jobs: {rule}", "usd": usd} for rule, usd in per_rule.items()]
    rows += fixed[["category", "usd"]].to_dict("records")
    out = pd.DataFrame(rows)
    total = pd.DataFrame([{"category": "total", "usd": out["usd"].sum()}])
    return pd.concat([out, total], ignore_index=True)


def with_cluster_lifetime(
    breakdown: pd.DataFrame,
    lifetime_h: float,
    head: Price,
    storage_gb: float,
    storage_usd_per_gb_month: float,
) -> pd.DataFrame:
    """A run's breakdown with the head node and shared storage paid over the cluster's real lifetime.

    On the cluster, the run can only assume the cluster lived while jobs ran
    (:func:`fixed_costs`); the control plane, which created and deleted it,
    knows ``lifetime_h``. Storage retained after the deletion bills on, outside
    this figure.
    """
    out = breakdown[breakdown["category"] != "total"].copy()
    real = {
        "head node": head.usd_per_hour * lifetime_h,
        "shared storage": storage_gb * storage_usd_per_gb_month * lifetime_h / 730.0,
    }
    for category, usd in real.items():
        out.loc[out["category"] == category, "usd"] = usd
    total = pd.DataFrame([{"category": "total", "usd": out["usd"].sum()}])
    return pd.concat([out, total], ignore_index=True)


def instance_comparison(jobs: pd.DataFrame, prices: list[tuple[Price, Price]]) -> pd.DataFrame:
    """What the jobs would have cost on other instance types, from their measured CPU time and memory.

    Each job needs ``ceil(cpu_s / wall_s)`` cores (at least 1) and its peak
    RSS, for its measured wall time (the same per-core speed is assumed); it
    is charged the larger of those shares of the instance.
    """
    cores = (jobs["cpu_s"] / jobs["wall_s"]).fillna(1.0).clip(lower=1.0).apply(math.ceil)
    need = pd.DataFrame({"wall_s": jobs["wall_s"], "cpus": cores, "mem_mb": jobs["max_rss_mb"].fillna(0.0)})
    rows = []
    for on_demand, spot in prices:
        cpu_bound = (need["cpus"] / on_demand.vcpu).max()
        mem_bound = (need["mem_mb"] / (on_demand.memory_gib * 1024)).max()
        rows.append(
            {
                "instance_type": on_demand.instance_type,
                "vcpu": on_demand.vcpu,
                "memory_gib": on_demand.memory_gib,
                "usd_per_hour_on_demand": on_demand.usd_per_hour,
                "usd_per_hour_spot": spot.usd_per_hour,
                "largest_job_fits": bool(cpu_bound <= 1 and mem_bound <= 1),
                "binding_resource": "memory" if mem_bound > cpu_bound else "cpu",
                "usd_on_demand": float(job_costs(need, on_demand)["usd"].sum()),
                "usd_spot": float(job_costs(need, spot)["usd"].sum()),
                "price_source": on_demand.source,
                "price_as_of": on_demand.as_of,
            }
        )
    return pd.DataFrame(rows).sort_values("usd_on_demand").reset_index(drop=True)


def measured_core_s_per_ccd(
    timings: pd.DataFrame, requested: dict[str, dict], detectors: int
) -> tuple[float, float]:
    """Core-seconds per CCD held by the visit jobs of an earlier run: (median, largest)."""
    visits = timings[(timings["kind"] == "job") & (timings["rule"] == PROCESSING_RULE)]
    if visits.empty:
        raise ValueError(f"the timing table has no {PROCESSING_RULE} jobs to measure")
    cpus = requested_of(visits["rule"], requested)["cpus"]
    per_ccd = visits["wall_s"] * cpus / detectors
    return float(per_ccd.median()), float(per_ccd.max())


def visit_costs(jobs: pd.DataFrame) -> pd.DataFrame:
    """Dollars and time per visit: the sum of its jobs (simulation, ingest, processing), both markets."""
    per_visit = jobs.dropna(subset=["visit"]).groupby("visit")
    out = per_visit[["wall_s", "cpu_s", "usd_on_demand", "usd_spot"]].sum()
    out["jobs"] = per_visit.size()
    return out.reset_index()


# --- the actual bill ------------------------------------------------------------------------------


def actual_bill(ce, tag_key: str, tag_value: str, start: str, end: str) -> pd.DataFrame:
    """What AWS charged for resources tagged ``tag_key=tag_value``, per day and service.

    From Cost Explorer (``ce.get_cost_and_usage``, daily, unblended cost),
    over ``start`` (inclusive) to ``end`` (exclusive), ISO dates. The tag
    must be activated as a cost-allocation tag in the billing console. Cost
    Explorer lags by about a day and marks recent days ``estimated``: this
    is the bill, reported beside the estimate, never merged into it.
    """
    request = {
        "TimePeriod": {"Start": start, "End": end},
        "Granularity": "DAILY",
        "Metrics": ["UnblendedCost"],
        "Filter": {"Tags": {"Key": tag_key, "Values": [tag_value], "MatchOptions": ["EQUALS"]}},
        "GroupBy": [{"Type": "DIMENSION", "Key": "SERVICE"}],
    }
    rows = []
    while True:
        response = ce.get_cost_and_usage(**request)
        for period in response.get("ResultsByTime", []):
            total = {"Keys": ["(all services)"], "Metrics": period.get("Total", {})}
            groups = period.get("Groups") or [total]
            for group in groups:
                metric = group["Metrics"].get("UnblendedCost") or next(iter(group["Metrics"].values()), None)
                if metric is None:
                    continue
                rows.append(
                    {
                        "day": period["TimePeriod"]["Start"],
                        "service": group["Keys"][0],
                        "usd": float(metric["Amount"]),
                        "unit": metric.get("Unit", "USD"),
                        "estimated": bool(period.get("Estimated", False)),
                    }
                )
        token = response.get("NextPageToken")
        if not token:
            break
        request["NextPageToken"] = token
    bill = pd.DataFrame(rows, columns=["day", "service", "usd", "unit", "estimated"])
    bill["tag"] = f"{tag_key}={tag_value}"
    bill["source"] = "cost-explorer"
    bill["retrieved"] = datetime.now(UTC).isoformat(timespec="seconds")
    return bill


def detector_costs(tasks: pd.DataFrame) -> pd.DataFrame:
    """Dollars and time per visit and detector: the quanta that ran on each detector."""
    per_detector = tasks.dropna(subset=["detector"]).groupby(["visit", "detector"])
    return per_detector[["wall_s", "cpu_s", "usd_on_demand", "usd_spot"]].sum().reset_index()
