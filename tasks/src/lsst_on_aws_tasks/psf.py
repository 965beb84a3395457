"""The PSF of a detector: its size and shape from the adaptive moments of stars on the stellar
locus (GalSim's HSM, as the LSST stack measures PSF shapes), and PSF-weighted photometry with it.
"""

from __future__ import annotations

import math
import warnings
from typing import TYPE_CHECKING

import galsim
import numpy as np
from astropy.table import Table
from astropy.utils.exceptions import AstropyUserWarning
from photutils.psf import CircularGaussianPRF, PSFPhotometry

if TYPE_CHECKING:
    from .measure import MeasureParams


FWHM_PER_SIGMA = 2.0 * math.sqrt(2.0 * math.log(2.0))


def adaptive_moments(stamp: np.ndarray, bad: np.ndarray, x0: float, y0: float, sigma_guess: float):
    """GalSim HSM adaptive moments of the object at (x0, y0) on ``stamp`` (0-based); None if they fail."""
    result = galsim.hsm.FindAdaptiveMom(
        galsim.Image(np.ascontiguousarray(stamp, dtype=np.float64)),
        badpix=galsim.Image(np.ascontiguousarray(bad, dtype=np.int32)),
        guess_sig=sigma_guess,
        guess_centroid=galsim.PositionD(x0 + 1.0, y0 + 1.0),  # GalSim's pixels count from 1
        strict=False,
    )
    ok = result.moments_status == 0 and np.isfinite(result.moments_sigma) and result.moments_sigma > 0
    return result if ok else None


def stellar_locus(sizes: np.ndarray, tolerance: float) -> np.ndarray:
    """Which of ``sizes`` lie on the stellar locus: within ``tolerance`` (fractional) of its centre.

    Stars all have the PSF's size; galaxies and unflagged blends are larger.
    The locus is the largest group of sizes within the tolerance of one of
    them (the smaller group on a tie: stars are the smallest objects), then
    re-centred on the group's median.
    """
    sizes = np.asarray(sizes, dtype=np.float64)
    best = np.zeros(len(sizes), bool)
    for size in np.sort(sizes):
        members = np.abs(sizes / size - 1.0) <= tolerance
        if members.sum() > best.sum():
            best = members
    if not best.any():
        return best
    centre = float(np.median(sizes[best]))
    return np.abs(sizes / centre - 1.0) <= tolerance


def measure_psf(
    image: np.ndarray,
    bad: np.ndarray,
    catalog: Table,
    fwhm_guess: float,
    params: MeasureParams,
) -> tuple[dict, np.ndarray]:
    """The PSF's size and shape from bright, isolated stars.

    Candidates have S/N of at least ``psf_min_snr``, no saturated pixel, no
    deblended sibling and no neighbour within ``psf_isolation_fwhm`` FWHM.
    Each one's adaptive (Gaussian-weighted, iterated) second moments are
    measured with GalSim's HSM, the algorithm the LSST stack uses for PSF
    shapes. Its size is the determinant radius ``sigma = det(M)^(1/4)``,
    its FWHM ``2 sqrt(2 ln 2) sigma`` (Rubin's visit-summary definition;
    for a Moffat profile of beta 3.5 it is about 12 % above the profile's
    core FWHM), its ellipticity ``1 - b/a``. The stars used are the
    candidates on the stellar locus (:func:`stellar_locus`); the PSF FWHM
    and ellipticity are their medians.

    Returns the PSF summary and a boolean array flagging the stars used.
    """
    n = len(catalog)
    used = np.zeros(n, bool)
    x = np.asarray(catalog["x"])
    y = np.asarray(catalog["y"])
    snr = np.asarray(catalog["snr_segment"])
    # nearest neighbour distance, for isolation
    d2 = (x[:, None] - x[None, :]) ** 2 + (y[:, None] - y[None, :]) ** 2
    np.fill_diagonal(d2, np.inf)
    nearest = np.sqrt(d2.min(axis=1)) if n > 1 else np.full(n, np.inf)
    half = math.ceil(3.0 * fwhm_guess)
    inside = (x > half) & (x < image.shape[1] - half - 1) & (y > half) & (y < image.shape[0] - half - 1)
    candidates = np.flatnonzero(
        (snr >= params.psf_min_snr)
        & ~np.asarray(catalog["flag_saturated"])
        & ~np.asarray(catalog["flag_deblended"])
        & (nearest > params.psf_isolation_fwhm * fwhm_guess)
        & inside
    )
    candidates = candidates[np.argsort(-snr[candidates])][: params.psf_max_stars]
    fwhms, ells, measured = [], [], []
    for i in candidates:
        xi, yi = round(x[i]), round(y[i])
        sl = (slice(yi - half, yi + half + 1), slice(xi - half, xi + half + 1))
        moments = adaptive_moments(
            np.where(bad[sl], 0.0, image[sl]),
            bad[sl],
            x[i] - xi + half,
            y[i] - yi + half,
            fwhm_guess / FWHM_PER_SIGMA,
        )
        if moments is None:
            continue
        g = moments.observed_shape.g  # (a - b) / (a + b)
        fwhms.append(FWHM_PER_SIGMA * moments.moments_sigma)
        ells.append(2.0 * g / (1.0 + g))
        measured.append(i)
    locus = stellar_locus(np.asarray(fwhms), params.psf_size_tolerance)
    if not locus.any():
        return {"psf_fwhm_pix": float("nan"), "psf_ellipticity": float("nan"), "n_psf_stars": 0}, used
    used[np.asarray(measured)[locus]] = True
    return (
        {
            "psf_fwhm_pix": float(np.median(np.asarray(fwhms)[locus])),
            "psf_ellipticity": float(np.median(np.asarray(ells)[locus])),
            "n_psf_stars": int(locus.sum()),
        },
        used,
    )


def psf_photometry(
    sub: np.ndarray, error: np.ndarray, bad: np.ndarray, table: Table, fwhm: float
) -> tuple[np.ndarray, np.ndarray, float]:
    """PSF-weighted fluxes and errors at the sources' centroids, and the aperture correction applied to them.

    photutils' ``PSFPhotometry`` fits a circular Gaussian of the measured
    FWHM, centre and width fixed, so only the flux is fitted: the weighted
    least-squares (matched-filter) flux, its error from the variance plane.
    A Gaussian holds less of a real star's light than the aperture does, so
    the fluxes are scaled by the median ratio of aperture to PSF flux over
    the PSF stars (as the LSST stack's aperture correction does); 1 when
    there are none.
    """
    model = CircularGaussianPRF(fwhm=fwhm)
    model.x_0.fixed = model.y_0.fixed = model.fwhm.fixed = True
    size = 2 * int(1.5 * fwhm) + 1
    photometry = PSFPhotometry(model, (size, size), aperture_radius=fwhm)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", AstropyUserWarning)
        result = photometry(
            sub,
            mask=bad,
            error=np.where(bad | ~(error > 0), 1.0, error),
            init_params=Table({"x": table["x"], "y": table["y"]}),
        )
    flux = np.asarray(result["flux_fit"], dtype=np.float64)
    flux_err = np.asarray(result["flux_err"], dtype=np.float64)
    stars = np.asarray(table["is_psf_star"], bool) & (flux > 0)
    ratios = np.asarray(table["flux_aperture"], dtype=np.float64)[stars] / flux[stars]
    correction = float(np.median(ratios)) if len(ratios) else 1.0
    return flux * correction, flux_err * correction, correction
