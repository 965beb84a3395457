"""Bad raw data fails its own visit, clearly, and the others complete.

A directory data source (a copy of the embedded run's simulated raws and
calibrations) with one truncated raw file and one raw file from another
instrument. Each bad visit must end as a recorded failure whose reason names
the file; the good visit is processed and chained; the summary lists all
three; Snakemake itself succeeds and warns about the failed visits. Locally
the visits run in batches of three visits of the table (1-3 holds the good
visit 2 and the truncated visit 3): a bad visit does not stop its batch.
"""

from __future__ import annotations

import json
import shutil

import pandas as pd
import pytest
from astropy.io import fits
from conftest import copy_workflow, snakemake, stack_python

pytestmark = pytest.mark.workflow

CHAIN = "SimCam/runs/single-visit"


def make_bad_data(demo_run, data):
    """Copy the simulated data; truncate a raw of visit 3, relabel one of visit 4."""
    shutil.copytree(demo_run / "results/simulated/raw", data / "raw")
    shutil.copytree(demo_run / "results/simulated/calib", data / "calib")
    truncated = sorted((data / "raw/3").glob("*.fits"))[1]
    truncated.write_bytes(truncated.read_bytes()[: 2880 * 3])
    foreign = sorted((data / "raw/4").glob("*.fits"))[2]
    with fits.open(foreign, mode="update") as hdul:
        hdul[0].header["INSTRUME"] = "DECam"
    return truncated, foreign


def run_with_bad_data(demo_run, tmp_path, *profile, visits_per_job=1):
    """Run visits 2, 3 and 4 of the bad data set; return (workdir, result, bad files)."""
    truncated, foreign = make_bad_data(demo_run, tmp_path / "data")
    workdir = copy_workflow(tmp_path / "workflow")
    # a config file, as a user would write for a data source
    overrides = tmp_path / "bad-data.yaml"
    data = {"source": "directory", "path": str(tmp_path / "data")}
    settings = {"data": data, "process_visits": [2, 3, 4], "visits_per_job": visits_per_job}
    overrides.write_text(json.dumps(settings))
    # the summary and its figure, not the costs, report and bundle the run goes on to
    targets = ["results/summary/visits.csv", "results/summary/visits.png", "results/butler/chain.json"]
    result = snakemake(workdir, *targets, *profile, "--configfile", str(overrides))
    return workdir, result, truncated, foreign


def check_bad_data_outcome(workdir, result, truncated, foreign):
    assert result.returncode == 0, result.stderr[-3000:]
    table = pd.read_csv(workdir / "results/summary/visits.csv", keep_default_na=False)
    rows = table.set_index("visit")
    assert rows.loc[2, "status"] == "ok"
    assert rows.loc[2, "n_sources"] > 100
    assert rows.loc[3, "status"] == "failed"
    assert str(truncated) in rows.loc[3, "reason"]
    assert "not a readable FITS file" in rows.loc[3, "reason"]
    assert rows.loc[4, "status"] == "failed"
    assert str(foreign) in rows.loc[4, "reason"]
    assert "INSTRUME is 'DECam', not 'SimCam'" in rows.loc[4, "reason"]
    assert "2 of 3 visits could not be processed" in result.stderr
    assert f"visit 3: ingest: {truncated}" in result.stderr
    chain = json.loads((workdir / "results/butler/chain.json").read_text())
    assert chain["children"] == [f"{CHAIN}/2", "SimCam/defaults"]
    assert sorted(chain["left_out"]) == [f"{CHAIN}/3", f"{CHAIN}/4"]
    # nothing of the bad visits reached the repository
    raws = stack_python(
        workdir,
        """
import json
from lsst.daf.butler import Butler
b = Butler.from_config("results/butler/repo")
refs = b.query_datasets("raw", collections="SimCam/raw/all")
print(json.dumps(sorted({r.dataId["exposure"] for r in refs})))
""",
    )
    assert raws == [2]
    assert (workdir / "results/summary/visits.png").exists()


def test_bad_files_fail_their_visit_and_the_rest_complete(demo_run, tmp_path):
    run = run_with_bad_data(demo_run, tmp_path, "--cores", "2", visits_per_job=3)
    workdir, result, truncated, foreign = run
    check_bad_data_outcome(workdir, result, truncated, foreign)
    batches = pd.read_csv(workdir / "results/summary/visits.csv").set_index("visit")["batch"]
    assert batches.to_dict() == {2: "1-3", 3: "1-3", 4: "4-6"}
