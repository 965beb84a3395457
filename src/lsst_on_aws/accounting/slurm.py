"""Slurm accounting for the workflow's timing data.

Each visit's processing job records the Slurm job id it ran under (empty
when it ran locally). Where ``sacct`` is available, this module reads, for
those jobs, the node, final state, elapsed time, total CPU time and peak
memory, and returns them as a table to join to the visit table.

``sacct`` prints a job as several lines: the allocation (``28``, state and
elapsed time) and its steps (``28.batch``, ``28.0``: CPU time and MaxRSS).
A job's CPU time is that of the allocation line (Slurm sums the steps
there); its peak memory is the largest of its steps'.

It also finds and cancels the jobs an interrupted run left behind
(:func:`cancel_orphaned_jobs`), which the workflow does as it starts.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import time
from collections.abc import Iterable
from pathlib import Path

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


# The Slurm plugin names every job it submits after its run's UUID
# (optionally behind a user's prefix): the mark of a workflow job.
_RUN_UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")


def parse_squeue(text: str) -> pd.DataFrame:
    """Jobs from ``squeue -h -o '%F|%i|%j|%Z|%T'``: array job id, job id, name, working directory, state."""
    rows = [line.split("|", 4) for line in text.splitlines() if line.strip()]
    return pd.DataFrame(rows, columns=["array_job_id", "job_id", "name", "workdir", "state"])


def _squeue(*args: str) -> pd.DataFrame:
    result = subprocess.run(
        ["squeue", "--me", "-h", "-o", "%F|%i|%j|%Z|%T", *args], capture_output=True, text=True, check=False
    )
    return parse_squeue(result.stdout) if result.returncode == 0 else parse_squeue("")


def workflow_jobs(jobs: pd.DataFrame, workdir: Path | str) -> list[str]:
    """Ids of the queued or running Snakemake jobs in ``jobs`` that run in ``workdir``.

    An array's tasks count once, by the array's id (``scancel`` takes it).
    """
    here = Path(workdir).resolve()
    mine = jobs[
        jobs["name"].str.contains(_RUN_UUID) & jobs["workdir"].map(lambda path: Path(path).resolve() == here)
    ]
    return sorted(set(mine["array_job_id"]), key=int)


def cancel_orphaned_jobs(workdir: Path | str, timeout: float = 120.0) -> list[str]:
    """Cancel the Slurm jobs an earlier, interrupted controller left running in ``workdir``.

    Called as the workflow starts, before it submits anything. A controller
    killed mid-run (SIGKILL, a lost login session) leaves its jobs queued or
    running; a new run would resubmit the same visits, and two jobs would
    then write one visit's RUN collection at once. Any Snakemake job still
    queued or running from this directory at that moment belongs to no
    live run, provided one controller at a time runs in a directory (which
    Snakemake's own lock on the outputs also assumes). Returns the ids it
    cancelled, after waiting (up to ``timeout`` seconds) for them to end.
    """
    if shutil.which("squeue") is None or shutil.which("scancel") is None:
        return []
    ids = workflow_jobs(_squeue(), workdir)
    if not ids:
        return []
    subprocess.run(["scancel", *ids], check=False)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and not _squeue("-j", ",".join(ids)).empty:
        time.sleep(1)
    return ids
