"""The pre-flight estimate and the budget check, before anything runs or is created."""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

from lsst_on_aws.accounting.model import requested_of
from lsst_on_aws.accounting.prices import Price


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
