"""Per-detector figures, what a processing job asks for, and the pre-flight estimate and budget check.

One set of figures, the core-seconds a detector (CCD) takes, sizes both the
processing jobs' Slurm requests (:func:`job_minutes`) and the estimate of the
whole run (:func:`estimate`), which prices the cluster, not only its jobs: the
head node and the shared storage while the cluster lives, and the compute
nodes' idle time before they scale down.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import pandas as pd

from lsst_on_aws.accounting.model import node_share, requested_of
from lsst_on_aws.accounting.prices import Price


class BudgetError(RuntimeError):
    """The estimated cost exceeds the budget, and no override was given."""


class FitError(ValueError):
    """A processing job does not fit one node of the configured instance type."""


# Rubin's published single-frame processing cost on AWS: 210-315 core-seconds per CCD
# (DMTN-137, DMTN-157), for a real instrument's full CCDs.
RUBIN_CORE_S_PER_CCD = (210.0, 315.0)
# SimCam's detectors, measured here: the quanta's CPU time a detector of 16 detectors of 1024 and
# 2048 pixels a side, on 1 and 2 cores (benchmarks/results/visit_parallel-*.json), 2.24-2.58
# core-seconds a megapixel.
SIMCAM_CORE_S_PER_MPX = (2.2, 2.6)
# What a visit costs its job beyond its detectors' quanta (ingest, graph, RUN, export): 8-9 s for
# SimCam's default visit (11.6 s for 4 detectors of 0.26 Mpx, profiles/default/).
VISIT_OVERHEAD_S = 10.0
# A processing job's own start (Slurm, Snakemake, the middleware's imports), in its runtime.
JOB_START_MINUTES = 5
# A job's runtime limit is this many times its estimated work at the high figure.
RUNTIME_MARGIN = 2.0
# Memory (MB) of a processing job's first detector (with the job's middleware), and of each further
# detector in flight. SimCam: measured 315 MB and about 100 MB for 512x512-pixel detectors
# (profiles/default/), with a margin. A real instrument's: Rubin's LSSTCam DRP requests 4000 MB
# for calibrateImage, the 95th percentile of a month of processing (drp_pipe's
# bps/resources/LSSTCam/DRP.yaml), and 500 MB for the job's own middleware.
SIMCAM_MEMORY_MB = (1000, 500)
RUBIN_MEMORY_MB = (4500, 4000)
# An automatic CPU count aims for a visit's detectors to take at most this long at the high figure.
VISIT_TARGET_S = 3600.0
# Hours the head node and storage run beyond the processing: the cluster's creation (10-20 min
# for ParallelCluster), the stack's install and the set-up, the drive's end and the deletion.
CLUSTER_SETUP_H = 0.5


@dataclass(frozen=True)
class DetectorCost:
    """Core-seconds one detector takes, low and high, and where the figures come from."""

    low: float
    high: float
    basis: str


def detector_cost(setting, instrument: str, detector_pixels: int) -> DetectorCost:
    """The per-detector figures of ``budget.core_s_per_ccd``: ``[low, high]`` as given, or, for
    ``"auto"``, the instrument's: SimCam's measured per megapixel for its configured detector size,
    any real instrument Rubin's published per-CCD figures.
    """
    if setting != "auto":
        low, high = (float(v) for v in setting)
        return DetectorCost(low, high, f"{low:g}-{high:g} core-s per CCD (budget.core_s_per_ccd)")
    if instrument == "SimCam":
        mpx = detector_pixels**2 / 1e6
        low, high = (mpx * c for c in SIMCAM_CORE_S_PER_MPX)
        basis = (
            f"SimCam's measured {SIMCAM_CORE_S_PER_MPX[0]:g}-{SIMCAM_CORE_S_PER_MPX[1]:g} core-s per"
            f" megapixel: {low:.2f}-{high:.2f} core-s per {detector_pixels}x{detector_pixels} detector"
        )
        return DetectorCost(low, high, basis)
    low, high = RUBIN_CORE_S_PER_CCD
    return DetectorCost(low, high, f"Rubin's published {low:g}-{high:g} core-s per CCD")


def detector_memory(instrument: str) -> tuple[int, int]:
    """Memory (MB) of a processing job with one CPU, and of each further CPU, for ``instrument``."""
    return SIMCAM_MEMORY_MB if instrument == "SimCam" else RUBIN_MEMORY_MB


def job_memory(first_mb: float, per_cpu_mb: float, cpus: int) -> float:
    """A processing job's first memory request (MB) with ``cpus`` CPUs."""
    return first_mb + per_cpu_mb * (cpus - 1)


def visit_cpus(
    detectors: int, core_s_per_detector: float, first_mb: float, per_cpu_mb: float, node: Price | None
) -> int:
    """CPUs for a processing job when ``visit_jobs.cpus`` is auto: enough for a visit's detectors to
    take at most ``VISIT_TARGET_S`` at ``core_s_per_detector`` (a long job on a spot node is more
    likely to be reclaimed), no more than its detectors, and within one ``node`` (its vCPUs, and its
    memory at ``first_mb`` plus ``per_cpu_mb`` a further CPU; no limit without a known node).
    """
    cpus = max(1, min(detectors, math.ceil(detectors * core_s_per_detector / VISIT_TARGET_S)))
    if node is not None:
        by_memory = 1 + math.floor((node.memory_gib * 1024 - first_mb) / per_cpu_mb) if per_cpu_mb else cpus
        cpus = max(1, min(cpus, node.vcpu, by_memory))
    return cpus


def job_work_s(visits: int, detectors: int, cpus: int, core_s_per_detector: float) -> float:
    """Wall seconds a processing job of ``visits`` visits works: each visit's own part, then its
    detectors ``cpus`` at a time.
    """
    return visits * (VISIT_OVERHEAD_S + math.ceil(detectors / cpus) * core_s_per_detector)


def job_minutes(visits: int, detectors: int, cpus: int, core_s_per_detector: float, attempt: int = 1) -> int:
    """A processing job's runtime limit (minutes): its start, and ``RUNTIME_MARGIN`` times its work
    at ``core_s_per_detector``; doubled at each retry (a job Slurm stopped at its limit gets more).
    """
    work = job_work_s(visits, detectors, cpus, core_s_per_detector)
    return (JOB_START_MINUTES + math.ceil(RUNTIME_MARGIN * work / 60.0)) * 2 ** (attempt - 1)


@dataclass(frozen=True)
class Processing:
    """What the run processes, and how its jobs are shaped."""

    visits: int
    detectors: int  # a visit's
    visits_per_job: int
    cpus: int  # a job's
    mem_mb: float  # a job's first request


@dataclass(frozen=True)
class Cluster:
    """The cluster the run would pay for."""

    compute: Price  # of the market the jobs run on
    head: Price | None  # None: no price known, left out
    nodes: int  # most compute nodes at once
    storage_gb: float
    storage_usd_per_gb_month: float
    scaledown_idle_s: float
    setup_h: float = CLUSTER_SETUP_H


@dataclass(frozen=True)
class Estimate:
    """A pre-flight estimate: wall time and dollars, low and high, and the dollars by category."""

    ccds: int
    core_s_low: float
    core_s_high: float
    wall_h_low: float
    wall_h_high: float
    usd_low: float
    usd_high: float
    basis: str  # where the per-detector figures came from
    jobs: int = 0
    jobs_per_node: int = 0
    nodes_used: int = 0
    # category -> [low, high] dollars: the jobs, idle compute, head node, shared storage
    breakdown: dict[str, list[float]] = field(default_factory=dict)

    def describe(self) -> str:
        if self.wall_h_high < 1:
            wall = f"{self.wall_h_low * 60:.1f}-{self.wall_h_high * 60:.1f} min"
        else:
            wall = f"{self.wall_h_low:.2f}-{self.wall_h_high:.2f} h"
        return (
            f"{self.ccds} CCDs at {self.basis}: {wall} of processing,"
            f" ${self.usd_low:.2f}-${self.usd_high:.2f} for the cluster"
        )


def jobs_per_node(cpus: int, mem_mb: float, node: Price) -> int:
    """How many processing jobs one node of ``node``'s type holds at once (by CPUs and memory)."""
    fits = min(node.vcpu // cpus, math.floor(node.memory_gib * 1024 / mem_mb) if mem_mb else node.vcpu)
    if fits < 1:
        raise FitError(
            f"a processing job ({cpus} CPUs, {mem_mb:.0f} MB) does not fit one {node.instance_type}"
            f" node ({node.vcpu} vCPUs, {node.memory_gib:g} GiB): choose a larger"
            " cluster.compute_instance_type, or fewer visit_jobs.cpus or less visit_jobs.mem_mb"
        )
    return fits


def estimate(work: Processing, cluster: Cluster, cost: DetectorCost) -> Estimate:
    """Wall time and cost of ``work`` on ``cluster``, at ``cost``'s low and high figures.

    The visits' jobs run ``jobs_per_node`` to a node on at most ``cluster.nodes``
    nodes, in waves; a job works :func:`job_work_s`. Paid: the jobs' shares of
    their nodes (as the run's own cost tables charge them); each node used from
    the start to the end of the processing and its scale-down idle time, of
    which what the jobs leave is idle compute; the head node and the shared
    storage over the processing, the idle time and ``cluster.setup_h``.
    """
    jobs = math.ceil(work.visits / work.visits_per_job)
    per_node = jobs_per_node(work.cpus, work.mem_mb, cluster.compute)
    nodes_used = min(cluster.nodes, math.ceil(jobs / per_node))
    waves = math.ceil(jobs / (nodes_used * per_node))
    share = node_share(work.cpus, work.mem_mb, cluster.compute)
    idle_h = cluster.scaledown_idle_s / 3600.0
    wall, core_s, parts = [], [], {}
    for c in (cost.low, cost.high):
        job_h = job_work_s(work.visits_per_job, work.detectors, work.cpus, c) / 3600.0
        all_jobs_h = job_work_s(work.visits, work.detectors, work.cpus, c) / 3600.0
        wall_h = waves * job_h
        jobs_usd = all_jobs_h * share * cluster.compute.usd_per_hour
        paid_usd = nodes_used * (wall_h + idle_h) * cluster.compute.usd_per_hour
        lifetime_h = wall_h + idle_h + cluster.setup_h
        costs = [
            ("jobs: process_batch", jobs_usd),
            ("idle compute", max(0.0, paid_usd - jobs_usd)),
            ("head node", cluster.head.usd_per_hour * lifetime_h if cluster.head else None),
            ("shared storage", cluster.storage_gb * cluster.storage_usd_per_gb_month * lifetime_h / 730.0),
        ]
        for category, usd in costs:
            if usd is not None:
                parts.setdefault(category, []).append(usd)
        wall.append(wall_h)
        core_s.append(work.visits * work.detectors * c)
    return Estimate(
        ccds=work.visits * work.detectors,
        core_s_low=core_s[0],
        core_s_high=core_s[1],
        wall_h_low=wall[0],
        wall_h_high=wall[1],
        usd_low=sum(v[0] for v in parts.values()),
        usd_high=sum(v[1] for v in parts.values()),
        basis=cost.basis,
        jobs=jobs,
        jobs_per_node=per_node,
        nodes_used=nodes_used,
        breakdown=parts,
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


def measured_core_s_per_ccd(
    timings: pd.DataFrame, requested: dict[str, dict], detectors: int, processing_rule: str
) -> tuple[float, float]:
    """Core-seconds per CCD held by the visit jobs (rule ``processing_rule``) of an earlier run:
    (median, largest).
    """
    visits = timings[(timings["kind"] == "job") & (timings["rule"] == processing_rule)]
    if visits.empty:
        raise ValueError(f"the timing table has no {processing_rule} jobs to measure")
    cpus = requested_of(visits["rule"], requested)["cpus"]
    per_ccd = visits["wall_s"] * cpus / detectors
    return float(per_ccd.median()), float(per_ccd.max())
