"""The tidy timing table from known benchmark files, job records, quanta and Slurm accounting."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pandas as pd
import pytest

from lsst_on_aws import timing

BENCHMARK_HEADER = "s\th:m:s\tmax_rss\tmax_vms\tmax_uss\tmax_pss\tio_in\tio_out\tmean_load\tcpu_time\n"


def write_benchmark(path, wall, cpu, rss, mtime):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(BENCHMARK_HEADER + f"{wall}\t0:00:{int(wall):02d}\t{rss}\t1\t1\t1\t2.5\t7.5\t50\t{cpu}\n")
    os.utime(path, (mtime, mtime))
    return str(path)


@pytest.fixture
def run_files(tmp_path):
    """A visit's ingest and processing, plus one whole-run job, as the workflow writes them."""
    t = pd.Timestamp("2026-11-26T10:00:00Z").timestamp()
    bench = tmp_path / "results/benchmarks"
    benchmarks = [
        write_benchmark(bench / "butler/create_repo.tsv", 3.0, 2.5, 150.0, t + 3),
        write_benchmark(bench / "butler/raws/7/ingest_raws.tsv", 4.0, 3.0, 155.0, t + 8),
        write_benchmark(bench / "visits/7/process_visit.tsv", 12.0, 10.0, 310.0, t + 30),
    ]
    visit_dir = tmp_path / "results/visits/7"
    visit_dir.mkdir(parents=True)
    job = visit_dir / "job.json"
    job.write_text(
        json.dumps(
            {
                "slurm_job_id": "",
                "host": "node-a",
                "start": "2026-11-26T10:00:12.000+00:00",
                "end": "2026-11-26T10:00:20.000+00:00",
            }
        )
    )
    quanta = visit_dir / "quanta.json"
    quanta.write_text(
        json.dumps(
            [
                {
                    "task_label": "isr",
                    "detector": 0,
                    "node": "node-a",
                    "start": "2026-11-26T10:00:13+00:00",
                    "end": "2026-11-26T10:00:14+00:00",
                    "wall_s": 1.0,
                    "cpu_s": 0.9,
                    "max_rss_mb": 250.0,
                },
                {
                    "task_label": "visitSummary",
                    "detector": None,
                    "node": "node-a",
                    "start": "2026-11-26T10:00:18+00:00",
                    "end": "2026-11-26T10:00:18.5+00:00",
                    "wall_s": 0.5,
                    "cpu_s": 0.4,
                    "max_rss_mb": 300.0,
                },
            ]
        )
    )
    return benchmarks, [str(job)], [str(quanta)]


def test_one_row_per_job_and_quantum(run_files):
    benchmarks, jobs, quanta = run_files
    table = timing.timing_table(benchmarks, jobs, quanta, {7: "SimCam/runs/x/7"}, "c6i.2xlarge")
    assert list(table.columns) == timing.COLUMNS
    assert table["kind"].value_counts().to_dict() == {"job": 3, "quantum": 2}
    by_rule = table[table["kind"] == "job"].set_index("rule")
    assert by_rule.loc["ingest_raws", "visit"] == 7
    assert pd.isna(by_rule.loc["create_repo", "visit"])
    assert by_rule.loc["process_visit", "wall_s"] == 12.0
    assert by_rule.loc["process_visit", "cpu_s"] == 10.0
    assert by_rule.loc["process_visit", "io_out_mb"] == 7.5
    assert by_rule.loc["process_visit", "run"] == "SimCam/runs/x/7"
    # the visit job ends when its record says and starts a wall time earlier
    assert by_rule.loc["process_visit", "end"] == pd.Timestamp("2026-11-26T10:00:20Z")
    assert by_rule.loc["process_visit", "start"] == pd.Timestamp("2026-11-26T10:00:08Z")
    assert by_rule.loc["process_visit", "time_source"] == "job.json"
    # other jobs end when their benchmark file was written
    assert by_rule.loc["ingest_raws", "end"] == pd.Timestamp("2026-11-26T10:00:08Z")
    assert by_rule.loc["ingest_raws", "start"] == pd.Timestamp("2026-11-26T10:00:04Z")
    assert by_rule.loc["ingest_raws", "time_source"] == "benchmark-file"
    # a local run: every job on the host the visit job recorded
    assert set(table["node"]) == {"node-a"}
    assert set(table["instance_type"]) == {"c6i.2xlarge"}
    quantum = table[table["kind"] == "quantum"].set_index("task_label")
    assert quantum.loc["isr", "detector"] == 0
    assert pd.isna(quantum.loc["visitSummary", "detector"])
    assert quantum.loc["isr", "max_rss_mb"] == 250.0
    assert (table["start"].diff().dropna() >= pd.Timedelta(0)).all()


def test_slurm_accounting_is_joined_to_the_visit_job(run_files):
    benchmarks, jobs, quanta = run_files
    job = Path(jobs[0])
    job.write_text(json.dumps(json.loads(job.read_text()) | {"slurm_job_id": "42_3"}))
    accounting = pd.DataFrame(
        [
            {
                "slurm_job_id": "42_3",
                "slurm_job": "42_3",
                "slurm_node": "compute-dy-1",
                "slurm_state": "COMPLETED",
                "slurm_elapsed_s": 13.0,
                "slurm_cpu_s": 10.5,
                "slurm_max_rss_mb": 320.0,
                "slurm_start": pd.NaT,
                "slurm_end": pd.NaT,
            }
        ]
    )
    table = timing.timing_table(benchmarks, jobs, quanta, {7: "run/7"}, "c6i.2xlarge", accounting)
    visit_job = table[(table["kind"] == "job") & (table["rule"] == "process_visit")].iloc[0]
    assert visit_job["slurm_job_id"] == "42_3"
    assert visit_job["slurm_state"] == "COMPLETED"
    assert visit_job["slurm_max_rss_mb"] == 320.0
    assert visit_job["node"] == "compute-dy-1"
    # under Slurm, jobs without a record of their own have no node
    assert table.loc[table["rule"] == "create_repo", "node"].iloc[0] == ""
