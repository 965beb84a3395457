"""Simulated LSST-like raw data for the embedded default.

The simulator writes what a real camera and calibration pipeline would hand
to the LSST stack: raw frames with a bias level, a serial overscan strip,
a fixed bias pattern, a flat-field pattern (vignetting and pixel response),
sky, stars and a few galaxies with a Moffat PSF, Poisson and read noise;
plus master bias and flat frames, and a reference catalogue from which the
objects were placed. The truth (every object's pixel position and flux on
every detector) is written next to the raws so tests can score the
pipeline's measurements.

Everything is seeded: a visit's frames depend only on the seed, the
reference catalogue and that visit's row of the visit table, so adding a
visit never changes another visit's pixels.
"""

from __future__ import annotations

import json
import math
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import galsim
import numpy as np
import pandas as pd
from astropy.io import fits
from astropy.time import Time
from astropy.wcs import WCS
from scipy.signal import fftconvolve

from lsst_on_aws_tasks import simcam

# Stream ids that keep the random streams of different products independent.
_REFCAT, _BIAS, _FLAT, _VISIT = 1, 2, 3, 4
# How many input frames the master calibrations average (noise ~ 1/sqrt(n)).
N_BIAS_FRAMES = 50
N_FLAT_FRAMES = 20
OVERSAMPLE = 5  # sub-pixel sampling when rendering a PSF, enough for 3 px FWHM


@dataclass(frozen=True)
class Visit:
    """One row of the visit table, as the simulator needs it."""

    visit: int
    band: str
    seeing_arcsec: float
    ra_offset_arcsec: float = 0.0
    dec_offset_arcsec: float = 0.0

    @property
    def boresight(self) -> tuple[float, float]:
        """Pointing (RA, Dec) in degrees, the field centre plus the dither."""
        dec = simcam.FIELD_DEC + self.dec_offset_arcsec / 3600.0
        ra = simcam.FIELD_RA + self.ra_offset_arcsec / 3600.0 / math.cos(math.radians(dec))
        return ra, dec


def moffat_alpha(fwhm: float, beta: float = simcam.MOFFAT_BETA) -> float:
    """Moffat core width alpha for a given FWHM (same units)."""
    return fwhm / (2.0 * math.sqrt(2.0 ** (1.0 / beta) - 1.0))


def moffat_stamp(
    dx: float, dy: float, fwhm_pix: float, radius: int, beta: float = simcam.MOFFAT_BETA
) -> np.ndarray:
    """A unit-flux Moffat PSF integrated over pixels on a (2r+1)^2 stamp.

    ``dx, dy`` is the sub-pixel offset of the centre from the stamp's centre
    pixel. The profile is integrated by ``OVERSAMPLE``^2 sub-samples per pixel
    and normalised analytically, so flux beyond the stamp is lost, as it
    would be on a real detector edge.
    """
    alpha = moffat_alpha(fwhm_pix, beta)
    n = 2 * radius + 1
    sub = (np.arange(n * OVERSAMPLE) + 0.5) / OVERSAMPLE - 0.5 - radius
    xx, yy = np.meshgrid(sub - dx, sub - dy)
    prof = (beta - 1.0) / (math.pi * alpha**2) * (1.0 + (xx**2 + yy**2) / alpha**2) ** (-beta)
    return prof.reshape(n, OVERSAMPLE, n, OVERSAMPLE).mean(axis=(1, 3))


def moments_fwhm(fwhm_pix: float) -> float:
    """The FWHM (pixels) of the simulated PSF as the pipeline defines FWHM: from adaptive second moments.

    GalSim's HSM on the noiseless, centred, pixel-integrated Moffat stamp:
    ``2 sqrt(2 ln 2) det(M)^(1/4)``. For beta 3.5 it is about 12 % above the
    profile's core FWHM (the visit's seeing): the wings widen the moments.
    """
    fwhm_per_sigma = 2.0 * math.sqrt(2.0 * math.log(2.0))  # of a Gaussian
    stamp = moffat_stamp(0.0, 0.0, fwhm_pix, math.ceil(8.0 * fwhm_pix))
    sigma = galsim.hsm.FindAdaptiveMom(galsim.Image(stamp), guess_sig=fwhm_pix / fwhm_per_sigma).moments_sigma
    return fwhm_per_sigma * sigma


def make_reference_catalog(
    seed: int, n_stars: int, n_galaxies: int, dets: list[simcam.Detector] | None = None
) -> pd.DataFrame:
    """Stars and galaxies over the focal plane of ``dets`` (SimCam's default camera when None) and
    its dither margin.

    Star magnitudes follow a rising number count (``dN/dm ~ 10^(0.3 m)``)
    between r = 16 and 23.5, colours g - r between 0.2 and 1.4; galaxies are
    exponential discs with half-light radii of 0.4-1.2 arcsec.
    """
    rng = np.random.default_rng([seed, _REFCAT])
    half = simcam.half_extent(dets or simcam.detectors()) * simcam.PIXEL_SCALE / 3600.0 + 60.0 / 3600.0
    n = n_stars + n_galaxies
    dec = simcam.FIELD_DEC + rng.uniform(-half, half, n)
    ra = simcam.FIELD_RA + rng.uniform(-half, half, n) / np.cos(np.radians(dec))
    # inverse-CDF sampling of 10^(0.3 m) on [16, 23.5]
    lo, hi, k = 16.0, 23.5, 0.3 * math.log(10)
    u = rng.uniform(size=n)
    r = np.log(np.exp(k * lo) + u * (np.exp(k * hi) - np.exp(k * lo))) / k
    g = r + rng.uniform(0.2, 1.4, n)
    is_star = np.arange(n) < n_stars
    return pd.DataFrame(
        {
            "id": np.arange(1, n + 1),
            "ra": ra,
            "dec": dec,
            "g": g,
            "r": r,
            "is_star": is_star,
            "half_light_arcsec": np.where(is_star, 0.0, rng.uniform(0.4, 1.2, n)),
            "ellipticity": np.where(is_star, 0.0, rng.uniform(0.0, 0.5, n)),
            "position_angle_deg": np.where(is_star, 0.0, rng.uniform(0.0, 180.0, n)),
        }
    )


def detector_wcs(det: simcam.Detector, boresight: tuple[float, float]) -> WCS:
    """TAN WCS of a detector's imaging area for a pointing (north up, east left)."""
    w = WCS(naxis=2)
    w.wcs.ctype = ["RA---TAN", "DEC--TAN"]
    w.wcs.crval = list(boresight)
    # focal-plane (0, 0) is the boresight; FITS pixels are 1-based
    w.wcs.crpix = [1.0 - det.x0, 1.0 - det.y0]
    scale = simcam.PIXEL_SCALE / 3600.0
    w.wcs.cd = [[-scale, 0.0], [0.0, scale]]
    return w


def bias_pattern(seed: int, det: simcam.Detector) -> np.ndarray:
    """Fixed bias structure (ADU, above the overscan level): a column ramp and fixed noise."""
    rng = np.random.default_rng([seed, _BIAS, det.id])
    ramp = np.linspace(0.0, 3.0, det.nx)[np.newaxis, :]
    return (ramp + rng.normal(0.0, 2.0, (det.ny, det.nx))).astype(np.float64)


def flat_pattern(seed: int, det: simcam.Detector, band: str, radius: float) -> np.ndarray:
    """Relative response: radial vignetting over the focal plane (10% at ``radius`` pixels from the
    boresight on each axis) and 1% pixel response.
    """
    rng = np.random.default_rng([seed, _FLAT, det.id, simcam.BANDS.index(band)])
    yy, xx = np.mgrid[0 : det.ny, 0 : det.nx]
    r2 = ((xx + det.x0) ** 2 + (yy + det.y0) ** 2) / (2 * radius**2)
    vignette = 1.0 - 0.1 * r2
    return vignette * rng.normal(1.0, 0.01, vignette.shape)


def _base_header(det: simcam.Detector) -> fits.Header:
    h = fits.Header()
    h["INSTRUME"] = (simcam.NAME, "instrument")
    h["TELESCOP"] = ("SimTel", "telescope")
    h["DETECTOR"] = (det.name, "detector name")
    h["CCDNUM"] = (det.id, "detector id")
    h["BUNIT"] = "adu"
    return h


def vignetting_radius(dets: list[simcam.Detector]) -> float:
    """The flat field's scale: half the focal plane's side, to the middle of the gap beyond it."""
    return simcam.half_extent(dets) + simcam.GAP / 2


def write_master_calibs(seed: int, outdir: Path, dets: list[simcam.Detector] | None = None) -> list[Path]:
    """Write master bias (per detector of ``dets``, SimCam's default camera when None) and flat (per
    band and detector) frames.

    They are trimmed, overscan-corrected images, as a calibration pipeline
    produces them; their noise is that of an average of ``N_BIAS_FRAMES``
    biases or ``N_FLAT_FRAMES`` flats.
    """
    outdir.mkdir(parents=True, exist_ok=True)
    paths = []
    noise_rng = np.random.default_rng([seed, _BIAS, 99])
    rn_adu = simcam.READ_NOISE / simcam.GAIN
    dets = dets or simcam.detectors()
    vignetting = vignetting_radius(dets)
    for det in dets:
        bias = bias_pattern(seed, det) + noise_rng.normal(
            0.0, rn_adu / math.sqrt(N_BIAS_FRAMES), (det.ny, det.nx)
        )
        h = _base_header(det)
        h["OBSTYPE"] = ("bias", "master calibration type")
        h["NCOMBINE"] = N_BIAS_FRAMES
        path = outdir / f"bias_{det.name}.fits"
        fits.PrimaryHDU(bias.astype(np.float32), h).writeto(path, overwrite=True)
        paths.append(path)
        for band in simcam.BANDS:
            # flats of ~20000 e- per pixel: 0.7% photon noise each, averaged
            flat = flat_pattern(seed, det, band, vignetting)
            flat = flat * (1.0 + noise_rng.normal(0.0, 0.007 / math.sqrt(N_FLAT_FRAMES), flat.shape))
            h = _base_header(det)
            h["OBSTYPE"] = ("flat", "master calibration type")
            h["FILTER"] = (simcam.physical_filter(band), "physical filter")
            h["NCOMBINE"] = N_FLAT_FRAMES
            path = outdir / f"flat_{band}_{det.name}.fits"
            fits.PrimaryHDU(flat.astype(np.float32), h).writeto(path, overwrite=True)
            paths.append(path)
    return paths


def _render_galaxy(
    flux: float, hlr_pix: float, ell: float, pa_deg: float, fwhm_pix: float, radius: int, dx: float, dy: float
) -> np.ndarray:
    """An exponential disc convolved with the PSF, normalised to ``flux`` on the stamp."""
    n = 2 * radius + 1
    yy, xx = np.mgrid[0:n, 0:n] - radius
    xx = xx - dx
    yy = yy - dy
    pa = math.radians(pa_deg)
    xr = xx * math.cos(pa) + yy * math.sin(pa)
    yr = -xx * math.sin(pa) + yy * math.cos(pa)
    q = 1.0 - ell
    rscale = hlr_pix / 1.678  # half-light radius of an exponential is 1.678 scale lengths
    disc = np.exp(-np.sqrt(xr**2 + (yr / q) ** 2) / rscale)
    psf = moffat_stamp(0.0, 0.0, fwhm_pix, radius)
    img = np.clip(fftconvolve(disc, psf, mode="same"), 0.0, None)
    return flux * img / img.sum()


def simulate_visit(
    visit: Visit, refcat: pd.DataFrame, seed: int, outdir: Path, dets: list[simcam.Detector] | None = None
) -> pd.DataFrame:
    """Write a visit's raw frames (one per detector of ``dets``, SimCam's default camera when None)
    and return its truth table.

    The truth table has one row per reference object whose centre falls on
    a detector's imaging area: its 0-based pixel position on the trimmed
    image, its flux in electrons, and the visit's PSF FWHM: the moments FWHM
    (:func:`moments_fwhm`) and the Moffat profile's own (the seeing).
    """
    outdir.mkdir(parents=True, exist_ok=True)
    band = visit.band
    boresight = visit.boresight
    fwhm_pix = visit.seeing_arcsec / simcam.PIXEL_SCALE
    true_fwhm_arcsec = moments_fwhm(fwhm_pix) * simcam.PIXEL_SCALE
    zp = simcam.ZEROPOINT[band]
    sky_e = 10 ** (-0.4 * (simcam.SKY_MAG[band] - zp)) * simcam.PIXEL_SCALE**2 * simcam.EXPTIME
    mjd = simcam.exposure_mjd(visit.visit)
    start = Time(mjd, format="mjd", scale="tai")
    truths = []
    dets = dets or simcam.detectors()
    vignetting = vignetting_radius(dets)
    for det in dets:
        rng = np.random.default_rng([seed, _VISIT, visit.visit, det.id])
        wcs = detector_wcs(det, boresight)
        x, y = wcs.all_world2pix(refcat["ra"].to_numpy(), refcat["dec"].to_numpy(), 0)
        flux = 10 ** (-0.4 * (refcat[band].to_numpy() - zp)) * simcam.EXPTIME
        margin = 30
        near = (x > -margin) & (x < det.nx + margin) & (y > -margin) & (y < det.ny + margin)
        max_radius = 63  # stamp half-size cap (pixels)
        pad = margin + max_radius + 1  # a padded canvas, so stamps never need clipping
        canvas = np.zeros((det.ny + 2 * pad, det.nx + 2 * pad))
        for i in np.flatnonzero(near):
            xi, yi = round(x[i]), round(y[i])
            dx, dy = x[i] - xi, y[i] - yi
            if refcat["is_star"].iat[i]:
                radius = math.ceil(min(6.0 * fwhm_pix, max_radius))
                stamp = flux[i] * moffat_stamp(dx, dy, fwhm_pix, radius)
            else:
                hlr = refcat["half_light_arcsec"].iat[i] / simcam.PIXEL_SCALE
                radius = math.ceil(min(6.0 * hlr + 4.0 * fwhm_pix, max_radius))
                stamp = _render_galaxy(
                    flux[i],
                    hlr,
                    refcat["ellipticity"].iat[i],
                    refcat["position_angle_deg"].iat[i],
                    fwhm_pix,
                    radius,
                    dx,
                    dy,
                )
            cy, cx = yi + pad, xi + pad
            canvas[cy - radius : cy + radius + 1, cx - radius : cx + radius + 1] += stamp
        signal_e = (canvas[pad:-pad, pad:-pad] + sky_e) * flat_pattern(seed, det, band, vignetting)
        electrons = rng.poisson(signal_e).astype(np.float64)
        row_offset = rng.normal(0.0, 1.0, (det.ny, 1)).cumsum(axis=0) * 0.05  # slow drift
        rn_adu = simcam.READ_NOISE / simcam.GAIN
        data = electrons / simcam.GAIN + simcam.BIAS_LEVEL + bias_pattern(seed, det) + row_offset
        overscan = simcam.BIAS_LEVEL + row_offset + np.zeros((det.ny, simcam.OVERSCAN))
        raw = np.hstack([data, overscan]) + rng.normal(0.0, rn_adu, (det.ny, det.nx + simcam.OVERSCAN))
        raw = np.clip(np.round(raw), 0, simcam.SATURATION).astype(np.uint16)

        h = _base_header(det)
        h["OBSTYPE"] = ("science", "observation type")
        h["EXPNUM"] = (visit.visit, "exposure number")
        h["OBSID"] = (f"{simcam.NAME}_{simcam.DAY_OBS}_{visit.visit:06d}", "observation id")
        h["DAYOBS"] = (simcam.DAY_OBS, "observing day")
        h["FILTER"] = (simcam.physical_filter(band), "physical filter")
        h["DATE-OBS"] = (start.isot, "exposure start (TAI)")
        h["TIMESYS"] = "TAI"
        h["MJD-OBS"] = (mjd, "exposure start (MJD, TAI)")
        h["EXPTIME"] = (simcam.EXPTIME, "exposure time (s)")
        h["TELRA"] = (boresight[0], "boresight RA (deg)")
        h["TELDEC"] = (boresight[1], "boresight Dec (deg)")
        h["OBJECT"] = ("simfield", "target")
        h["GAIN"] = (simcam.GAIN, "e-/ADU")
        h["RDNOISE"] = (simcam.READ_NOISE, "read noise (e-)")
        h["SATURATE"] = (simcam.SATURATION, "saturation (ADU)")
        h["DATASEC"] = (det.datasec, "imaging area")
        h["BIASSEC"] = (det.biassec, "serial overscan")
        # the WCS of the imaging area; the overscan lies beyond NAXIS1 of it
        h.update(wcs.to_header())
        fits.PrimaryHDU(raw, h).writeto(outdir / f"raw_{visit.visit}_{det.name}.fits", overwrite=True)

        on = (x >= 0) & (x <= det.nx - 1) & (y >= 0) & (y <= det.ny - 1)
        truths.append(
            pd.DataFrame(
                {
                    "visit": visit.visit,
                    "detector": det.id,
                    "id": refcat["id"].to_numpy()[on],
                    "is_star": refcat["is_star"].to_numpy()[on],
                    "x": x[on],
                    "y": y[on],
                    "ra": refcat["ra"].to_numpy()[on],
                    "dec": refcat["dec"].to_numpy()[on],
                    "mag": refcat[band].to_numpy()[on],
                    "flux_e": flux[on],
                    "band": band,
                    "psf_fwhm_arcsec": true_fwhm_arcsec,
                    "psf_moffat_fwhm_arcsec": visit.seeing_arcsec,
                    "sky_e": sky_e,
                }
            )
        )
    return pd.concat(truths, ignore_index=True)


def simulate_batch(
    visits: list[Visit],
    refcat: pd.DataFrame,
    seed: int,
    raw_dir: Path,
    truth_dir: Path,
    record: Path,
    dets: list[simcam.Detector] | None = None,
) -> Iterator[tuple[int, int]]:
    """Simulate visits one after another: ``raw_dir/<visit>/`` and ``truth_dir/<visit>.parquet`` each,
    then ``record``, written last, listing them; yields each visit and its count of objects.

    What an earlier attempt left of a visit (a frame of a detector since removed, a partial folder)
    goes first, and ``record`` before anything else: it exists only once every visit is complete.
    """
    record.unlink(missing_ok=True)
    truth_dir.mkdir(parents=True, exist_ok=True)
    for visit in visits:
        folder = raw_dir / str(visit.visit)
        shutil.rmtree(folder, ignore_errors=True)
        truth = simulate_visit(visit, refcat, seed, folder, dets)
        truth.to_parquet(truth_dir / f"{visit.visit}.parquet", index=False)
        yield visit.visit, len(truth)
    record.parent.mkdir(parents=True, exist_ok=True)
    record.write_text(json.dumps({"visits": [v.visit for v in visits], "raw_dir": str(raw_dir)}) + "\n")
