"""The workflow's summary tables: one row per visit, and scores against simulation truth.

Inputs are plain files the workflow already has: each visit's
``summary.json`` (exported from the Butler), its ``job.json`` (where, when and
how long its processing ran, recorded by the processing job), the visit's
source catalogue and, for simulated data, its truth catalogue.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
from scipy.spatial import cKDTree

# Snakemake benchmark columns -> summary columns
BENCHMARK_COLUMNS = {"s": "wall_s", "cpu_time": "cpu_s", "max_rss": "max_rss_mb"}
# a visit's job.json: where and when, and its processing's own wall, CPU and peak memory
JOB_COLUMNS = ["visit", "batch", "slurm_job_id", "host", "start", "end", "wall_s", "cpu_s", "max_rss_mb"]
# visit summary keys -> summary columns
SUMMARY_COLUMNS = {
    "n_detectors": "n_detectors",
    "n_sources": "n_sources",
    "n_psf_stars": "n_psf_stars",
    "psf_fwhm_arcsec": "psf_fwhm_arcsec",
    "psf_fwhm_pix": "psf_fwhm_pix",
    "psf_ellipticity": "psf_ellipticity",
    "sky_level_e": "sky_level",
    "sky_noise_e": "sky_noise",
}
# added when the visits were calibrated against a reference catalogue (DECam against Gaia)
CALIBRATION_COLUMNS = [
    "zero_point",
    "zero_point_err",
    "zero_point_n",
    "zero_point_approximate",
    "depth_mag_5sigma",
    "astrom_n_matched",
    "astrom_offset_arcsec",
    "astrom_scatter_arcsec",
]


def read_benchmark(path: Path | str, columns: dict[str, str] = BENCHMARK_COLUMNS) -> dict:
    """Wall time, CPU time and peak RSS of one Snakemake benchmark file (mean over repeats).

    ``columns`` maps the file's columns to the names returned (NaN when absent).
    A peak RSS of 0 is NaN too: Snakemake samples memory while the job runs
    and writes 0 when the job ended before its first sample (a ``cp`` of a
    few milliseconds), which means "not measured", not "no memory".
    """
    table = pd.read_csv(path, sep="\t")
    out = {}
    for column, name in columns.items():
        values = pd.to_numeric(table[column], errors="coerce") if column in table else pd.Series(dtype=float)
        if column == "max_rss":
            values = values.where(values > 0)
        out[name] = float(values.mean()) if values.notna().any() else float("nan")
    return out


def visit_table(summary_paths: list[str], bands: dict[int, str]) -> pd.DataFrame:
    """One row per visit: outcome, sources, PSF and sky; zero point and astrometry when calibrated.

    A visit that failed has ``status`` "failed", the ``reason``, and no
    measurements (NaN). :func:`add_job_accounting` adds where it ran and its
    resource use.
    """
    rows = []
    summaries = [json.loads(Path(path).read_text()) for path in summary_paths]
    calibrated = any("zero_point" in summary for summary in summaries)
    for summary in summaries:
        visit = int(summary["visit"])
        row = {
            "visit": visit,
            "band": bands.get(visit, ""),
            "status": summary.get("status", "ok"),
            "reason": summary.get("reason", ""),
            "run": summary["run"],
        }
        for column, key in SUMMARY_COLUMNS.items():
            value = summary.get(key)
            row[column] = float("nan") if value is None else value
        if calibrated:
            for column in CALIBRATION_COLUMNS:
                value = summary.get(column)
                row[column] = float("nan") if value is None else value
        rows.append(row)
    return pd.DataFrame(rows).sort_values("visit").reset_index(drop=True)


def failed_visits(table: pd.DataFrame) -> pd.DataFrame:
    """The visits of a visit table that could not be processed, with the reason."""
    return table.loc[table["status"] != "ok", ["visit", "band", "reason"]]


def failed_visit_reasons(summary_paths: list[str]) -> dict[int, str]:
    """Visit -> reason, for the visits whose existing ``summary.json`` records a failure."""
    out = {}
    for path in summary_paths:
        if Path(path).exists():
            summary = json.loads(Path(path).read_text())
            if summary.get("status", "ok") != "ok":
                out[int(summary["visit"])] = summary.get("reason", "")
    return out


def read_jobs(job_paths: list[str]) -> pd.DataFrame:
    """Where, when and how long each visit's processing ran.

    Columns `JOB_COLUMNS`: ``visit``, its processing ``batch``,
    ``slurm_job_id`` (empty if local), ``host``, ``start`` and ``end`` (UTC
    timestamps), and the visit's own ``wall_s``, ``cpu_s`` and the process's
    ``max_rss_mb`` (NaN in an older record). ``job_paths`` are the visits'
    ``job.json`` files, ``results/visits/<visit>/job.json``.
    """
    jobs = pd.DataFrame([read_job_record(p) for p in job_paths], columns=JOB_COLUMNS)
    for column in ("start", "end"):
        jobs[column] = pd.to_datetime(jobs[column], utc=True)
    return jobs


def read_job_record(path: Path | str) -> dict:
    """A visit's ``job.json`` (visit from the folder name) as a row of `JOB_COLUMNS`."""
    path = Path(path)
    record = json.loads(path.read_text())
    return {
        "visit": int(path.parent.name),
        "batch": str(record.get("batch", "")),
        "slurm_job_id": str(record.get("slurm_job_id", "")),
        "host": record.get("host", ""),
        "start": pd.to_datetime(record.get("start"), utc=True),
        "end": pd.to_datetime(record.get("end"), utc=True),
        **{key: float(record.get(key, float("nan"))) for key in ("wall_s", "cpu_s", "max_rss_mb")},
    }


def add_job_accounting(table: pd.DataFrame, jobs: pd.DataFrame, accounting: pd.DataFrame) -> pd.DataFrame:
    """The visit table with where each visit ran, its resource use and, for Slurm jobs, their accounting.

    ``accounting`` is :func:`lsst_on_aws.accounting.slurm.job_accounting`'s table; visits
    processed locally, or on a cluster without accounting, keep empty Slurm
    columns. The Slurm columns are the whole job's: visits processed in one
    batch share them.
    """
    out = table.merge(jobs, on="visit", how="left").merge(accounting, on="slurm_job_id", how="left")
    if {"wall_s", "cpu_s"} <= set(out.columns):
        out["cpu_efficiency"] = out["cpu_s"] / out["wall_s"]
    return out


def score_visit(
    sources: pd.DataFrame,
    truth: pd.DataFrame,
    match_radius_pix: float = 1.5,
    bright_mag: float = 21.5,
    edge_pix: float = 10.0,
    nx: int = 512,
    ny: int = 512,
) -> dict:
    """Score a visit's detections against the simulation's truth.

    Parameters
    ----------
    sources
        Detected sources with ``detector, x, y, flux_aperture, is_psf_star``.
    truth
        Truth objects with ``detector, x, y, flux_e, mag, is_star, psf_fwhm_arcsec``.
    match_radius_pix
        A truth star counts as found if a detection lies within this radius.
    bright_mag
        Completeness is computed for stars brighter than this.
    edge_pix
        Stars this close to a detector edge are left out.

    Returns
    -------
    dict
        Completeness of bright stars, centroid offsets of matched bright stars
        (median and RMS, pixels), the median ratio of measured aperture flux
        to true flux for the PSF stars, the same for the PSF-weighted flux of
        every matched, unblended, unsaturated bright star, and the number of
        stars in each.
    """
    found, offsets_x, offsets_y, ratios, psf_ratios = [], [], [], [], []
    for det, det_truth in truth.groupby("detector"):
        det_sources = sources[sources["detector"] == det]
        stars = det_truth[
            det_truth["is_star"]
            & (det_truth["mag"] < bright_mag)
            & det_truth["x"].between(edge_pix, nx - 1 - edge_pix)
            & det_truth["y"].between(edge_pix, ny - 1 - edge_pix)
        ]
        if det_sources.empty:
            found.extend([False] * len(stars))
            continue
        tree = cKDTree(det_sources[["x", "y"]].to_numpy())
        dist, idx = tree.query(stars[["x", "y"]].to_numpy(), distance_upper_bound=match_radius_pix)
        ok = np.isfinite(dist)
        found.extend(ok.tolist())
        matched = det_sources.iloc[idx[ok]]
        offsets_x.extend(matched["x"].to_numpy() - stars["x"].to_numpy()[ok])
        offsets_y.extend(matched["y"].to_numpy() - stars["y"].to_numpy()[ok])
        psf = matched["is_psf_star"].to_numpy().astype(bool)
        ratios.extend(matched["flux_aperture"].to_numpy()[psf] / stars["flux_e"].to_numpy()[ok][psf])
        if "flux_psf" in matched:  # every matched bright star, not only the PSF stars it was corrected on
            clean = ~matched["flag_deblended"].to_numpy().astype(bool) & ~matched[
                "flag_saturated"
            ].to_numpy().astype(bool)
            psf_ratios.extend(matched["flux_psf"].to_numpy()[clean] / stars["flux_e"].to_numpy()[ok][clean])
    dx, dy = np.asarray(offsets_x), np.asarray(offsets_y)
    radial = np.hypot(dx, dy)
    return {
        "n_bright_stars": len(found),
        "completeness_bright": float(np.mean(found)) if found else float("nan"),
        "centroid_median_offset_pix": float(np.median(radial)) if radial.size else float("nan"),
        "centroid_rms_pix": float(np.sqrt(np.mean(dx**2 + dy**2) / 2)) if radial.size else float("nan"),
        "centroid_bias_x_pix": float(np.median(dx)) if dx.size else float("nan"),
        "centroid_bias_y_pix": float(np.median(dy)) if dy.size else float("nan"),
        "n_photometry_stars": len(ratios),
        "flux_ratio_median": float(np.median(ratios)) if ratios else float("nan"),
        "n_psf_photometry_stars": len(psf_ratios),
        "psf_flux_ratio_median": float(np.median(psf_ratios)) if psf_ratios else float("nan"),
        "true_psf_fwhm_arcsec": float(truth["psf_fwhm_arcsec"].iloc[0]),
    }


def truth_check_table(
    source_paths: list[str], truth_paths: list[str], summaries: pd.DataFrame, **kwargs
) -> pd.DataFrame:
    """Per-visit scores against truth, with measured vs simulated PSF FWHM.

    Visits whose ``status`` in ``summaries`` is not "ok" are left out.
    """
    rows = []
    processed = set(summaries.loc[summaries["status"] == "ok", "visit"])
    for src_path, truth_path in zip(source_paths, truth_paths, strict=True):
        truth = pd.read_parquet(truth_path)
        visit = int(truth["visit"].iloc[0])
        if visit not in processed:
            continue  # a failed visit has nothing to score; the visit table says why
        sources = pd.read_parquet(src_path)
        row = {"visit": visit, **score_visit(sources, truth, **kwargs)}
        measured = summaries.loc[summaries["visit"] == visit, "psf_fwhm_arcsec"]
        row["psf_fwhm_arcsec"] = float(measured.iloc[0]) if len(measured) else float("nan")
        row["psf_fwhm_ratio"] = row["psf_fwhm_arcsec"] / row["true_psf_fwhm_arcsec"]
        rows.append(row)
    if not rows:
        return pd.DataFrame(columns=["visit"])
    return pd.DataFrame(rows).sort_values("visit").reset_index(drop=True)
