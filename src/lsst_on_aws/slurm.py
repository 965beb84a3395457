"""Slurm accounting for the workflow's timing data.

Each visit's processing job records the Slurm job id it ran under (empty
when it ran locally). Where ``sacct`` is available, this module reads, for
those jobs, the node, final state, elapsed time, total CPU time and peak
memory, and returns them as a table to join to the visit table.

``sacct`` prints a job as several lines: the allocation (``28``, state and
elapsed time) and its steps (``28.batch``, ``28.0``: CPU time and MaxRSS).
A job's CPU time is that of the allocation line (Slurm sums the steps
there); its peak memory is the largest of its steps'.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from collections.abc import Iterable

import pandas as pd

SACCT_FIELDS = ["JobIDRaw", "JobID", "NodeList", "State", "ElapsedRaw", "TotalCPU", "MaxRSS", "Start", "End"]
COLUMNS = [
    "slurm_job_id",
    "slurm_job",
    "slurm_node",
    "slurm_state",
    "slurm_elapsed_s",
    "slurm_cpu_s",
    "slurm_max_rss_mb",
    "slurm_start",
    "slurm_end",
]
_UNITS = {"": 1 / 1024**2, "K": 1 / 1024, "M": 1.0, "G": 1024.0, "T": 1024.0**2}


def parse_duration(text: str) -> float:
    """Seconds in a Slurm duration: ``[D-][HH:]MM:SS[.mmm]`` (``TotalCPU``, ``Elapsed``)."""
    text = text.strip()
    if not text:
        return float("nan")
    days = 0
    if "-" in text:
        day_text, text = text.split("-", 1)
        days = int(day_text)
    parts = [float(p) for p in text.split(":")]
    seconds = 0.0
    for part in parts:
        seconds = seconds * 60 + part
    return days * 86400 + seconds


def parse_memory_mb(text: str) -> float:
    """Megabytes (MiB) in a Slurm memory figure such as ``736480K`` or ``1.5G``."""
    match = re.fullmatch(r"([0-9.]+)([KMGT]?)", text.strip())
    if not match:
        return float("nan")
    return float(match.group(1)) * _UNITS[match.group(2)]


def parse_sacct(text: str) -> pd.DataFrame:
    """One row per job from ``sacct -n -P --format=<SACCT_FIELDS>`` output."""
    jobs: dict[str, dict] = {}
    peak: dict[str, float] = {}
    for line in text.splitlines():
        if not line.strip():
            continue
        fields = dict(zip(SACCT_FIELDS, line.split("|"), strict=True))
        raw = fields["JobIDRaw"]
        job = raw.split(".", 1)[0]
        rss = parse_memory_mb(fields["MaxRSS"])
        if rss == rss:  # not NaN
            peak[job] = max(peak.get(job, 0.0), rss)
        if "." in raw:
            continue
        jobs[job] = {
            "slurm_job_id": job,
            "slurm_job": fields["JobID"],
            "slurm_node": fields["NodeList"],
            "slurm_state": fields["State"].split()[0],
            "slurm_elapsed_s": float(fields["ElapsedRaw"] or "nan"),
            "slurm_cpu_s": parse_duration(fields["TotalCPU"]),
            "slurm_start": fields["Start"],
            "slurm_end": fields["End"],
        }
    for job, row in jobs.items():
        row["slurm_max_rss_mb"] = peak.get(job, float("nan"))
    return pd.DataFrame(list(jobs.values()), columns=COLUMNS)


def job_accounting(job_ids: Iterable[str], sacct: str | None = None) -> pd.DataFrame:
    """Accounting records of ``job_ids`` from ``sacct``; an empty table where there is none.

    Local runs have no job ids, and clusters without accounting answer with
    an error: both give an empty table rather than failing the summary.
    """
    ids = sorted({str(j) for j in job_ids if str(j).strip()})
    sacct = sacct or shutil.which("sacct")
    if not ids or sacct is None:
        return pd.DataFrame(columns=COLUMNS)
    result = subprocess.run(
        [sacct, "-n", "-P", "-j", ",".join(ids), f"--format={','.join(SACCT_FIELDS)}"],
        capture_output=True,
        text=True,
        check=False,
    )
    if result.returncode != 0:
        return pd.DataFrame(columns=COLUMNS)
    return parse_sacct(result.stdout)
