"""The embedded default, end to end: real pipetask, real Butler, real outputs.

These tests share one complete run (``demo_run``) in a temporary copy of
the workflow and inspect what it produced: datasets in the Butler, the
summary table, and the measurements against the simulation's truth. The
plan tests ask Snakemake what a rerun would do (``--dry-run``), never time it.
"""

from __future__ import annotations

import io
import json
import shutil
import subprocess
import tarfile
import zipfile

import pandas as pd
import pytest
import yaml
from astropy.io import fits
from conftest import STACK_TAG, planned_jobs, snakemake, stack_python

pytestmark = pytest.mark.workflow

VISITS = [1, 2, 3, 4, 5, 6]
DETECTORS = 4
CHAIN = "SimCam/runs/single-visit"
# the jobs that gather every visit: they rerun whenever any visit does
AGGREGATES = {
    "chain_visits": 1,
    "summarise_visits": 1,
    "check_truth": 1,
    "plot_visits": 1,
    "plot_cutouts": 1,
    "timing_table": 1,
    "cost_tables": 1,
    "plot_costs": 1,
    "bundle": 1,
    "all": 1,
}
JOB_RULES = {
    "simulate_reference_catalog": 1,
    "simulate_calibs": 1,
    "simulate_raws": 6,
    "install_stack": 1,
    "create_repo": 1,
    "register_instrument": 1,
    "register_dataset_types": 1,
    "ingest_calibs": 1,
    "process_batch": 6,
    "chain_visits": 1,
    "summarise_visits": 1,
}


def test_butler_holds_every_visits_datasets(demo_run):
    counts = stack_python(
        demo_run,
        f"""
import json
from lsst.daf.butler import Butler
b = Butler.from_config("results/butler/repo")
out = {{}}
for name in ("raw", "post_isr_image", "single_visit_source", "preliminary_visit_image",
             "detector_summary", "visit_summary", "visit_summary_stats", "bias", "flat"):
    refs = b.query_datasets(name, collections="{CHAIN}", limit=None, explain=False)
    out[name] = sorted([r.dataId.get("visit", r.dataId.get("exposure")), r.dataId.get("detector")]
                       for r in refs)
out["chain"] = list(b.collections.get_info("{CHAIN}").children)
print(json.dumps(out, default=lambda x: None))
""",
    )
    per_detector = sorted([v, d] for v in VISITS for d in range(DETECTORS))
    for name in (
        "raw",
        "post_isr_image",
        "single_visit_source",
        "preliminary_visit_image",
        "detector_summary",
    ):
        assert counts[name] == per_detector, name
    for name in ("visit_summary", "visit_summary_stats"):
        assert [v for v, _ in counts[name]] == VISITS, name
    assert len(counts["bias"]) == DETECTORS
    assert len(counts["flat"]) == 2 * DETECTORS  # two bands
    # every visit's RUN is in the output chain, ahead of the inputs
    assert counts["chain"] == [f"{CHAIN}/{v}" for v in VISITS] + ["SimCam/defaults"]


def test_summary_has_one_row_per_visit(demo_run):
    table = pd.read_csv(demo_run / "results/summary/visits.csv")
    assert table["visit"].tolist() == VISITS
    assert table["band"].tolist() == ["r", "r", "r", "g", "g", "g"]
    assert (table["n_detectors"] == DETECTORS).all()
    # ~600 stars and 60 galaxies over the focal plane, of which about
    # a third fall on the four detectors of a visit
    assert table["n_sources"].between(150, 400).all()
    # sky = 10^(-0.4 (mu - ZP)) * 0.04 arcsec^2 * 30 s, in electrons per pixel
    expected_sky = {
        "r": 10 ** (-0.4 * (21.2 - 28.1)) * 0.04 * 30,
        "g": 10 ** (-0.4 * (22.1 - 28.3)) * 0.04 * 30,
    }
    for _, row in table.iterrows():
        assert row["sky_level_e"] == pytest.approx(expected_sky[row["band"]], rel=0.01)
        # sky-limited noise: sqrt(sky + read noise^2)
        assert row["sky_noise_e"] == pytest.approx((expected_sky[row["band"]] + 25) ** 0.5, rel=0.05)
    assert (table["wall_s"] > 0).all()
    assert (table["cpu_s"] > 0).all()
    assert (table["max_rss_mb"] > 50).all()
    parquet = pd.read_parquet(demo_run / "results/summary/visits.parquet")
    assert parquet["visit"].tolist() == VISITS


def test_measurements_match_the_simulation_truth(demo_run):
    """Completeness, centroids, photometry and PSF size against the truth catalogue."""
    check = pd.read_csv(demo_run / "results/summary/truth_check.csv")
    assert check["visit"].tolist() == VISITS
    # stars brighter than 21.5 mag have S/N > 30 here: all must be found
    assert (check["n_bright_stars"] >= 20).all()
    assert (check["completeness_bright"] >= 0.98).all()
    # centroids of bright stars: well under a tenth of a pixel
    assert (check["centroid_rms_pix"] < 0.1).all()
    assert (check[["centroid_bias_x_pix", "centroid_bias_y_pix"]].abs() < 0.02).all().all()
    # an aperture of 3 moments FWHM holds 99.7% of a beta=3.5 Moffat's light
    assert check["flux_ratio_median"].between(0.98, 1.01).all()
    # PSF-weighted fluxes, aperture-corrected on the PSF stars, for every clean bright star
    assert (check["n_psf_photometry_stars"] > 20).all()
    assert check["psf_flux_ratio_median"].between(0.97, 1.03).all()
    # the FWHM from adaptive moments against the simulated PSF's (measured: within 0.1 %)
    assert check["psf_fwhm_ratio"].between(0.98, 1.02).all()


def test_sources_match_truth_positions_on_the_sky(demo_run):
    """RA/Dec from the raw WCS: PSF stars lie within 0.05 arcsec of their truth position."""
    sources = pd.read_parquet(demo_run / "results/visits/1/sources.parquet")
    truth = pd.read_parquet(demo_run / "results/simulated/truth/1.parquet")
    stars = sources[sources["is_psf_star"]]
    assert len(stars) > 20
    for _, star in stars.iterrows():
        cand = truth[truth["detector"] == star["detector"]]
        d = ((cand["x"] - star["x"]) ** 2 + (cand["y"] - star["y"]) ** 2) ** 0.5
        match = cand.loc[d.idxmin()]
        dra = (star["ra"] - match["ra"]) * 3600 * 0.99939  # cos(2 deg)
        ddec = (star["dec"] - match["dec"]) * 3600
        assert (dra**2 + ddec**2) ** 0.5 < 0.05


def test_stack_manifest_lists_what_was_installed(demo_run):
    manifest = json.loads((demo_run / "resources/stack/30.2026.4300/manifest.json").read_text())
    assert manifest["method"] == "pip"
    assert manifest["tag"] == "30.2026.4300"
    assert manifest["python"].startswith("3.12")
    assert manifest["packages"]["lsst-ctrl-mpexec"] == "30.2026.4300"
    assert manifest["packages"]["lsst-daf-butler"] == "30.2026.4300"
    assert manifest["packages"]["lsst-on-aws-tasks"] == "0.1.0"
    assert manifest["installed_at"]


def test_report_builds(demo_run):
    """``make demo`` built the report (test_readme runs its command again)."""
    html = (demo_run / "results/report.html").read_text(errors="replace")
    for name in ("visits.png", "visits.csv", "gantt.png", "costs.png", "efficiency.png", "breakdown.csv"):
        assert name in html


def test_timing_table_joins_jobs_and_quanta(demo_run):
    timings = pd.read_parquet(demo_run / "results/costs/timings.parquet")
    jobs = timings[timings["kind"] == "job"]
    assert jobs.groupby("rule").size().to_dict() == JOB_RULES
    assert (jobs["wall_s"] > 0).all()
    # memory is measured for every job but those that end before Snakemake's first sample
    sampled = jobs["max_rss_mb"].notna()
    assert (jobs.loc[sampled, "max_rss_mb"] > 0).all()
    assert (jobs.loc[~sampled, "wall_s"] < 1).all(), jobs.loc[~sampled, ["rule", "wall_s"]]
    quanta = timings[timings["kind"] == "quantum"]
    assert quanta.groupby("task_label").size().to_dict() == {
        "isr": 6 * DETECTORS,
        "measure": 6 * DETECTORS,
        "visitSummary": 6,
    }
    for visit in VISITS:
        job = jobs[(jobs["rule"] == "process_batch") & (jobs["visit"] == visit)].iloc[0]
        inside = quanta[quanta["visit"] == visit]
        assert job["run"] == f"{CHAIN}/{visit}"
        assert set(inside["run"]) == {job["run"]}
        # the quanta ran inside their job and took part of its time
        assert (inside["start"] >= job["start"]).all() and (inside["end"] <= job["end"]).all()
        assert inside["cpu_s"].sum() < job["cpu_s"]
        assert inside["max_rss_mb"].max() <= job["max_rss_mb"] * 1.05
    assert set(timings["instance_type"]) == {"c6i.2xlarge"}
    assert timings["node"].nunique() == 1  # a local run


def test_cost_tables_add_up_and_name_their_prices(demo_run):
    costs = demo_run / "results/costs"
    jobs = pd.read_csv(costs / "jobs.csv")
    breakdown = pd.read_csv(costs / "breakdown.csv").set_index("category")["usd"]
    tasks = pd.read_csv(costs / "tasks.csv")
    visits = pd.read_csv(costs / "visits.csv")
    assert len(jobs) == sum(JOB_RULES.values())
    assert set(jobs["price_source_on_demand"]) == {"table"}
    assert set(jobs["price_source_spot"]) == {"table x 0.25 (assumed spot fraction)"}
    assert set(jobs["price_as_of"]) == {"2024-06-01"}
    # spot at a quarter of on-demand, each job at 1 of 8 vCPUs (1000 MB of 16 GiB is less)
    assert jobs["usd_spot"].sum() == pytest.approx(0.25 * jobs["usd_on_demand"].sum())
    assert jobs["usd_on_demand"].sum() == pytest.approx(0.34 / 8 * jobs["wall_s"].sum() / 3600)
    fixed = breakdown[["head node", "shared storage", "idle compute"]]
    assert (fixed > 0).all()
    assert breakdown["total"] == pytest.approx(jobs["usd_spot"].sum() + fixed.sum())
    assert tasks["usd_on_demand"].sum() == pytest.approx(jobs["usd_on_demand"].sum())
    assert set(tasks["task"]) >= {"isr", "measure", "visitSummary", "(visit job overhead)"}
    assert visits["usd_spot"].sum() == pytest.approx(jobs.dropna(subset=["visit"])["usd_spot"].sum())
    detectors = pd.read_csv(costs / "detectors.csv")
    assert len(detectors) == 6 * DETECTORS
    quanta = tasks.dropna(subset=["detector"])
    assert detectors["usd_on_demand"].sum() == pytest.approx(quanta["usd_on_demand"].sum())
    assert list(visits["visit"]) == VISITS
    others = pd.read_csv(costs / "instance_types.csv")
    assert set(others["instance_type"]) == {
        "c6i.xlarge",
        "c6i.2xlarge",
        "c6i.4xlarge",
        "m6i.xlarge",
        "r6i.large",
    }
    assert others["largest_job_fits"].all()
    assert others.set_index("instance_type")["configured"].to_dict()["c6i.2xlarge"]
    advice = json.loads((costs / "recommendation.json").read_text())
    cheapest = others[others["largest_job_fits"]].sort_values("usd_per_visit_spot").iloc[0]
    assert advice["cheapest"]["instance_type"] == cheapest["instance_type"]
    assert advice["configured"]["instance_type"] == "c6i.2xlarge"


def test_provenance_bundle_holds_every_item(demo_run):
    """The bundle the default run ends with: each item of the publishing list, checksums that verify."""
    bundle = demo_run / "results/provenance/lsst-on-aws-bundle.tar.gz"
    with tarfile.open(bundle) as tar:
        names = set(tar.getnames())
        read = {name: tar.extractfile(name).read() for name in names}
    assert names >= {
        "MANIFEST.json",
        "config.yaml",
        "visits-table.tsv",
        "stack-manifest.json",
        "workflow-packages.json",
        "inputs.sha256",
        "outputs.sha256",
        "summary/visits.csv",
        "costs/timings.parquet",
        "costs/timings.csv",
        "costs/jobs.csv",
        "costs/breakdown.csv",
        "costs/detectors.csv",
        "costs/estimate.json",
        "report.zip",
    }
    manifest = json.loads(read["MANIFEST.json"])
    # the workflow's source as it ran, one member: the user's config with its SSH key's path redacted
    source = {name for name in names if name.startswith("source/")}
    assert {"source/Snakefile", "source/rules/process.smk", "source/envs/workflow.lock"} <= source
    assert set(manifest["members"]) == names - source - {"MANIFEST.json"} | {"source/"}
    assert manifest["redacted"] == ["source/config/config.yaml"]
    assert 'ssh_key_file: "<redacted>"' in read["source/config/config.yaml"].decode()
    assert manifest["workflow"] == {"commit": "unknown", "dirty": None}  # the test's copy is not a git tree
    config = yaml.safe_load(read["config.yaml"])
    assert config["cluster"]["compute_instance_type"] == "c6i.2xlarge"  # resolved: defaults filled in
    assert config["processing"]["detection_threshold"] == 5.0
    assert config["remote"]["head_node"]["ssh_key_file"] == "<redacted>"
    assert json.loads(read["workflow-packages.json"])["snakemake"] == "9.27.1"
    assert json.loads(read["stack-manifest.json"])["packages"]["lsst-daf-butler"] == "30.2026.4300"
    assert read["visits-table.tsv"] == (demo_run / "config/visits.tsv").read_bytes()
    # checksums of inputs (config, raws) and outputs (Butler files, exports); each verifies
    inputs, outputs = (
        {p: d for d, p in (ln.split("  ", 1) for ln in read[n].decode().splitlines())}
        for n in ("inputs.sha256", "outputs.sha256")
    )
    assert {"config/visits.tsv", "results/simulated/raw/1/raw_1_S00.fits"} <= set(inputs)
    assert "results/visits/1/sources.parquet" in outputs
    assert any(p.startswith("results/butler/repo/") for p in outputs)
    assert not any(p.startswith("results/provenance/") or p.endswith(".sqlite3") for p in outputs)
    assert not set(inputs) & set(outputs)
    # sha256sum itself verifies them against the run's files
    (demo_run / "outputs.sha256").write_bytes(read["outputs.sha256"])
    check = subprocess.run(
        ["sha256sum", "--quiet", "-c", "outputs.sha256"], cwd=demo_run, capture_output=True
    )
    assert check.returncode == 0, check.stdout[-2000:]
    with zipfile.ZipFile(io.BytesIO(read["report.zip"])) as report:
        assert any(name.endswith("report.html") for name in report.namelist())
        assert any(name.endswith("gantt.png") for name in report.namelist())


def test_estimate_from_the_runs_own_measurements(demo_run):
    """budget.measured_timings replaces Rubin's per-CCD figures by the run's own."""
    target = "results/costs/estimate.json"
    measured = snakemake(
        demo_run,
        "--cores",
        "1",
        "--config",
        "budget={'measured_timings': 'results/costs/timings.parquet'}",
        "--",
        target,
    )
    assert measured.returncode == 0, measured.stderr[-3000:]
    record = json.loads((demo_run / target).read_text())
    assert record["basis"].endswith("core-s per CCD measured in results/costs/timings.parquet")
    timings = pd.read_parquet(demo_run / "results/costs/timings.parquet")
    visit_jobs = timings[(timings["kind"] == "job") & (timings["rule"] == "process_batch")]
    assert record["core_s_high"] == pytest.approx(24 * visit_jobs["wall_s"].max() / DETECTORS)
    # back to the default basis, so the later plan tests start from a complete run
    assert snakemake(demo_run, "--cores", "1", "--", target).returncode == 0


def test_second_run_has_nothing_to_do(demo_run):
    result = snakemake(demo_run, "--dry-run")
    assert result.returncode == 0, result.stderr[-2000:]
    assert planned_jobs(result) == {}


def test_new_threshold_reprocesses_visits_only(demo_run):
    result = snakemake(demo_run, "--dry-run", "--config", "processing={'detection_threshold': 6.0}")
    assert result.returncode == 0, result.stderr[-2000:]
    assert planned_jobs(result) == {"process_batch": 6, **AGGREGATES}


def test_renamed_cluster_reprices_nothing(demo_run):
    """Only the bundle, which records the whole configuration, is redone; the costs depend on prices."""
    result = snakemake(demo_run, "--dry-run", "--config", "cluster={'name': 'renamed'}")
    assert result.returncode == 0, result.stderr[-2000:]
    assert planned_jobs(result) == {"bundle": 1, "all": 1}


def test_batches_of_visits_reprocess_in_fewer_jobs(demo_run):
    result = snakemake(demo_run, "--dry-run", "--config", "visits_per_job=4")
    assert result.returncode == 0, result.stderr[-2000:]
    # runs of 4 visits of the table: 1-4 and 5-6, simulated (the same frames) and processed
    assert planned_jobs(result) == {"simulate_raws": 2, "process_batch": 2, **AGGREGATES}
    assert "results/batches/1-4" in result.stdout and "results/batches/5-6" in result.stdout


def test_added_visit_runs_only_its_own_jobs(demo_run):
    table = (demo_run / "config/visits.tsv").read_text()
    (demo_run / "config/visits_plus.tsv").write_text(table + "7\tr\t0.95\t-5\t5\n")
    result = snakemake(demo_run, "--dry-run", "--config", "visits=config/visits_plus.tsv")
    assert result.returncode == 0, result.stderr[-2000:]
    # its own jobs, the aggregates, and a new estimate (one more visit to pay for)
    own = {"simulate_raws": 1, "process_batch": 1, "estimate_cost": 1}
    assert planned_jobs(result) == {**own, **AGGREGATES}
    assert "results/batches/7-7/batch.json" in result.stdout


def test_changed_visit_reruns_only_its_batch(demo_run):
    table = pd.read_csv(demo_run / "config/visits.tsv", sep="\t", comment="#")
    table.loc[table["visit"] == 3, "seeing_arcsec"] = 1.25  # visit 3 with another seeing
    table.to_csv(demo_run / "config/visits_changed.tsv", sep="\t", index=False)
    result = snakemake(demo_run, "--dry-run", "--config", "visits=config/visits_changed.tsv")
    assert result.returncode == 0, result.stderr[-2000:]
    assert planned_jobs(result) == {"simulate_raws": 1, "process_batch": 1, **AGGREGATES}
    assert "results/batches/3-3/batch.json" in result.stdout


def test_changed_raw_replaces_the_repositorys_copy(demo_run, tmp_path):
    """A raw file whose pixels changed since its ingest (a re-simulated visit) is ingested again, in
    place of the repository's own copy, which a copy-mode ingest would otherwise go on processing;
    unchanged files are kept. On a copy of the run's repository.
    """
    repo = tmp_path / "repo"
    shutil.copytree(demo_run / "results/butler/repo", repo)
    raws = tmp_path / "raw"
    shutil.copytree(demo_run / "results/simulated/raw/2", raws)
    changed = sorted(raws.glob("*.fits"))[1]
    with fits.open(changed, mode="update") as hdul:
        hdul[0].data[10, 10] += 100
    result = stack_python(
        demo_run,
        f"""
import json
from pathlib import Path
from lsst.daf.butler import Butler
from lsst_on_aws_tasks.simcam_ingest import ingest_raws
record = ingest_raws("{repo}", sorted(Path("{raws}").glob("*.fits")))
b = Butler.from_config("{repo}")
ref = b.find_dataset("raw", instrument="SimCam", exposure=2, detector=1, collections="SimCam/raw/all")
same = b.getURI(ref).read() == Path("{changed}").read_bytes()
print(json.dumps([record["ingested"], record["already_present"], same]))
""",
    )
    assert result == [1, 3, True]


def test_new_stack_tag_reinstalls_and_reprocesses(demo_run):
    lock = demo_run / "envs/stack-pip/30.2026.4300.lock"
    shutil.copy(lock, demo_run / "envs/stack-pip/test-tag.lock")
    result = snakemake(demo_run, "--dry-run", "--config", "stack={'tag': 'test-tag'}")
    assert result.returncode == 0, result.stderr[-2000:]
    jobs = planned_jobs(result)
    assert jobs["install_stack"] == 1
    assert jobs["process_batch"] == 6
    assert "simulate_raws" not in jobs
    assert "simulate_calibs" not in jobs
    assert "resources/stack/test-tag/manifest.json" in result.stdout


# a RUN's datasets, and the files under its folder in the datastore that no dataset of it names
# (but for the middleware's temporaries, NAME.tmp.EXT: a write it makes there, then renames, which a
# kill can interrupt; never registered, never read)
RUN_FILES = """
import json, os
from pathlib import Path
from lsst.daf.butler import Butler
b = Butler.from_config("results/butler/repo")
run = RUN
refs = list(b.registry.queryDatasets(..., collections=run))
named = {b.getURI(ref).ospath for ref in refs}
folder = Path("results/butler/repo", run).resolve()
on_disk = {os.path.join(d, f) for d, _, files in os.walk(folder) for f in files if ".tmp." not in f}
counts = {}
for ref in refs:
    counts[ref.datasetType.name] = counts.get(ref.datasetType.name, 0) + 1
print(json.dumps({"counts": counts, "unregistered": sorted(on_disk - named),
                  "missing": sorted(p for p in named if not os.path.exists(p))}))
"""


def run_files(workdir, run: str) -> dict:
    """:data:`RUN_FILES` for ``run``: its dataset counts by type, unregistered and missing files."""
    return stack_python(workdir, RUN_FILES.replace("RUN\n", f"{run!r}\n", 1))


def test_quanta_write_their_files_in_place_and_register_each(demo_run):
    """A visit's quanta write through a quantum-backed Butler and register their datasets when the
    visit ends: every file of the visit's RUN is a registered dataset's, in place (not copied), and
    every registered file exists.
    """
    found = run_files(demo_run, f"{CHAIN}/2")
    assert found["unregistered"] == [] and found["missing"] == [], found
    for name in ("post_isr_image", "single_visit_source", "isr_metadata", "measure_metadata", "isr_log"):
        assert found["counts"][name] == DETECTORS, (name, found["counts"])
    assert found["counts"]["visit_summary"] == 1


def test_killed_batch_registers_what_it_wrote_and_resumes(demo_run, tmp_path):
    """A batch's process killed (SIGKILL: no clean-up) part-way through a visit, then run again.

    The quanta's files are registered when the visit ends, so the killed process registered none of
    them. The rerun finds the RUN it left (the same fingerprint), registers the files already
    written, skips the quanta they complete and runs the others: one of each dataset, every file
    registered, none twice. Runs the rule's own command into a RUN prefix and a folder of its own,
    so the shared run is left as it was.
    """
    python = demo_run / "resources" / "stack" / STACK_TAG / "venv" / "bin" / "python"
    run = "test/killed/2"
    command = [
        str(python), "-m", "lsst_on_aws_tasks.process_visit", "results/butler/repo",
        "--output-prefix", "test/killed", "--visits", "2", "--instrument", "SimCam",
        "--inputs", "SimCam/defaults", "--pipeline", "pipelines/single-visit.yaml",
        "--raw-dir", "results/simulated/raw", "--visits-dir", str(tmp_path / "visits"),
        "--record", str(tmp_path / "batch.json"),
    ]  # fmt: skip
    proc = subprocess.Popen(
        command, cwd=demo_run, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    try:
        for line in proc.stdout:
            # the first measurement done: the ISR of the detectors before it too
            if "Execution of task 'measure'" in line and " took " in line:
                break
    finally:
        proc.kill()
        proc.wait()
    assert proc.returncode == -9
    left = run_files(demo_run, run)
    # nothing of the quanta's registered (the init-outputs are: configs, the software versions)
    assert not {"post_isr_image", "isr_metadata"} & set(left["counts"]), left["counts"]
    written = [path for path in left["unregistered"] if path.endswith(".json") and "_metadata" in path]
    assert written and any("post_isr_image" in path for path in left["unregistered"]), left

    rerun = subprocess.run(command, cwd=demo_run, capture_output=True, text=True, check=False)
    assert rerun.returncode == 0, rerun.stdout[-3000:]
    report = json.loads((tmp_path / "visits/2/report.json").read_text())
    statuses = [q["status"] for q in report["quantaReports"]]
    assert report["resumed"] is True and len(statuses) == 2 * DETECTORS + 1
    # the quanta whose metadata (written last) the killed attempt left are skipped; the rest ran
    assert statuses.count("skipped") == len(written), (written, report["quantaReports"])
    assert statuses.count("success") == len(statuses) - len(written)
    assert json.loads((tmp_path / "visits/2/summary.json").read_text())["status"] == "ok"
    final = run_files(demo_run, run)
    assert final["unregistered"] == [] and final["missing"] == [], final
    for name in ("post_isr_image", "single_visit_source", "detector_summary", "isr_metadata"):
        assert final["counts"][name] == DETECTORS, (name, final["counts"])
    assert final["counts"]["visit_summary"] == 1


def test_failed_visit_is_recorded_and_leaves_nothing_that_blocks_its_rerun(demo_run):
    """A visit whose data fails half-way is recorded as failed, then rerun cleanly.

    An impossible detection threshold makes every ``measure`` quantum fail
    (``NoSourcesError``, an ``AlgorithmError``) after ``isr`` has written its
    images into the visit's RUN collection. That is a data failure: the job
    succeeds, and the visit's summary says "failed" and why. The rerun with
    the normal configuration must then succeed over that debris, up to the visits' summary and
    the output chain (what reads the Butler; the timings, costs, report and bundle after them are
    the run's own tests). Runs last: it leaves those aggregates to be remade.
    """
    failed = snakemake(
        demo_run,
        "--cores",
        "2",
        "--config",
        "processing={'detection_threshold': 1e9}",
        "--",
        "results/batches/1-1/batch.json",
    )
    assert failed.returncode == 0, failed.stderr[-3000:]
    summary = json.loads((demo_run / "results/visits/1/summary.json").read_text())
    assert summary["status"] == "failed"
    assert summary["reason"].startswith(
        "measure (detector 0, visit 1): NoSourcesError: no source above 1000000000.0 sigma"
    )
    assert [q["task"] for q in summary["failed_quanta"]] == ["measure"] * DETECTORS
    assert pd.read_parquet(demo_run / "results/visits/1/sources.parquet").empty
    assert "1 of 6 visits could not be processed" in failed.stderr
    debris = stack_python(
        demo_run,
        f"""
import json
from lsst.daf.butler import Butler
b = Butler.from_config("results/butler/repo")
print(json.dumps(len(b.query_datasets("post_isr_image", collections="{CHAIN}/1", explain=False))))
""",
    )
    assert debris == DETECTORS  # the failed attempt left its ISR images behind

    targets = ["results/summary/visits.csv", "results/butler/chain.json"]
    rerun = snakemake(demo_run, "--cores", "2", "--", *targets)
    assert rerun.returncode == 0, rerun.stderr[-3000:]
    counts = stack_python(
        demo_run,
        f"""
import json
from lsst.daf.butler import Butler
b = Butler.from_config("results/butler/repo")
out = {{n: len(b.query_datasets(n, collections="{CHAIN}", where="visit = 1", instrument="SimCam",
                                   explain=False))
       for n in ("post_isr_image", "single_visit_source", "visit_summary")}}
out["chain"] = list(b.collections.get_info("{CHAIN}").children)
print(json.dumps(out))
""",
    )
    assert counts["post_isr_image"] == DETECTORS
    assert counts["single_visit_source"] == DETECTORS
    assert counts["visit_summary"] == 1
    assert counts["chain"] == [f"{CHAIN}/{v}" for v in VISITS] + ["SimCam/defaults"]
    assert planned_jobs(snakemake(demo_run, "--dry-run", "--", *targets)) == {}
