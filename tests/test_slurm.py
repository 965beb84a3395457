"""The embedded workflow on a real Slurm cluster, through ``snakemake --profile slurm``.

The cluster is the local one-node Slurm that ``tests/services/slurm.sh``
starts (``make test`` does): real slurmctld, slurmd and slurmdbd, and the
real ``snakemake-executor-plugin-slurm``. The run must give the same Butler
datasets and the same numbers as the local run of the same configuration.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import time
from pathlib import Path

import pandas as pd
import pytest
from conftest import BIN, copy_workflow, planned_jobs, snakemake, snakemake_env, stack_python

pytestmark = pytest.mark.slurm

DATASET_QUERY = """
import json
from lsst.daf.butler import Butler
b = Butler.from_config("results/butler/repo")
chain = "SimCam/runs/single-visit"
out = {}
for name in ("raw", "post_isr_image", "single_visit_source", "preliminary_visit_image",
             "detector_summary", "visit_summary", "visit_summary_stats"):
    refs = b.query_datasets(name, collections=chain, limit=None, explain=False)
    out[name] = sorted([r.dataId.get("visit", r.dataId.get("exposure")), r.dataId.get("detector"), r.run]
                       for r in refs)
out["chain"] = list(b.collections.get_info(chain).children)
print(json.dumps(out))
"""


def slurm_available() -> None:
    if shutil.which("sinfo") is None:
        pytest.fail("Slurm is not installed here: run tests/services/slurm.sh start (make test does)")
    state = subprocess.run(["sinfo", "-h", "-o", "%T"], capture_output=True, text=True, check=False)
    if state.returncode != 0 or not ({"idle", "mixed", "allocated"} & set(state.stdout.split())):
        pytest.fail(
            f"the local Slurm has no usable node ({state.stdout.strip() or state.stderr.strip()});"
            " run tests/services/slurm.sh start"
        )


@pytest.fixture(scope="session")
def slurm_run(tmp_path_factory) -> Path:
    """The embedded default run to completion on the local Slurm, in its own copy of the workflow."""
    slurm_available()
    workdir = copy_workflow(tmp_path_factory.mktemp("slurm") / "workflow")
    result = snakemake(workdir, "--profile", "slurm", timeout=1800)
    if result.returncode != 0:
        pytest.fail(f"the workflow failed on Slurm:\n{result.stdout[-4000:]}\n{result.stderr[-4000:]}")
    return workdir


def slurm_job_ids(workdir: Path) -> list[str]:
    """Slurm job ids the run's Snakemake log reports submitting (array tasks counted once)."""
    log = max((workdir / ".snakemake/log").glob("*.snakemake.log"))
    ids = []
    for line in log.read_text().splitlines():
        if "has been submitted with SLURM jobid" in line:
            ids.append(line.split("SLURM jobid ")[1].split()[0])
        elif line.startswith("Submitted array job"):
            ids.append(line.split("SLURM job ID ")[1].split(".")[0])
    return ids


def test_profile_is_resolvable_by_name():
    link = Path.home() / ".config/snakemake/slurm"
    assert (link / "config.yaml").is_file(), "make links profiles/slurm to ~/.config/snakemake/slurm"


def test_jobs_ran_under_slurm(slurm_run):
    ids = slurm_job_ids(slurm_run)
    assert ids, "no job was submitted to Slurm"
    out = subprocess.run(
        ["sacct", "-X", "-n", "-P", "-j", ",".join(ids), "--format=JobID,State"],
        capture_output=True,
        text=True,
        check=True,
    )
    states = dict(line.split("|") for line in out.stdout.split())
    assert states, out.stderr
    assert set(states.values()) == {"COMPLETED"}
    # the per-visit rules go as job arrays: far fewer sbatch calls than jobs
    n_jobs = sum(1 for _ in (slurm_run / "results/benchmarks").rglob("*.tsv"))
    assert len(ids) < n_jobs
    # every visit was processed inside a Slurm allocation
    logs = [p.read_text() for p in (slurm_run / "logs/slurm/rule_process_visit").rglob("*.log")]
    processed = {line.split("=")[1] for text in logs for line in text.split() if line.startswith("visit=")}
    assert processed == {"1", "2", "3", "4", "5", "6"}


def test_same_datasets_as_the_local_run(slurm_run, demo_run):
    assert stack_python(slurm_run, DATASET_QUERY) == stack_python(demo_run, DATASET_QUERY)


def test_same_numbers_as_the_local_run(slurm_run, demo_run):
    science = ["visit", "band", "n_detectors", "n_sources", "n_psf_stars", "psf_fwhm_arcsec",
               "psf_ellipticity", "sky_level_e", "sky_noise_e"]  # fmt: skip
    on_slurm = pd.read_parquet(slurm_run / "results/summary/visits.parquet")[science]
    local = pd.read_parquet(demo_run / "results/summary/visits.parquet")[science]
    pd.testing.assert_frame_equal(on_slurm, local)
    for visit in (1, 6):
        slurm_sources = pd.read_parquet(slurm_run / f"results/visits/{visit}/sources.parquet")
        local_sources = pd.read_parquet(demo_run / f"results/visits/{visit}/sources.parquet")
        pd.testing.assert_frame_equal(slurm_sources, local_sources)
    summary = json.loads((slurm_run / "results/visits/1/summary.json").read_text())
    assert summary["run"] == "SimCam/runs/single-visit/1"


def test_rerun_on_slurm_has_nothing_to_do(slurm_run):
    result = snakemake(slurm_run, "--profile", "slurm", "--dry-run")
    assert result.returncode == 0, result.stderr[-2000:]
    assert planned_jobs(result) == {}


def test_summary_carries_slurm_accounting(slurm_run):
    """Each visit's row names its Slurm job, node and state, with sacct's elapsed, CPU and MaxRSS."""
    table = pd.read_csv(slurm_run / "results/summary/visits.csv", dtype={"slurm_job_id": str})
    assert table["slurm_job_id"].notna().all()
    assert (table["slurm_state"] == "COMPLETED").all()
    assert (table["slurm_node"] == subprocess.check_output(["hostname", "-s"], text=True).strip()).all()
    # the Slurm job holds the visit's Snakemake job: it lasts at least as long
    assert (table["slurm_elapsed_s"] >= table["wall_s"].round() - 1).all()
    assert (table["slurm_cpu_s"] > 0).all()
    assert (table["slurm_max_rss_mb"] > 100).all()


def test_cancelled_visit_job_is_retried(slurm_run):
    """``scancel`` of a running visit job: the profile's retries resubmit it and the run completes.

    The retry first clears what the cancelled attempt left in the visit's
    RUN collection, so the Butler ends with exactly one of each dataset.
    """
    proc = subprocess.Popen(
        [str(BIN / "snakemake"), "--profile", "slurm", "--forcerun", "results/visits/2/summary.json"],
        cwd=slurm_run,
        env=snakemake_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        job = wait_for_running_job(timeout=300)
        time.sleep(8)  # let pipetask start writing into the visit's RUN
        subprocess.run(["scancel", job], check=True)
        output, _ = proc.communicate(timeout=900)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, output[-4000:]
    assert "Trying to restart job" in output, output[-4000:]
    states = subprocess.run(
        ["sacct", "-X", "-n", "-P", "-j", job, "--format=State"], capture_output=True, text=True, check=True
    ).stdout
    assert "CANCELLED" in states
    counts = stack_python(slurm_run, DATASET_QUERY)
    for name in ("post_isr_image", "single_visit_source", "detector_summary"):
        visit2 = [row for row in counts[name] if row[0] == 2]
        assert len(visit2) == 4, (name, visit2)
    assert counts["chain"] == [f"SimCam/runs/single-visit/{v}" for v in range(1, 7)] + ["SimCam/defaults"]
    assert planned_jobs(snakemake(slurm_run, "--profile", "slurm", "--dry-run")) == {}


def wait_for_running_job(timeout: float) -> str:
    """The id of the first of this user's Slurm jobs seen RUNNING."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        out = subprocess.run(
            ["squeue", "-h", "-t", "RUNNING", "-o", "%A"], capture_output=True, text=True, check=False
        )
        ids = out.stdout.split()
        if ids:
            return ids[0]
        time.sleep(1)
    pytest.fail("no Slurm job started running")
