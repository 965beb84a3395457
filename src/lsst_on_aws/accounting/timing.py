"""One tidy timing table: every job and every pipeline quantum of a run, one row each.

It joins what the run left behind:

- the ``benchmark:`` file of every job (Snakemake's wall time, CPU time, peak
  RSS and I/O), with the rule, visit and batch it belongs to, as the workflow says;
- each visit's ``job.json``, written by the processing job that ran it (the
  Slurm job id, host, batch, and the visit's own start, end, wall and CPU
  time);
- Slurm accounting for those jobs, where ``sacct`` answers (node, state,
  elapsed, CPU, MaxRSS), from :func:`lsst_on_aws.accounting.slurm.job_accounting`;
- each visit's ``quanta.json``: the per-quantum run time, CPU time and peak
  memory that ``pipetask`` records in the Butler's ``<label>_metadata``
  datasets, exported by the processing job.

Rows of ``kind`` "job" are Snakemake jobs; rows of ``kind`` "quantum" are the
pipeline's tasks inside a processing job (their time is part of the job's).
A processing job runs a batch of visits one after
another; it appears as one row per visit, so that every cost has its visit:
the visit's own time, plus an equal share of what the job spent outside its
visits (starting Python, importing the middleware). For a batch of one visit
that row is the job's benchmark. Its end is the one the visit's ``job.json``
recorded, its start that end minus its wall time; its Slurm columns are the
whole job's, shared by the batch's visits. A job without a ``job.json`` has
no recorded start: its end is taken as the time its benchmark file was
written, and its start as that end minus its wall time (``time_source`` says
which). In a local run (no processing job under Slurm) every job's node is
the one host the processing jobs recorded.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path

import pandas as pd

from lsst_on_aws import summary

COLUMNS = [
    "kind",  # "job" or "quantum"
    "rule",
    "visit",
    "batch",  # the processing batch of a process_batch row
    "detector",
    "task_label",
    "run",  # the Butler RUN collection of a visit's job and quanta
    "node",
    "instance_type",
    "start",
    "end",
    "time_source",  # "job.json", "benchmark-file", "metadata"
    "wall_s",
    "cpu_s",
    "max_rss_mb",
    "io_in_mb",
    "io_out_mb",
    "slurm_job_id",
    "slurm_state",
    "slurm_elapsed_s",
    "slurm_cpu_s",
    "slurm_max_rss_mb",
]


# benchmark columns -> timing columns
BENCHMARK_COLUMNS = summary.BENCHMARK_COLUMNS | {"io_in": "io_in_mb", "io_out": "io_out_mb"}


def read_benchmark_file(path: Path | str, job: dict) -> dict:
    """One job's row from its Snakemake benchmark file (the mean over repeats).

    ``job`` says whose file it is: its ``rule``, and its ``visit`` (or None)
    and ``batch`` (a processing job's, else "").
    """
    path = Path(path)
    usage = summary.read_benchmark(path, BENCHMARK_COLUMNS)
    end = pd.Timestamp(path.stat().st_mtime, unit="s", tz="UTC")
    return {
        "kind": "job",
        "rule": job["rule"],
        "visit": pd.NA if job.get("visit") is None else int(job["visit"]),
        "batch": job.get("batch", ""),
        "start": end - pd.Timedelta(seconds=usage["wall_s"]),
        "end": end,
        "time_source": "benchmark-file",
        **usage,
    }


def read_quanta(path: Path | str, visit: int, run: str, rule: str) -> list[dict]:
    """A visit's ``quanta.json`` as rows of kind "quantum", inside a job of ``rule``."""
    rows = []
    for record in json.loads(Path(path).read_text()):
        rows.append(
            {
                "kind": "quantum",
                "rule": rule,
                "visit": visit,
                "detector": pd.NA if record.get("detector") is None else int(record["detector"]),
                "task_label": record["task_label"],
                "run": run,
                "node": record.get("node", ""),
                "start": pd.Timestamp(record["start"]),
                "end": pd.Timestamp(record["end"]),
                "time_source": "metadata",
                "wall_s": float(record["wall_s"]),
                "cpu_s": float(record["cpu_s"]),
                "max_rss_mb": float(record["max_rss_mb"]),
            }
        )
    return rows


def visit_job_rows(batch: pd.Series, records: list[dict], runs: dict[int, str]) -> list[dict]:
    """A processing job's benchmark row split into one row per visit of its batch.

    Each visit gets its own recorded wall and CPU time plus an equal share of
    what the job spent outside its visits; the job's I/O is shared equally.
    """
    n = len(records)
    own_wall = sum(r["wall_s"] for r in records if pd.notna(r["wall_s"]))
    own_cpu = sum(r["cpu_s"] for r in records if pd.notna(r["cpu_s"]))
    rest_wall = max(0.0, batch["wall_s"] - own_wall) / n
    rest_cpu = max(0.0, batch["cpu_s"] - own_cpu) / n if pd.notna(batch["cpu_s"]) else float("nan")
    rows = []
    for record in records:
        wall = (0.0 if pd.isna(record["wall_s"]) else record["wall_s"]) + rest_wall
        cpu = (0.0 if pd.isna(record["cpu_s"]) else record["cpu_s"]) + rest_cpu
        rows.append(
            batch.to_dict()
            | {
                "visit": record["visit"],
                "run": runs.get(record["visit"], ""),
                "node": record["host"],
                "slurm_job_id": record["slurm_job_id"],
                "start": record["end"] - pd.Timedelta(seconds=wall),
                "end": record["end"],
                "time_source": "job.json",
                "wall_s": wall,
                "cpu_s": cpu,
                "max_rss_mb": batch["max_rss_mb"] if pd.isna(record["max_rss_mb"]) else record["max_rss_mb"],
                "io_in_mb": batch.get("io_in_mb", float("nan")) / n,
                "io_out_mb": batch.get("io_out_mb", float("nan")) / n,
            }
        )
    return rows


def timing_table(
    benchmarks: dict[str, dict],
    job_paths: Iterable[str],
    quanta_paths: dict[int, str],
    runs: dict[int, str],
    instance_type: str,
    processing_rule: str,
    accounting: pd.DataFrame | None = None,
) -> pd.DataFrame:
    """The run's tidy timing table (see the module docstring).

    Parameters
    ----------
    benchmarks
        Every job's benchmark file -> whose it is: ``{"rule", "visit", "batch"}``
        (:func:`read_benchmark_file`).
    job_paths
        The visits' ``job.json`` files.
    quanta_paths
        Visit -> its ``quanta.json`` file.
    runs
        Visit -> its RUN collection.
    instance_type
        What the jobs ran on (or are costed as): the compute nodes' type.
    processing_rule
        The rule of the processing jobs, whose quanta are in ``quanta_paths``.
    accounting
        :func:`lsst_on_aws.accounting.slurm.job_accounting`'s table for the
        visits' Slurm jobs, or None.
    """
    missing = [path for path in benchmarks if not Path(path).is_file()]
    if missing:
        # the workflow asks for them as parameters, its jobs' records as inputs
        raise FileNotFoundError(
            f"{len(missing)} benchmark file(s) of finished jobs are missing, such as {missing[0]}"
            f" ({benchmarks[missing[0]]['rule']}): deleted since the job ran? Rerun the job"
            f" (snakemake --forcerun {benchmarks[missing[0]]['rule']}) to measure it again"
        )
    jobs = pd.DataFrame([read_benchmark_file(path, job) for path, job in benchmarks.items()])
    records = {r["visit"]: r for r in map(summary.read_job_record, job_paths)}
    rows = []
    for job in jobs.to_dict("records"):
        members = [r for r in records.values() if r["batch"] == job["batch"]] if job["batch"] else []
        rows.extend(visit_job_rows(pd.Series(job), members, runs) if members else [job])
    jobs = pd.DataFrame(rows)
    if accounting is not None and not accounting.empty and "slurm_job_id" in jobs:
        slurm = accounting[
            ["slurm_job_id", "slurm_state", "slurm_elapsed_s", "slurm_cpu_s", "slurm_max_rss_mb"]
        ]
        jobs = jobs.merge(slurm, on="slurm_job_id", how="left")
        node = accounting.set_index("slurm_job_id")["slurm_node"]
        jobs["node"] = jobs["slurm_job_id"].map(node).fillna(jobs["node"])
    hosts = {r["host"] for r in records.values()}
    if len(hosts) == 1 and not any(r["slurm_job_id"] for r in records.values()):
        # a local run: every job ran on the machine the visit jobs recorded
        jobs["node"] = jobs["node"].fillna(hosts.pop()) if "node" in jobs else hosts.pop()
    quanta = []
    for visit, path in quanta_paths.items():
        quanta.extend(read_quanta(path, int(visit), runs.get(int(visit), ""), processing_rule))
    table = pd.concat([jobs, pd.DataFrame(quanta)], ignore_index=True)
    table = table.reindex(columns=COLUMNS)
    table["instance_type"] = instance_type
    for column in ("start", "end"):
        table[column] = pd.to_datetime(table[column], utc=True, format="ISO8601")
    for column in ("visit", "detector"):
        table[column] = table[column].astype("Int64")
    for column in ("rule", "task_label", "run", "node", "slurm_job_id", "slurm_state"):
        table[column] = table[column].astype(object).fillna("").astype(str)
    return table.sort_values(["start", "kind", "rule"], kind="stable").reset_index(drop=True)
