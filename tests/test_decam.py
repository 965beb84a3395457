"""DECam InstCal headers -> the Butler's observation records, on the 9 real DECam exposures.

The expectations are independent of the code under test: file names (which
encode band, CCD and date), the survey's pointing of the patch (RA 186.744,
Dec +25.462, from the data's README), and DECam's nominal pixel scale
(0.263"/px) for the size of each CCD's footprint.
"""

from __future__ import annotations

import io
import json
import math
import subprocess
import warnings
from pathlib import Path

import boto3
import numpy as np
import pandas as pd
import pytest
from astropy.coordinates import SkyCoord
from astropy.io import fits
from astropy.table import Table, vstack
from astropy.time import Time
from astropy.wcs import WCS
from conftest import REPO_ROOT, aws_env, copy_workflow, snakemake, upload_tree

from lsst_on_aws_tasks import calibrate, decam

DATA = REPO_ROOT.parent / "shared" / "data" / "decam-cutouts"
IMAGES = sorted((DATA / "images_decam").rglob("*_ooi_*.fits"))
PATCH = SkyCoord(186.744, 25.462, unit="deg")

pytestmark = pytest.mark.skipif(not IMAGES, reason=f"the DECam test data is not at {DATA}")


def test_ccd_numbers_are_decams():
    assert len(decam.CCD_NAMES) == 62
    assert (decam.CCD_NAMES[0], decam.CCD_NAMES[24], decam.CCD_NAMES[31], decam.CCD_NAMES[61]) == (
        "S29",
        "S1",
        "N1",
        "N31",
    )


def test_there_are_nine_exposures_of_three_planes():
    assert len(IMAGES) == 9
    for image in IMAGES:
        assert decam.plane_of(image) == "ooi"
        for plane in ("oow", "ood"):
            assert decam.sibling(image, plane).exists()


@pytest.mark.parametrize("path", IMAGES, ids=lambda p: p.name)
def test_observation_from_real_headers(path: Path):
    obs = decam.read_observation(path)
    # c4d_<yymmdd>_<hhmmss>_ooi_<band>_ls9.<CCD>.fits
    _, yymmdd, _, _, band, rest = path.name.split("_")
    assert obs.band == band and obs.physical_filter.startswith(f"{band} DECam")
    assert obs.detector_name == rest.split(".")[1]
    assert decam.CCD_NAMES[obs.detector - 1] == obs.detector_name
    assert obs.begin.utc.isot[2:10].replace("-", "") == yymmdd  # the file's UTC date
    assert 20150101 < obs.day_obs <= int("20" + yymmdd)  # the night began on that date or the day before
    assert 50 < obs.exposure_time_s < 250
    with fits.open(path) as hdul:
        ny, nx = hdul[1].data.shape
    # the footprint holds the patch's centre and has the CCD's size at DECam's 0.263"/px
    corners = SkyCoord(obs.corners_deg[:, 0], obs.corners_deg[:, 1], unit="deg")
    widths = [corners[0].separation(corners[1]).arcsec, corners[3].separation(corners[2]).arcsec]
    heights = [corners[1].separation(corners[2]).arcsec, corners[0].separation(corners[3]).arcsec]
    assert np.allclose(widths, nx * 0.263, rtol=0.02) and np.allclose(heights, ny * 0.263, rtol=0.02)
    offsets = corners.spherical_offsets_to(PATCH)
    assert inside(np.column_stack([o.arcsec for o in offsets]))


def inside(vectors: np.ndarray) -> bool:
    """Whether the origin is inside the quadrilateral whose corners are (-) ``vectors`` (any winding)."""
    corners = -vectors
    crosses = []
    for i in range(4):
        edge, to_origin = corners[(i + 1) % 4] - corners[i], -corners[i]
        crosses.append(edge[0] * to_origin[1] - edge[1] * to_origin[0])
    return all(c > 0 for c in crosses) or all(c < 0 for c in crosses)


def test_exposures_are_distinct_visits():
    exposures = [decam.read_observation(p).exposure for p in IMAGES]
    assert len(set(exposures)) == 9


@pytest.mark.parametrize(
    "change, expected",
    [
        ({"INSTRUME": "HSC"}, "INSTRUME is 'HSC', not 'DECam'"),
        ({"PROCTYPE": "Raw"}, "PROCTYPE is 'Raw', not 'InstCal'"),
        ({"FILTER": "N964 DECam c0008"}, "FILTER 'N964 DECam c0008' is not one of DECam's bands"),
    ],
)
def test_foreign_or_unknown_headers_are_named(tmp_path, change, expected):
    with fits.open(IMAGES[0]) as hdul:
        for key, value in change.items():
            hdul[0].header[key] = value
        path = tmp_path / IMAGES[0].name
        hdul.writeto(path)
    with pytest.raises(decam.DecamHeaderError, match=expected) as err:
        decam.read_observation(path)
    assert str(path) in str(err.value)


@pytest.mark.filterwarnings("ignore:Error validating header")
def test_truncated_file_is_named(tmp_path):
    path = tmp_path / IMAGES[0].name
    path.write_bytes(IMAGES[0].read_bytes()[:20000])
    with pytest.raises(decam.DecamHeaderError, match="not a readable FITS file"):
        decam.read_observation(path)


INGEST = """
import json, shutil, sys
import json
import subprocess
from pathlib import Path
from lsst.daf.butler import Butler, Config
from lsst_on_aws_tasks.ingest import IngestError
from lsst_on_aws_tasks.decam_ingest import RAW_RUN, ingest_decam, register_decam

repo, data, broken = sys.argv[1], Path(sys.argv[2]), Path(sys.argv[3])
Butler.makeRepo(repo, config=Config(sys.argv[4]))
register_decam(repo)
images = sorted(data.rglob("*_ooi_*.fits"))
# a visit whose inverse-variance plane is missing: refused, nothing written
lonely = broken / images[0].name
shutil.copy(images[0], lonely)
shutil.copy(str(images[0]).replace("_ooi_", "_ood_"), broken)
try:
    ingest_decam(repo, [lonely])
    refused = ""
except IngestError as err:
    refused = str(err)
butler = Butler.from_config(repo)
after_refusal = len(list(butler.registry.queryDimensionRecords("exposure", instrument="DECam")))
first = ingest_decam(repo, images)
again = ingest_decam(repo, images)
butler = Butler.from_config(repo)
where = "visit_detector_region.region OVERLAPS POINT(186.744, 25.462)"
at_patch = butler.registry.queryDataIds(["visit", "detector"], instrument="DECam", where=where)
image = butler.get("instcal_image", instrument="DECam", exposure=630780, detector=33, collections=RAW_RUN)
print(json.dumps({
    "refused": refused, "after_refusal": after_refusal, "first": first, "again": again,
    "at_patch": sorted((d["visit"], d["detector"]) for d in at_patch),
    "filters": sorted(r.name for r in butler.registry.queryDimensionRecords("physical_filter")),
    "image_shape": list(image.shape),
}))
"""


def test_ingest_takes_each_ccds_three_planes_together(tmp_path, demo_run):
    """The 9 exposures into a real Butler: 27 files, regions over the patch, a missing plane refused whole."""
    python = demo_run / "resources" / "stack" / "30.2026.4300" / "venv" / "bin" / "python"
    (tmp_path / "broken").mkdir()
    args = [
        str(tmp_path / "repo"),
        str(DATA),
        str(tmp_path / "broken"),
        str(REPO_ROOT / "config/butler-seed.yaml"),
    ]
    out = subprocess.run([str(python), "-c", INGEST, *args], capture_output=True, text=True, check=True)
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert "its inverse-variance plane c4d_" in result["refused"] and "_oow_" in result["refused"]
    assert result["after_refusal"] == 0
    assert result["first"]["ingested"] == 27 and len(result["first"]["exposures"]) == 9
    assert result["again"] == result["first"] | {"ingested": 0, "already_present": 27}
    # every CCD's footprint, from its TPV WCS through sphgeom, covers the patch's centre
    assert len(result["at_patch"]) == 9
    assert [f.split()[0] for f in result["filters"]] == ["g", "r", "z"]
    assert result["image_shape"] == [251, 245]


PROCESS = """
import json, sys
from pathlib import Path
from lsst.daf.butler import Butler, Config
from lsst_on_aws_tasks.repo import register_dataset_types
from lsst_on_aws_tasks.decam_ingest import ingest_decam, ingest_refcat, register_decam

repo, data, seed, pipeline = sys.argv[1:5]
Butler.makeRepo(repo, config=Config(seed))
register_decam(repo)
ingest_decam(repo, sorted(Path(data).rglob("*_ooi_*.fits")))
ingest_refcat(repo, sorted((Path(data) / "gaia").glob("*.fits")))
register_dataset_types(repo, pipeline)
"""
READ = """
import json, sys
from lsst.daf.butler import Butler
butler = Butler.from_config(sys.argv[1], collections="DECam/runs/test")
stats = {}
for ref in butler.query_datasets("visit_summary_stats", instrument="DECam"):
    stats[str(ref.dataId["visit"])] = butler.get(ref)
for ref in butler.query_datasets("single_visit_source", instrument="DECam"):
    sources = butler.get(ref)
    stars = sources[sources["is_psf_star"]]
    stats[str(ref.dataId["visit"])]["psf_stars"] = [[float(s["ra"]), float(s["dec"])] for s in stars]
print(json.dumps(stats))
"""


def adaptive_moments(stamp: np.ndarray, x0: float, y0: float) -> tuple[float, float, float]:
    """Centroid and FWHM (pixels) of a star from Gaussian-weighted second moments, iterated to the match."""
    yy, xx = np.indices(stamp.shape, dtype=float)
    sigma = 2.0
    for _ in range(100):
        w = np.exp(-((xx - x0) ** 2 + (yy - y0) ** 2) / (2 * sigma**2)) * stamp
        x0, y0 = (w * xx).sum() / w.sum(), (w * yy).sum() / w.sum()
        m2 = ((w * (xx - x0) ** 2).sum() + (w * (yy - y0) ** 2).sum()) / (2 * w.sum())
        width = math.sqrt(m2 * sigma**2 / (sigma**2 - m2))  # the star's own sigma, the weight divided out
        if abs(width - sigma) < 1e-5:
            break
        sigma = width
    return x0, y0, 2.0 * math.sqrt(2.0 * math.log(2.0)) * width


def gaia_stars_in_pixels(image: Path) -> dict:
    """The patch's Gaia stars measured directly in ``image``'s pixels, independently of the pipeline.

    Each star is found at its catalogue position moved to the exposure's epoch
    by its proper motion, through the CCD's WCS. Returned: their positions
    at that epoch; the median FWHM (arcsec) from adaptive moments; the median offset (arcsec) of the
    moments' centroids from the catalogue positions; and the zero point
    (magnitude of 1 e-/s) from circular apertures of 3 FWHM, at most 14.5
    pixels (sky from an annulus beyond 15, ADU times the mean gain) against the stars' DECam magnitudes
    from Gaia (the Legacy Surveys' transformation, as the pipeline uses).
    """
    gaia = vstack([Table.read(path) for path in sorted((DATA / "gaia").glob("*.fits"))])
    with fits.open(image) as hdul, warnings.catch_warnings():
        warnings.simplefilter("ignore")
        data, header, wcs = hdul[1].data.astype(float), hdul[1].header, WCS(hdul[1].header)
        begin, exptime = Time(hdul[0].header["DATE-OBS"]), float(hdul[0].header["EXPTIME"])
        band = hdul[0].header["FILTER"].split()[0]
    years = begin.jyear + exptime / 2 / (365.25 * 86400) - 2015.5
    dec = gaia["dec"] + gaia["pmdec"] * years / 3.6e6
    ra = gaia["ra"] + gaia["pmra"] * years / 3.6e6 / np.cos(np.radians(gaia["dec"]))
    mags = calibrate.reference_magnitude(gaia, band)
    gain = 0.5 * (header["GAINA"] + header["GAINB"])
    scale = math.sqrt(abs(np.linalg.det(wcs.pixel_scale_matrix))) * 3600
    xs, ys = wcs.all_world2pix(ra, dec, 0)
    # the stars lie 20 pixels or more from the cutouts' edges: stamps of 39 x 39, sky from r > 15
    half, fwhms, offsets, zero_points, positions = 19, [], [], [], []
    grid = np.hypot(*np.meshgrid(np.arange(-half, half + 1), np.arange(-half, half + 1)))
    for x, y, star_ra, star_dec, mag in zip(xs, ys, ra, dec, mags, strict=True):
        xi, yi = round(x), round(y)
        if not (half <= xi < data.shape[1] - half and half <= yi < data.shape[0] - half):
            continue
        stamp = data[yi - half : yi + half + 1, xi - half : xi + half + 1].copy()
        stamp -= np.median(stamp[grid > 15])
        cx, cy, fwhm = adaptive_moments(stamp, half + x - xi, half + y - yi)
        fwhms.append(fwhm * scale)
        positions.append((float(star_ra), float(star_dec)))
        found = SkyCoord(*wcs.all_pix2world(xi - half + cx, yi - half + cy, 0), unit="deg")
        offsets.append(found.separation(SkyCoord(star_ra, star_dec, unit="deg")).arcsec)
        radius = min(3 * fwhm, 14.5)
        inside = np.hypot(
            *np.meshgrid(np.arange(-half, half + 1) - (cx - half), np.arange(-half, half + 1) - (cy - half))
        )
        flux_e = stamp[inside <= radius].sum() * gain
        zero_points.append(mag + 2.5 * math.log10(flux_e / exptime))
    return {
        "fwhm_arcsec": float(np.median(fwhms)),
        "offset_arcsec": float(np.median(offsets)),
        "zero_point": float(np.median(zero_points)),
        "n_stars": len(fwhms),
        "positions": positions,
    }


def test_pipetask_measures_each_visit_from_the_pixels(tmp_path, demo_run):
    """The DECam pipeline through the real pipetask: each visit's PSF, astrometry and zero point.

    The expectations are computed here, independently, from the pixels of the
    patch's three Gaia stars (:func:`gaia_stars_in_pixels`). The pipeline's
    PSF stars must all be Gaia stars (the patch's bright galaxy is as bright
    and must be left out), and its FWHM, from GalSim's adaptive moments,
    must agree with this test's own moments within 3 % (measured: 0.6 % at
    most). Offsets must agree within 0.05 arcsec (measured: 0.03 at most),
    zero points within 0.07 mag (measured: 0.05 at most, on the visit with the
    most elongated PSF, where the two apertures differ most).
    """
    stack = demo_run / "resources" / "stack" / "30.2026.4300"
    python = stack / "venv" / "bin" / "python"
    repo, pipeline = tmp_path / "repo", REPO_ROOT / "pipelines/decam-single-visit.yaml"
    seed = REPO_ROOT / "config/butler-seed.yaml"
    subprocess.run([str(python), "-c", PROCESS, str(repo), str(DATA), str(seed), str(pipeline)], check=True)
    run = subprocess.run(
        f"source {stack}/activate.sh && pipetask run -b {repo} -i DECam/defaults --output-run DECam/runs/test"
        f" -p {pipeline} -d \"instrument='DECam'\"",
        shell=True,
        executable="/bin/bash",
        capture_output=True,
        text=True,
    )
    assert run.returncode == 0, run.stderr[-3000:]
    out = subprocess.run([str(python), "-c", READ, str(repo)], capture_output=True, text=True, check=True)
    stats = json.loads(out.stdout.strip().splitlines()[-1])
    assert len(stats) == 9
    for image in IMAGES:
        visit = stats[str(decam.read_observation(image).exposure)]
        expected = gaia_stars_in_pixels(image)
        assert expected["n_stars"] == 3
        assert visit["n_sources"] >= 5 and visit["n_psf_stars"] == len(visit["psf_stars"]) >= 1
        gaia = SkyCoord(expected["positions"], unit="deg")
        for star in visit["psf_stars"]:
            assert SkyCoord(*star, unit="deg").separation(gaia).min().arcsec < 0.2, (image.name, star)
        assert visit["psf_fwhm_arcsec"] == pytest.approx(expected["fwhm_arcsec"], rel=0.03), image.name
        # the astrometric check finds the three stars where the pixels put them
        assert visit["astrom_n_matched"] == 3, image.name
        assert visit["astrom_offset_arcsec"] == pytest.approx(expected["offset_arcsec"], abs=0.05), image.name
        # the zero point from the pipeline's photometry against the one from the pixels
        assert visit["zero_point_approximate"] is True  # three stars, fewer than five
        assert visit["zero_point"] == pytest.approx(expected["zero_point"], abs=0.07), image.name
        # single 60-210 s DECam exposures reach 22-24 mag (5 sigma, point sources)
        assert 22.0 < visit["depth_mag_5sigma"] < 24.5, image.name


def edited(path: Path, edit) -> bytes:
    """The bytes of a copy of FITS file ``path`` after ``edit(hdul)``."""
    with fits.open(path) as hdul:
        edit(hdul)
        out = io.BytesIO()
        hdul.writeto(out)
    return out.getvalue()


def blank_sky(hdul) -> None:
    """The CCD's pixels replaced by flat sky with the inverse-variance plane's noise: nothing to detect."""
    sky = float(np.median(hdul[1].data))
    noise = 1.0 / math.sqrt(float(np.median(fits.getdata(decam.sibling(Path(hdul.filename()), "oow"), 1))))
    rng = np.random.default_rng(5)
    hdul[1].data = (sky + rng.normal(0.0, noise, hdul[1].data.shape)).astype(hdul[1].data.dtype)


def another_instrument(hdul) -> None:
    hdul[0].header["INSTRUME"] = "Mosaic3"


@pytest.mark.workflow
def test_workflow_processes_the_decam_visits_from_s3_and_reports_bad_files(tmp_path, moto, demo_run):
    """``snakemake --configfile config/decam.yaml`` with the InstCal files and the Gaia catalogue in S3.

    S3 is moto's server on 127.0.0.1 (see test_s3_data for where its
    emulation stops). The visits run in two batches. Four visits' files are
    spoiled on their way up: an image
    truncated, an image of blank sky (noise only), an image relabelled as
    another instrument's, a data-quality plane left out. The InstCal files
    and the catalogue are staged once. The five good visits are processed and
    summarised with their PSF, sky and sources; each bad one is a failed visit
    whose reason names its file and what is wrong; Snakemake succeeds and says
    so.
    """
    s3 = boto3.client("s3")
    s3.create_bucket(Bucket="survey")
    originals = {path.name: path for path in (DATA / "images_decam").rglob("*.fits")}
    truncated, blank, foreign, no_mask = (image.name for image in IMAGES[:4])
    spoiled = {
        truncated: originals[truncated].read_bytes()[: 2880 * 30],  # headers whole, pixels cut short
        blank: edited(originals[blank], blank_sky),
        foreign: edited(originals[foreign], another_instrument),
        no_mask.replace("_ooi_", "_ood_"): None,
    }
    visit_of = {
        name: decam.read_observation(originals[name]).exposure for name in (truncated, blank, foreign)
    }
    visit_of[no_mask] = decam.read_observation(originals[no_mask]).exposure
    images = upload_tree(s3, DATA / "images_decam", "survey", "decam/images", spoiled)
    upload_tree(s3, DATA / "gaia", "survey", "decam/gaia")
    s3.put_object(Bucket="survey", Key="decam/images/README.txt", Body=b"not staged")
    workdir = copy_workflow(tmp_path / "workflow")
    overrides = tmp_path / "data.yaml"
    settings = {"source": "s3", "path": "s3://survey/decam/images", "refcat": "s3://survey/decam/gaia"}
    # in two batches (5 + 4 visits): bad visits do not stop their batch
    overrides.write_text(json.dumps({"data": settings, "visits_per_job": 5}))

    # the visits, their summary and the chain (the timings, costs, report and bundle after them
    # are the embedded default's tests')
    targets = ["results/summary/visits.csv", "results/butler/chain.json"]
    args = ("--cores", "2", "--configfile", "config/decam.yaml", str(overrides), "--", *targets)
    result = snakemake(workdir, *args, env=aws_env(moto))

    assert result.returncode == 0, result.stderr[-4000:]
    staged = workdir / "resources/data/instcal"
    staged_files = {p.name: p for p in staged.rglob("*.fits")}
    assert len(staged_files) == images == 26  # not the README, not the left-out plane
    gaia = sorted(p.name for p in (DATA / "gaia").glob("*.fits"))
    assert sorted(p.name for p in (workdir / "resources/data/refcat").glob("*.fits")) == gaia
    table = pd.read_csv(workdir / "results/summary/visits.csv").set_index("visit")
    assert len(table) == 9
    good = table[table["status"] == "ok"]
    assert len(good) == 5 and (good["n_sources"] >= 5).all()
    assert good["psf_fwhm_arcsec"].between(0.7, 2.0).all()
    expected = {
        truncated: "not a readable FITS file",
        blank: "NoSourcesError: no source above 5.0 sigma",
        foreign: "INSTRUME is 'Mosaic3', not 'DECam'",
        no_mask: f"its data-quality plane {no_mask.replace('_ooi_', '_ood_')} is missing",
    }
    for name, what in expected.items():
        row = table.loc[visit_of[name]]
        assert row["status"] == "failed", name
        where = str(staged_files[name].relative_to(workdir))  # the file as staged
        assert where in row["reason"] and what in row["reason"], row["reason"]
    assert "4 of 9 visits could not be processed" in result.stderr
    chain = json.loads((workdir / "results/butler/chain.json").read_text())
    assert chain["children"][-1] == "DECam/defaults" and len(chain["children"]) == 6
