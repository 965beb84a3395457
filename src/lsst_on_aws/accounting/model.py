"""What each job cost, and the cluster's costs no job carries.

A job that holds part of a node is charged that part: its cost is the
instance's hourly price x its wall time x the larger of its share of the
node's CPUs and its share of the node's memory (a job that takes half the
memory blocks half the node, whatever its CPU count). Every cost row keeps
its price's source and date.
"""

from __future__ import annotations

import math

import pandas as pd

from lsst_on_aws.accounting.prices import Price


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


def task_costs(jobs: pd.DataFrame, timings: pd.DataFrame, processing_rule: str) -> pd.DataFrame:
    """Cost per pipeline task: each visit's row of its processing job (rule ``processing_rule``)
    shared among its quanta by run time.

    What the job spent on the visit outside its quanta (its share of starting
    the middleware, clearing the RUN, exporting) is the task "(visit job
    overhead)"; the other rules are tasks of their own name.
    """
    quanta = timings[timings["kind"] == "quantum"]
    rows = []
    for job in jobs.itertuples():
        processing = job.rule == processing_rule
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


def instance_comparison(
    jobs: pd.DataFrame, prices: list[tuple[Price, Price]], configured: str = ""
) -> pd.DataFrame:
    """What the jobs would have cost on other instance types, from their measured CPU time and memory.

    Each job needs ``ceil(cpu_s / wall_s)`` cores (at least 1: a job whose
    detectors ran in parallel needs the cores its speed-up used) and its peak
    RSS, for its measured wall time (the same per-core speed is assumed); it
    is charged the larger of those shares of the instance. Dollars a visit
    divide by the visits the jobs processed; ``configured`` marks the run's own
    instance type.
    """
    visits = max(1, jobs["visit"].dropna().nunique()) if "visit" in jobs else 1
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
                "configured": on_demand.instance_type == configured,
                "price_source": on_demand.source,
                "price_as_of": on_demand.as_of,
            }
        )
    out = pd.DataFrame(rows)
    for market in ("on_demand", "spot"):
        out[f"usd_per_visit_{market}"] = out[f"usd_{market}"] / visits
    return out.sort_values("usd_on_demand").reset_index(drop=True)


def recommend(compared: pd.DataFrame, market: str) -> dict:
    """The cheapest instance type of ``compared`` (:func:`instance_comparison`) whose node fits the
    largest job, on ``market``, beside the configured type: each with its dollars a visit.
    """
    column = "usd_per_visit_spot" if market == "spot" else "usd_per_visit_on_demand"
    # at a tie (the same price per vCPU), the configured type: no change is no worse
    fitting = compared[compared["largest_job_fits"]].assign(other=lambda t: ~t["configured"])
    fitting = fitting.sort_values([column, "other"], kind="stable")
    own = compared[compared["configured"]]

    def described(row) -> dict:
        return {
            "instance_type": row["instance_type"],
            "vcpu": int(row["vcpu"]),
            "memory_gib": float(row["memory_gib"]),
            "usd_per_visit_on_demand": float(row["usd_per_visit_on_demand"]),
            "usd_per_visit_spot": float(row["usd_per_visit_spot"]),
            "largest_job_fits": bool(row["largest_job_fits"]),
        }

    out = {
        "market": market,
        "cheapest": described(fitting.iloc[0]) if len(fitting) else None,
        "configured": described(own.iloc[0]) if len(own) else None,
    }
    cheapest, configured = out["cheapest"], out["configured"]
    if cheapest is None:
        out["summary"] = "no compared instance type fits the largest job"
    else:
        out["summary"] = (
            f"cheapest instance type that fits the largest job: {cheapest['instance_type']},"
            f" ${cheapest[column]:.6f} a visit on {market}"
        )
        if configured is not None and configured["instance_type"] != cheapest["instance_type"]:
            saving = 1 - cheapest[column] / configured[column] if configured[column] else 0.0
            out["summary"] += (
                f", against ${configured[column]:.6f} on the configured {configured['instance_type']}"
                f" ({saving:.0%} less)"
            )
        elif configured is not None:
            out["summary"] += " (the configured type)"
    return out


def visit_costs(jobs: pd.DataFrame) -> pd.DataFrame:
    """Dollars and time per visit: the sum of its jobs (simulation, ingest, processing), both markets."""
    per_visit = jobs.dropna(subset=["visit"]).groupby("visit")
    out = per_visit[["wall_s", "cpu_s", "usd_on_demand", "usd_spot"]].sum()
    out["jobs"] = per_visit.size()
    return out.reset_index()


def detector_costs(tasks: pd.DataFrame) -> pd.DataFrame:
    """Dollars and time per visit and detector: the quanta that ran on each detector."""
    per_detector = tasks.dropna(subset=["detector"]).groupby(["visit", "detector"])
    return per_detector[["wall_s", "cpu_s", "usd_on_demand", "usd_spot"]].sum().reset_index()
