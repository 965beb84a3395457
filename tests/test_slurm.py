"""The embedded workflow on a real Slurm cluster, through ``snakemake --profile slurm``.

The cluster is the local one-node Slurm that ``tests/services/slurm.sh``
starts (``make test`` does): real slurmctld, slurmd and slurmdbd, and the
real ``snakemake-executor-plugin-slurm``. The run must give the same Butler
datasets and the same numbers as the local run of the same configuration.

Bad data is not run again here: a visit whose data cannot be processed is
recorded as failed by its batch's own process (``process_visit``), and its
job succeeds, whatever the executor; test_bad_data and test_decam cover it.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import signal
import subprocess
import time
from pathlib import Path

import pandas as pd
import pytest
from conftest import BIN, copy_workflow, planned_jobs, snakemake, snakemake_env, stack_python

pytestmark = pytest.mark.slurm
# by name, as users type it: the tests' home links it to the checkout under
# test, as `make env` does (conftest.user_home)
SLURM_PROFILE = "slurm"

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


@pytest.fixture(scope="module", autouse=True)
def reap_hung_job_instances(tmp_path_factory):
    """After the module: kill the Snakemake job instances left behind by finished Slurm jobs.

    Seen here: a job's inner ``snakemake --target-jobs`` finished its job
    ("Finished jobid", "Elapsed time" in the job's log, ``sacct`` says
    COMPLETED) but hung on exit, its threads waiting on futexes. This test
    cluster tracks processes with ``proctrack/linuxproc``, which does not
    reap a process that outlives its step, so it was reparented to init and
    slept on. Such a process holds no lock and writes nothing (its outputs
    are in place), but it would stay until the machine restarts. A cluster
    with ``proctrack/cgroup`` (ParallelCluster's) kills it with the job.
    """
    yield
    root = str(tmp_path_factory.getbasetemp())
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if "snakemake" in cmdline and "--target-jobs" in cmdline and root in cmdline:
            with contextlib.suppress(ProcessLookupError):
                os.kill(int(entry.name), signal.SIGKILL)


@pytest.fixture(scope="session")
def slurm_run(tmp_path_factory) -> Path:
    """The embedded default, in batches of three visits, run to completion on the local Slurm (own copy)."""
    slurm_available()
    workdir = copy_workflow(tmp_path_factory.mktemp("slurm") / "workflow")
    # visits in batches of three under Slurm (two jobs), one each in the local run
    config = workdir / "config/config.yaml"
    config.write_text(config.read_text().replace("visits_per_job: 1\n", "visits_per_job: 3\n"))
    result = snakemake(workdir, "--profile", SLURM_PROFILE, timeout=1800)
    if result.returncode != 0:
        pytest.fail(f"the workflow failed on Slurm:\n{result.stdout[-4000:]}\n{result.stderr[-4000:]}")
    return workdir


def slurm_job_ids(workdir: Path) -> list[str]:
    """Slurm job ids the run's Snakemake logs report submitting (array tasks counted once).

    Every log of the directory is read: the run's last job (``bundle``) runs
    ``snakemake --report``, which writes a log of its own.
    """
    ids = []
    lines = [line for log in sorted((workdir / ".snakemake/log").glob("*.snakemake.log"))
             for line in log.read_text().splitlines()]  # fmt: skip
    for line in lines:
        if "has been submitted with SLURM jobid" in line:
            ids.append(line.split("SLURM jobid ")[1].split()[0])
        elif line.startswith("Submitted array job"):
            ids.append(line.split("SLURM job ID ")[1].split(".")[0])
    return ids


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
    # one sbatch a job, no job arrays (docs/slurm.md: the plugin's arrays check the first task's
    # outputs); the batches of 3 visits make two processing jobs of the 6 visits
    assert not [job for job in states if "_" in job], states
    batch_jobs = list((slurm_run / "logs/slurm/rule_process_batch").rglob("*.log"))
    assert len(batch_jobs) == 2, batch_jobs
    # every visit was processed inside a Slurm allocation
    logs = [p.read_text() for p in (slurm_run / "logs/slurm/rule_process_batch").rglob("*.log")]
    processed = {line.split("=")[1] for text in logs for line in text.split() if line.startswith("batch=")}
    assert processed == {"1-3", "4-6"}


def test_same_datasets_as_the_local_run(slurm_run, demo_run):
    assert stack_python(slurm_run, DATASET_QUERY) == stack_python(demo_run, DATASET_QUERY)


def test_same_numbers_as_the_local_run(slurm_run, demo_run):
    science = ["visit", "band", "n_detectors", "n_sources", "n_psf_stars", "psf_fwhm_arcsec",
               "psf_fwhm_pix", "psf_ellipticity", "sky_level_e", "sky_noise_e"]  # fmt: skip
    on_slurm = pd.read_parquet(slurm_run / "results/summary/visits.parquet")[science]
    local = pd.read_parquet(demo_run / "results/summary/visits.parquet")[science]
    pd.testing.assert_frame_equal(on_slurm, local)
    for visit in (1, 6):
        slurm_sources = pd.read_parquet(slurm_run / f"results/visits/{visit}/sources.parquet")
        local_sources = pd.read_parquet(demo_run / f"results/visits/{visit}/sources.parquet")
        pd.testing.assert_frame_equal(slurm_sources, local_sources)
    summary = json.loads((slurm_run / "results/visits/1/summary.json").read_text())
    assert summary["run"] == "SimCam/runs/single-visit/1"


def test_timing_table_carries_slurm_accounting(slurm_run):
    timings = pd.read_parquet(slurm_run / "results/costs/timings.parquet")
    visit_jobs = timings[(timings["kind"] == "job") & (timings["rule"] == "process_batch")]
    assert len(visit_jobs) == 6
    assert (visit_jobs["slurm_job_id"] != "").all()
    assert set(visit_jobs["slurm_state"]) == {"COMPLETED"}
    assert set(visit_jobs["node"]) == {"vm"}  # the node sacct names
    assert (visit_jobs["slurm_cpu_s"] > 0).all() and (visit_jobs["slurm_max_rss_mb"] > 0).all()
    quanta = timings[timings["kind"] == "quantum"]
    assert set(quanta["node"]) == {"vm"} and len(quanta) == 6 * 9


def test_rerun_on_slurm_has_nothing_to_do(slurm_run):
    result = snakemake(slurm_run, "--profile", SLURM_PROFILE, "--dry-run")
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


def start_forced_run(workdir: Path, *targets: str) -> subprocess.Popen:
    """``snakemake --profile slurm --forcerun TARGETS``, in the background; output as text on stdout."""
    return subprocess.Popen(
        [str(BIN / "snakemake"), "--profile", SLURM_PROFILE, "--forcerun", *targets],
        cwd=workdir,
        env=snakemake_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def wait_for_running_job(timeout: float, field: str = "%A", exclude: set[str] = frozenset()) -> str:
    """The first of this user's Slurm jobs seen RUNNING, other than ``exclude``: its job id (``%A``)
    or array job id (``%F``).
    """
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        out = subprocess.run(
            ["squeue", "-h", "-t", "RUNNING", "-o", field], capture_output=True, text=True, check=False
        )
        ids = [i for i in out.stdout.split() if i not in exclude]
        if ids:
            return ids[0]
        time.sleep(1)
    pytest.fail("no Slurm job started running")


def sacct_states(job: str, *options: str) -> list[str]:
    """The states sacct records for ``job`` (the allocation only, not its steps)."""
    out = subprocess.run(
        ["sacct", "-X", "-n", "-P", *options, "-j", job, "--format=State"],
        capture_output=True,
        text=True,
        check=True,
    )
    return [line.split()[0] for line in out.stdout.splitlines() if line.strip()]


def job_state(job: str) -> str:
    """The state squeue reports for ``job`` ("" once it has left the queue)."""
    out = subprocess.run(["squeue", "-h", "-j", job, "-o", "%T"], capture_output=True, text=True, check=False)
    return out.stdout.strip()


def visit_dataset_counts(workdir: Path, visits: list[int]) -> dict:
    """Per visit, how many of each per-detector dataset the output chain holds; and the chain."""
    counts = stack_python(workdir, DATASET_QUERY)
    per_visit = {
        name: {v: sum(1 for row in counts[name] if row[0] == v) for v in visits}
        for name in ("post_isr_image", "single_visit_source", "detector_summary")
    }
    return {"datasets": per_visit, "chain": counts["chain"]}


def assert_complete(workdir: Path, visits: list[int]) -> None:
    """One of each dataset per detector for ``visits``, every visit chained, nothing left to do."""
    counts = visit_dataset_counts(workdir, visits)
    for name, per_visit in counts["datasets"].items():
        assert per_visit == dict.fromkeys(visits, 4), name
    assert counts["chain"] == [f"SimCam/runs/single-visit/{v}" for v in range(1, 7)] + ["SimCam/defaults"]
    assert planned_jobs(snakemake(workdir, "--profile", SLURM_PROFILE, "--dry-run")) == {}


# the datasets of visit 1's RUN, by detector
RUN_QUERY = """
import json
from lsst.daf.butler import Butler
b = Butler.from_config("results/butler/repo")
out = {}
for name in ("post_isr_image", "single_visit_source", "detector_summary", "visit_summary"):
    refs = b.query_datasets(name, collections="SimCam/runs/single-visit/1", limit=None, explain=False)
    out[name] = sorted((r.dataId.get("detector") for r in refs), key=lambda d: -1 if d is None else d)
print(json.dumps(out))
"""

# a 16-detector visit, two at a time; a first request (150 MB) below what even the job's batch
# step holds (about 185 MB here; the whole job about 450-570 MB, measured by Slurm), so that
# Slurm kills its first attempt for memory at one of its first looks (every 2 s); retries ask for
# 8 times as much, at most 1200 MB: enough, so that the attempts are certain. Detectors of 512
# pixels, not 256: at 256 all 33 quanta took 2.7 s, and in a CI run at c939ef9 the first attempt
# ended between two of Slurm's looks (then every 10 s) and was never killed; at 512 the cancel
# also lands while the retry still has quanta to run
MANY_DETECTORS = """
simulation: {detectors: 16, detector_pixels: 512}
visit_jobs: {cpus: 2, mem_mb: 100, mem_mb_per_cpu: 50, mem_multiplier: 8, max_mem_mb: 1200}
"""


def running_job_asking(memory: str) -> str | None:
    """The id of this user's running Slurm job that asks for ``memory`` (``squeue``'s form: 1200M)."""
    out = subprocess.run(["squeue", "-h", "-t", "RUNNING", "-o", "%A %m"], capture_output=True, text=True)
    return next((job for job, asked in map(str.split, out.stdout.splitlines()) if asked == memory), None)


def took(log: str) -> set[tuple[str, int]]:
    """(task, detector) of every quantum a processing log says finished ("... took N seconds")."""
    done = re.findall(r"Execution of task '(\w+)' on quantum \{[^}]*detector: (\d+)[^}]*\} took", log)
    return {(task, int(detector)) for task, detector in done}


def attempts(job: str) -> list[dict]:
    """Every Slurm job of the Snakemake job that ``job`` is an attempt of (the plugin names them all
    after the run), in order: id, state, exit code, memory asked for (MB) and held (PSS, MB).
    """
    name = subprocess.run(
        ["sacct", "-X", "-n", "-P", "-j", job, "-o", "JobName"], capture_output=True, text=True, check=True
    ).stdout.split()[0]
    out = subprocess.run(
        ["sacct", "-n", "-P", "-S", "now-1hour", "--name", name, "-o", "JobID,State,ExitCode,ReqMem,MaxRSS"],
        capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    jobs: dict[str, dict] = {}
    for line in out.splitlines():
        step, state, code, requested, held = line.split("|")
        record = jobs.setdefault(step.split(".")[0], {"id": step.split(".")[0], "held_mb": 0})
        if "." not in step:
            record |= {"state": state.split()[0], "exit": code, "requested_mb": int(requested.rstrip("M"))}
        elif held:
            scale = {"K": 1 / 1024, "M": 1, "G": 1024}.get(held[-1], 1 / 2**20)
            record["held_mb"] = max(record["held_mb"], round(float(held.rstrip("KMG")) * scale))
    return sorted(jobs.values(), key=lambda r: int(r["id"]))


def test_a_visit_job_killed_for_memory_then_cancelled_resumes_with_more_memory(tmp_path):
    """A 16-detector visit, its detectors two at a time (``visit_jobs.cpus: 2``), whose job asks
    for far too little memory and is later cancelled (``scancel``) halfway.

    1. Slurm kills the first attempt (150 MB) for memory (this cluster, without cgroups, polls the
       job's memory: ``JobAcctGatherParams=OverMemoryKill``; the step that held too much ends by
       SIGKILL and its job FAILED, where cgroups would say OUT_OF_MEMORY). The retry asks for
       ``mem_multiplier`` (here 8) times as much, within ``max_mem_mb`` (1200).
    2. That attempt (the running job that asks for 1200 MB) is cancelled halfway, once its own log
       shows 8 finished quanta; the next (the profile's second retry, 1200 MB again: the cap)
       resumes it: it runs only the quanta not finished before (none twice: those in flight had
       written no complete output) and leaves one of each dataset.

    Status checks start 5 s after submission instead of 10, to spare the test's time.
    """
    workdir = copy_workflow(tmp_path / "workflow")
    (workdir / "many.yaml").write_text(MANY_DETECTORS)
    # what the visit's job needs, prepared here (the local executor: no Slurm job's start-up to wait
    # for); only the processing goes to Slurm
    inputs = [
        "results/simulated/batches/1-1.json",
        "results/butler/calibs.json",
        "results/butler/dataset_types.json",
    ]
    prepared = snakemake(workdir, "--configfile", "many.yaml", "--", *inputs)
    assert prepared.returncode == 0, prepared.stderr[-3000:]
    log = workdir / "logs/batches/1-1/process_batch.log"
    proc = subprocess.Popen(
        [str(BIN / "snakemake"), "--profile", SLURM_PROFILE, "--configfile", "many.yaml",
         "--slurm-init-seconds-before-status-checks", "5", "--", "results/batches/1-1/batch.json"],
        cwd=workdir, env=snakemake_env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    try:
        # the retry, once it runs: the first attempt may finish quanta before Slurm's memory poll
        # (every 2 s) catches it, so its log is not the one to count
        deadline, cancelled, seen = time.monotonic() + 600, None, 0.0
        while cancelled is None:
            assert time.monotonic() < deadline and proc.poll() is None, "no retry with more memory ran"
            time.sleep(0.2)
            cancelled = running_job_asking("1200M")
            seen = time.time()
        # then its own log (each attempt's shell rewrites it): written since, 8 quanta finished
        first: set[tuple[str, int]] = set()
        while len(first) < 8:
            assert time.monotonic() < deadline and proc.poll() is None, "the retry processed no detectors"
            time.sleep(0.2)
            if log.exists() and log.stat().st_mtime > seen:
                first = took(log.read_text())
        subprocess.run(["scancel", cancelled], check=True)
        output, _ = proc.communicate(timeout=900)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, output[-4000:]
    history = attempts(cancelled)
    assert [a["requested_mb"] for a in history] == [150, 1200, 1200], history
    killed, stopped, final = history
    # killed for memory: held more than asked for when Slurm saw it
    assert killed["state"] in ("OUT_OF_MEMORY", "FAILED") and killed["held_mb"] > 150, history
    assert stopped["id"] == cancelled and stopped["state"] == "CANCELLED", history
    assert final["state"] == "COMPLETED" and final["held_mb"] <= final["requested_mb"], history
    report = json.loads((workdir / "results/visits/1/report.json").read_text())
    statuses = {(q["taskLabel"], q["dataId"].get("detector")): q["status"] for q in report["quantaReports"]}
    assert report["resumed"] is True and len(statuses) == 33  # isr and measure of 16 detectors, a summary
    skipped = {key for key, status in statuses.items() if status == "skipped"}
    ran = {key for key, status in statuses.items() if status == "success"}
    # what the cancelled attempt finished is skipped, nothing runs twice
    assert first <= skipped and ran == set(statuses) - skipped and not ran & first, (first, statuses)
    summary = json.loads((workdir / "results/visits/1/summary.json").read_text())
    assert summary["status"] == "ok" and summary["n_detectors"] == 16
    counts = stack_python(workdir, RUN_QUERY)
    for name in ("post_isr_image", "single_visit_source", "detector_summary"):
        assert counts[name] == list(range(16)), name
    assert counts["visit_summary"] == [None]


def test_killed_controller_is_rerun_without_duplicates(slurm_run):
    """SIGKILL to Snakemake while its visit jobs run; ``--unlock`` and a rerun finish the work.

    One batch (visits 1-3) is forced. Once the controller is killed, its job
    is suspended (``scontrol suspend``): on a loaded machine it could otherwise
    finish before the rerun starts, leaving it nothing to cancel. The rerun
    cancels it before it submits anything (two jobs must never write one
    visit's RUN at once), runs only the visits that were not finished, and
    leaves one of each dataset.
    """
    visits = [1, 2, 3]
    proc = start_forced_run(slurm_run, "results/batches/1-3/batch.json")
    try:
        job = wait_for_running_job(timeout=300, field="%F")
    finally:
        proc.kill()  # SIGKILL: no cleanup, no cancel of its jobs
        proc.wait()
    assert job_state(job), "the killed controller's jobs should outlive it"
    subprocess.run(["scontrol", "suspend", job], check=True)

    unlock = snakemake(slurm_run, "--unlock")
    assert unlock.returncode == 0, unlock.stderr[-2000:]
    rerun = snakemake(slurm_run, "--profile", SLURM_PROFILE, "--rerun-incomplete", timeout=900)
    assert rerun.returncode == 0, rerun.stderr[-4000:]
    assert f"Cancelled Slurm jobs {job}:" in rerun.stderr, rerun.stderr[-3000:]
    assert "an earlier, interrupted run of this workflow left them running" in rerun.stderr
    jobs = planned_jobs(rerun)
    assert 1 <= jobs.get("process_batch", 0) <= len(visits)
    assert not {"simulate_raws", "install_stack", "create_repo"} & set(jobs)
    assert "CANCELLED" in sacct_states(job)
    assert_complete(slurm_run, visits)
