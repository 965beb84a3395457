"""The Butler with a PostgreSQL registry, written by concurrent visit jobs.

The server is Debian's PostgreSQL on 127.0.0.1, which
``tests/services/postgres.sh`` starts (``make test`` does). The embedded
default's first two visits run with ``butler.registry`` set to its URL, two
visit jobs at a time, in a schema of its own; they must have the same
datasets and numbers as in the SQLite run.
"""

from __future__ import annotations

import json
import subprocess
import uuid

import pandas as pd
import pytest
from conftest import REPO_ROOT, copy_workflow, planned_jobs, snakemake, stack_python
from test_slurm import DATASET_QUERY

from lsst_on_aws.summary import read_jobs

pytestmark = pytest.mark.workflow

SERVICE = REPO_ROOT / "tests/services/postgres.sh"
VISITS = [1, 2]


def of_visits(datasets: dict, visits: list[int]) -> dict:
    """The datasets (and output chain members) of ``visits`` only, in a DATASET_QUERY answer."""
    out = {
        name: [row for row in rows if row[0] in visits] for name, rows in datasets.items() if name != "chain"
    }
    keep = {f"SimCam/runs/single-visit/{v}" for v in visits}
    out["chain"] = [c for c in datasets["chain"] if c in keep or not c.startswith("SimCam/runs/")]
    return out


@pytest.fixture(scope="module")
def postgres_url() -> str:
    if subprocess.run([SERVICE, "status"], check=False).returncode != 0:
        pytest.fail("PostgreSQL is not running: run tests/services/postgres.sh start (make test does)")
    return subprocess.check_output([SERVICE, "url"], text=True).strip()


# what reads or writes the registry: the visits, their summary and the output chain (not the
# timings, costs, report and bundle made from files after them)
TARGETS = ["results/summary/visits.csv", "results/butler/chain.json"]


@pytest.fixture(scope="module")
def postgres_run(tmp_path_factory, postgres_url):
    """The embedded default's first two visits, two jobs at once, with the registry in a fresh
    PostgreSQL schema, dropped afterwards.
    """
    namespace = f"test_{uuid.uuid4().hex[:12]}"
    workdir = copy_workflow(tmp_path_factory.mktemp("postgres") / "workflow")
    registry = f"butler={{'registry': '{postgres_url}', 'namespace': '{namespace}'}}"
    config = ["--config", registry, f"process_visits={VISITS}"]
    result = snakemake(workdir, "--cores", "2", *config, "--", *TARGETS)
    try:
        if result.returncode != 0:
            pytest.fail(f"the workflow failed with PostgreSQL:\n{result.stderr[-4000:]}")
        yield workdir, registry, namespace
    finally:
        subprocess.run(
            ["psql", postgres_url, "-qc", f"drop schema if exists {namespace} cascade"], check=False
        )


def test_registry_is_in_postgresql(postgres_run, postgres_url):
    workdir, _, namespace = postgres_run
    created = json.loads((workdir / "results/butler/created.json").read_text())
    assert created["registry"] == postgres_url
    tables = subprocess.check_output(
        ["psql", postgres_url, "-tAc", f"select count(*) from pg_tables where schemaname = '{namespace}'"],
        text=True,
    )
    assert int(tables) > 20
    assert not list((workdir / "results/butler/repo").glob("*.sqlite3"))


def test_same_datasets_and_numbers_as_sqlite(postgres_run, demo_run):
    workdir, _, _ = postgres_run
    ours = stack_python(workdir, DATASET_QUERY)
    assert ours == of_visits(stack_python(demo_run, DATASET_QUERY), VISITS)
    assert ours["chain"] == ["SimCam/runs/single-visit/1", "SimCam/runs/single-visit/2", "SimCam/defaults"]
    science = ["visit", "status", "n_sources", "n_psf_stars", "psf_fwhm_arcsec", "sky_level_e"]
    local = pd.read_parquet(demo_run / "results/summary/visits.parquet")[science]
    pd.testing.assert_frame_equal(
        pd.read_parquet(workdir / "results/summary/visits.parquet")[science],
        local[local["visit"].isin(VISITS)].reset_index(drop=True),
    )


def test_visit_jobs_ran_concurrently(postgres_run):
    """At least two visits were processed at once: the registry had concurrent writers."""
    workdir, _, _ = postgres_run
    jobs = read_jobs([str(p) for p in (workdir / "results/visits").glob("*/job.json")]).sort_values("start")
    overlaps = jobs["start"].iloc[1:].to_numpy() < jobs["end"].cummax().iloc[:-1].to_numpy()
    assert overlaps.any(), jobs[["visit", "start", "end"]]


def test_rerun_with_postgresql_has_nothing_to_do(postgres_run):
    workdir, registry, _ = postgres_run
    config = ["--config", registry, f"process_visits={VISITS}"]
    assert planned_jobs(snakemake(workdir, "--dry-run", *config, "--", *TARGETS)) == {}


def test_changing_the_registry_of_an_existing_repository_is_refused(postgres_run):
    """The repository records its registry; a different one in config is an error, not a silent switch."""
    workdir, _, _ = postgres_run
    result = snakemake(workdir, "--cores", "1", "--", "results/butler/created.json")
    assert result.returncode != 0
    log = (workdir / "logs/butler/create_repo.log").read_text()
    assert "uses the registry postgresql://" in log
    assert "config asks for sqlite" in log
