"""The tidy timing table from known benchmark files, job records, quanta and Slurm accounting."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pandas as pd
import pytest

from lsst_on_aws import summary
from lsst_on_aws.accounting import timing

BENCHMARK_HEADER = "s\th:m:s\tmax_rss\tmax_vms\tmax_uss\tmax_pss\tio_in\tio_out\tmean_load\tcpu_time\n"


def write_benchmark(path, wall, cpu, rss, mtime):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(BENCHMARK_HEADER + f"{wall}\t0:00:{int(wall):02d}\t{rss}\t1\t1\t1\t2.5\t7.5\t50\t{cpu}\n")
    os.utime(path, (mtime, mtime))
    return str(path)


def write_job_record(root, visit, batch, start, end, wall, cpu):
    """A visit's job.json as the processing job writes it."""
    path = root / f"results/visits/{visit}/job.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    record = {"slurm_job_id": "", "host": "node-a", "batch": batch, "visit": visit}
    record |= {"start": f"{start}.000+00:00", "end": f"{end}.000+00:00"}
    path.write_text(json.dumps(record | {"wall_s": wall, "cpu_s": cpu, "max_rss_mb": 300.0}))
    return path


@pytest.fixture
def run_files(tmp_path):
    """A visit's ingest and processing, plus one whole-run job, as the workflow writes them."""
    t = pd.Timestamp("2026-11-26T10:00:00Z").timestamp()
    bench = tmp_path / "results/benchmarks"
    # each benchmark file and whose it is, as the timing rule's parameter says
    benchmarks = {
        write_benchmark(bench / "butler/create_repo.tsv", 3.0, 2.5, 150.0, t + 3): {"rule": "create_repo"},
        write_benchmark(bench / "butler/raws/7/ingest_raws.tsv", 4.0, 3.0, 155.0, t + 8): {
            "rule": "ingest_raws",
            "visit": 7,
        },
        write_benchmark(bench / "batches/7-7/process_batch.tsv", 12.0, 10.0, 310.0, t + 30): {
            "rule": "process_batch",
            "batch": "7-7",
        },
    }
    job = write_job_record(tmp_path, 7, "7-7", "2026-11-26T10:00:12", "2026-11-26T10:00:20", 8.0, 7.0)
    quanta = job.parent / "quanta.json"
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
    return benchmarks, [str(job)], {7: str(quanta)}


def test_one_row_per_job_and_quantum(run_files):
    benchmarks, jobs, quanta = run_files
    table = timing.timing_table(
        benchmarks, jobs, quanta, {7: "SimCam/runs/x/7"}, "c6i.2xlarge", "process_batch"
    )
    assert list(table.columns) == timing.COLUMNS
    assert table["kind"].value_counts().to_dict() == {"job": 3, "quantum": 2}
    by_rule = table[table["kind"] == "job"].set_index("rule")
    assert by_rule.loc["ingest_raws", "visit"] == 7
    assert pd.isna(by_rule.loc["create_repo", "visit"])
    # a batch of one visit: the visit's row is the job's benchmark
    assert by_rule.loc["process_batch", "wall_s"] == 12.0
    assert by_rule.loc["process_batch", "cpu_s"] == 10.0
    assert by_rule.loc["process_batch", "io_out_mb"] == 7.5
    assert by_rule.loc["process_batch", "max_rss_mb"] == 300.0
    assert by_rule.loc["process_batch", "run"] == "SimCam/runs/x/7"
    assert by_rule.loc["process_batch", "batch"] == "7-7"
    # the visit job ends when its record says and starts a wall time earlier
    assert by_rule.loc["process_batch", "end"] == pd.Timestamp("2026-11-26T10:00:20Z")
    assert by_rule.loc["process_batch", "start"] == pd.Timestamp("2026-11-26T10:00:08Z")
    assert by_rule.loc["process_batch", "time_source"] == "job.json"
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


def test_a_deleted_benchmark_file_is_a_clear_error_naming_it_and_its_rule(run_files):
    """The per-batch benchmark files are the timing rule's parameters, not inputs: one deleted
    after its job ran is not remade by Snakemake, so the table says which and how to remake it.
    """
    benchmarks, jobs, quanta = run_files
    gone = next(path for path, job in benchmarks.items() if job["rule"] == "process_batch")
    Path(gone).unlink()
    with pytest.raises(
        FileNotFoundError, match=r"batches/7-7/process_batch.tsv \(process_batch\).*--forcerun"
    ):
        timing.timing_table(benchmarks, jobs, quanta, {7: "SimCam/runs/x/7"}, "c6i.2xlarge", "process_batch")


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
    table = timing.timing_table(
        benchmarks, jobs, quanta, {7: "run/7"}, "c6i.2xlarge", "process_batch", accounting
    )
    visit_job = table[(table["kind"] == "job") & (table["rule"] == "process_batch")].iloc[0]
    assert visit_job["slurm_job_id"] == "42_3"
    assert visit_job["slurm_state"] == "COMPLETED"
    assert visit_job["slurm_max_rss_mb"] == 320.0
    assert visit_job["node"] == "compute-dy-1"
    # under Slurm, jobs without a record of their own have no node
    assert table.loc[table["rule"] == "create_repo", "node"].iloc[0] == ""


def test_a_batch_job_is_one_row_per_visit_sharing_its_fixed_cost(tmp_path):
    """Two visits in one job: each its own time plus half of what the job spent outside them."""
    t = pd.Timestamp("2026-11-26T10:00:00Z").timestamp()
    bench_file = tmp_path / "results/benchmarks/batches/1-2/process_batch.tsv"
    bench = write_benchmark(bench_file, 20.0, 16.0, 400.0, t + 21)
    jobs = [
        write_job_record(tmp_path, 1, "1-2", "2026-11-26T10:00:05", "2026-11-26T10:00:13", 8.0, 7.0),
        write_job_record(tmp_path, 2, "1-2", "2026-11-26T10:00:13", "2026-11-26T10:00:19", 6.0, 5.0),
    ]
    benchmarks = {bench: {"rule": "process_batch", "batch": "1-2"}}
    runs = {1: "r/1", 2: "r/2"}
    table = timing.timing_table(benchmarks, [str(p) for p in jobs], {}, runs, "c6i.2xlarge", "process_batch")
    rows = table.set_index("visit")
    assert len(table) == 2 and set(table["batch"]) == {"1-2"} and set(table["rule"]) == {"process_batch"}
    # 20 s - (8 + 6) = 6 s of the job outside its visits, 3 s each; CPU 16 - 12 = 4, 2 each
    assert rows.loc[1, "wall_s"] == 11.0 and rows.loc[2, "wall_s"] == 9.0
    assert rows.loc[1, "cpu_s"] == 9.0 and rows.loc[2, "cpu_s"] == 7.0
    assert table["wall_s"].sum() == 20.0  # nothing lost, nothing counted twice
    assert rows.loc[2, "end"] == pd.Timestamp("2026-11-26T10:00:19Z")
    assert rows.loc[2, "start"] == pd.Timestamp("2026-11-26T10:00:10Z")
    assert rows.loc[1, "io_out_mb"] == 3.75 and rows.loc[2, "run"] == "r/2"


def test_an_unsampled_peak_memory_is_not_a_measured_zero(tmp_path):
    """Snakemake writes max_rss 0 for a job that ended before its first memory sample."""
    header = "s\th:m:s\tmax_rss\tmax_vms\tmax_uss\tmax_pss\tio_in\tio_out\tmean_load\tcpu_time\n"
    quick, sampled = tmp_path / "quick.tsv", tmp_path / "sampled.tsv"
    quick.write_text(header + "0.01\t0:00:00\t0\t0\t0\t0\t0.00\t1.09\t0.00\t0.00\n")
    sampled.write_text(header + "0.02\t0:00:00\t3.09\t4.26\t0.29\t0.55\t0.00\t0.00\t0.00\t0.00\n")
    assert summary.read_benchmark(quick) == {
        "wall_s": 0.01,
        "cpu_s": 0.0,
        "max_rss_mb": pytest.approx(float("nan"), nan_ok=True),
    }
    assert summary.read_benchmark(sampled)["max_rss_mb"] == 3.09
