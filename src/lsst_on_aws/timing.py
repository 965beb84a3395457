"""One tidy timing table: every job and every pipeline quantum of a run, one row each.

It joins what the run left behind:

- the ``benchmark:`` file of every job (Snakemake's wall time, CPU time, peak
  RSS and I/O; the file stem is the rule, the visit comes from the path);
- each visit job's ``job.json`` (the Slurm job id, host, start and end);
- Slurm accounting for those jobs, where ``sacct`` answers (node, state,
  elapsed, CPU, MaxRSS), from :func:`lsst_on_aws.slurm.job_accounting`;
- each visit's ``quanta.json``: the per-quantum run time, CPU time and peak
  memory that ``pipetask`` records in the Butler's ``<label>_metadata``
  datasets, exported by the visit job.

Rows of ``kind`` "job" are Snakemake jobs; rows of ``kind`` "quantum" are the
pipeline's tasks inside a visit job (their time is part of the job's). A job
without a ``job.json`` has no recorded start: its end is taken as the time its
benchmark file was written, and its start as that end minus its wall time
(``time_source`` says which). A visit job's end is the one its ``job.json``
recorded, and its start that end minus the benchmark's wall time (the
record's own start comes after Python's imports). In a local run (no visit job under Slurm)
every job's node is the one host the visit jobs recorded.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from pathlib import Path

import pandas as pd

from lsst_on_aws import summary

COLUMNS = [
    "kind",  # "job" or "quantum"
    "rule",
    "visit",
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
_VISIT_IN_PATH = re.compile(r"/(?:visits|raws?)/(\d+)/")


# benchmark columns -> timing columns
BENCHMARK_COLUMNS = summary.BENCHMARK_COLUMNS | {"io_in": "io_in_mb", "io_out": "io_out_mb"}


def read_benchmark_file(path: Path | str) -> dict:
    """One job's row from its Snakemake benchmark file (the mean over repeats).

    The rule is the file's stem; the visit is the number after ``visits/``,
    ``raw/`` or ``raws/`` in the path.
    """
    path = Path(path)
    usage = summary.read_benchmark(path, BENCHMARK_COLUMNS)
    match = _VISIT_IN_PATH.search(path.as_posix())
    end = pd.Timestamp(path.stat().st_mtime, unit="s", tz="UTC")
    return {
        "kind": "job",
        "rule": path.stem,
        "visit": int(match.group(1)) if match else pd.NA,
        "start": end - pd.Timedelta(seconds=usage["wall_s"]),
        "end": end,
        "time_source": "benchmark-file",
        **usage,
    }


def read_quanta(path: Path | str, visit: int, run: str) -> list[dict]:
    """A visit's ``quanta.json`` as rows of kind "quantum"."""
    rows = []
    for record in json.loads(Path(path).read_text()):
        rows.append(
            {
                "kind": "quantum",
                "rule": "process_visit",
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


def timing_table(
    benchmark_paths: Iterable[str],
    job_paths: Iterable[str],
    quanta_paths: Iterable[str],
    runs: dict[int, str],
    instance_type: str,
    accounting: pd.DataFrame | None = None,
) -> pd.DataFrame:
    """The run's tidy timing table (see the module docstring).

    Parameters
    ----------
    benchmark_paths
        Every job's benchmark file.
    job_paths, quanta_paths
        The visits' ``job.json`` and ``quanta.json`` files.
    runs
        Visit -> its RUN collection.
    instance_type
        What the jobs ran on (or are costed as): the compute nodes' type.
    accounting
        :func:`lsst_on_aws.slurm.job_accounting`'s table for the visits' Slurm
        jobs, or None.
    """
    jobs = pd.DataFrame([read_benchmark_file(p) for p in benchmark_paths])
    records = {r["visit"]: r for r in map(summary.read_job_record, job_paths)}
    for i, row in jobs.iterrows():
        record = records.get(row["visit"]) if row["rule"] == "process_visit" else None
        if record is not None:
            jobs.loc[i, ["start", "end", "node", "slurm_job_id"]] = [
                record["end"] - pd.Timedelta(seconds=row["wall_s"]),
                record["end"],
                record["host"],
                record["slurm_job_id"],
            ]
            jobs.loc[i, ["time_source", "run"]] = ["job.json", runs.get(record["visit"], "")]
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
    for path in quanta_paths:
        visit = int(Path(path).parent.name)
        quanta.extend(read_quanta(path, visit, runs.get(visit, "")))
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
