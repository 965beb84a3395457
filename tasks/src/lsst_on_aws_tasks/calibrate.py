"""Astrometric check and photometric zero point of a detector against Gaia.

Reference stars are Gaia DR2 sources moved from Gaia's epoch (J2015.5) to the
exposure's by their proper motions (parallax is neglected: below 1 mas for
the faint stars a survey image matches). Detected sources are matched to the
nearest reference star within a radius.

Astrometry: the matched count, the median offset (source minus reference,
RA cos(Dec) and Dec, arcsec) and its size, and the scatter (RMS of the
offsets about that median).

Photometry: each reference star's magnitude in the image's band comes from
Gaia's G and BP-RP colour through the DESI Legacy Imaging Surveys' Gaia DR2
to DECam transformations (R. Zhou, 2020, used by legacypipe's
``gaia_to_decam``): ``m_band = G + sum_k c_k (BP-RP)^k``, the colour clipped
to [-0.6, 4.1] and a star without a colour given BP-RP = 1.4. The zero point
is the median over matched, unsaturated, unblended stars of
``m_ref + 2.5 log10(flux / exptime)`` (flux in electrons, so the zero point is
the magnitude of 1 e-/s), its error the spread of those values over sqrt(n)
(or, for one star, its flux error). Fewer than ``min_stars`` matches make it
``approximate``. Bands without a transformation get no zero point.
"""

from __future__ import annotations

import math

import numpy as np
from astropy.coordinates import SkyCoord
from astropy.table import Table

GAIA_EPOCH = 2015.5
MAS_PER_DEG = 3.6e6
# DECam band: coefficients c_0.. of m_band - G in powers of (BP - RP)
GAIA_TO_DECAM = {
    "g": [-0.1178631039, 0.3650113495, 0.5608615360, -0.2850687702, -1.0243473939, 1.4378375491,
          0.0679401731, -1.1713172509, 0.9107811975, -0.3374324004, 0.0683946390, -0.0073089582,
          0.0003230170],
    "r": [0.1139078673, -0.2868955307, 0.0013196434, 0.1029151074, 0.1196710702, -0.3729031390,
          0.1859874242, 0.1370162451, -0.1808580848, 0.0803219195, -0.0180218196, 0.0020584707,
          -0.0000953486],
    "i": [0.3396481660, -0.6491867119, -0.3330769819, 0.4381097294, 0.5752125977, -1.4746570523,
          1.2979140762, -0.6371018151, 0.1948940062, -0.0382055596, 0.0046907449, -0.0003296841,
          0.0000101480],
    "z": [0.4811198057, -0.9990015041, 0.1403990019, 0.2150988888, -0.2917655866, 0.1326831887,
          -0.0259205004, 0.0018548776],
}  # fmt: skip
COLOUR_RANGE = (-0.6, 4.1)
DEFAULT_COLOUR = 1.4


def at_epoch(ref: Table, epoch_jyear: float) -> tuple[np.ndarray, np.ndarray]:
    """RA, Dec (degrees) of the reference stars at ``epoch_jyear``, moved by their proper motions."""
    years = epoch_jyear - GAIA_EPOCH
    pmra = np.nan_to_num(np.asarray(ref["pmra"], dtype=float))  # mas/yr, includes cos(Dec)
    pmdec = np.nan_to_num(np.asarray(ref["pmdec"], dtype=float))
    dec0 = np.asarray(ref["dec"], dtype=float)
    dec = dec0 + pmdec * years / MAS_PER_DEG
    ra = np.asarray(ref["ra"], dtype=float) + pmra * years / MAS_PER_DEG / np.cos(np.radians(dec0))
    return ra, dec


def match(
    src_ra: np.ndarray, src_dec: np.ndarray, ref_ra: np.ndarray, ref_dec: np.ndarray, radius_arcsec: float
) -> tuple[np.ndarray, np.ndarray]:
    """Pairs (source index, reference index): each reference star's nearest source within the radius."""
    if len(src_ra) == 0 or len(ref_ra) == 0:
        return np.array([], int), np.array([], int)
    sources = SkyCoord(src_ra, src_dec, unit="deg")
    refs = SkyCoord(ref_ra, ref_dec, unit="deg")
    nearest, separation, _ = refs.match_to_catalog_sky(sources)
    close = separation.arcsec < radius_arcsec
    return np.asarray(nearest[close], int), np.flatnonzero(close)


def astrometry(src_ra, src_dec, ref_ra, ref_dec) -> dict:
    """Offsets of matched sources from their reference stars (arcsec): median, its size, scatter."""
    n = len(src_ra)
    if n == 0:
        return {"astrom_n_matched": 0, "astrom_offset_arcsec": math.nan, "astrom_scatter_arcsec": math.nan,
                "astrom_dra_arcsec": math.nan, "astrom_ddec_arcsec": math.nan}  # fmt: skip
    refs = SkyCoord(ref_ra, ref_dec, unit="deg")
    dra, ddec = refs.spherical_offsets_to(SkyCoord(src_ra, src_dec, unit="deg"))
    dra, ddec = dra.arcsec, ddec.arcsec
    mra, mdec = float(np.median(dra)), float(np.median(ddec))
    scatter = float(np.sqrt(np.mean((dra - mra) ** 2 + (ddec - mdec) ** 2))) if n > 1 else math.nan
    return {
        "astrom_n_matched": int(n),
        "astrom_offset_arcsec": math.hypot(mra, mdec),
        "astrom_scatter_arcsec": scatter,
        "astrom_dra_arcsec": mra,
        "astrom_ddec_arcsec": mdec,
    }


def reference_magnitude(ref: Table, band: str) -> np.ndarray | None:
    """Each reference star's magnitude in DECam ``band`` from Gaia G and BP-RP (None: no transformation)."""
    coeffs = GAIA_TO_DECAM.get(band)
    if coeffs is None:
        return None
    g = np.asarray(ref["phot_g_mean_mag"], dtype=float)
    colour = np.asarray(ref["phot_bp_mean_mag"], dtype=float) - np.asarray(
        ref["phot_rp_mean_mag"], dtype=float
    )
    colour = np.clip(np.where(np.isfinite(colour), colour, DEFAULT_COLOUR), *COLOUR_RANGE)
    return g + np.polynomial.polynomial.polyval(colour, coeffs)


def zero_point(
    flux_e: np.ndarray, flux_err_e: np.ndarray, ref_mag: np.ndarray, exptime_s: float, min_stars: int = 5
) -> dict:
    """The zero point (magnitude of 1 e-/s) from matched stars' fluxes and reference magnitudes."""
    good = (flux_e > 0) & np.isfinite(ref_mag)
    n = int(np.sum(good))
    if n == 0:
        return {
            "zero_point": math.nan,
            "zero_point_err": math.nan,
            "zero_point_n": 0,
            "zero_point_approximate": True,
        }
    each = ref_mag[good] + 2.5 * np.log10(flux_e[good] / exptime_s)
    if n > 1:
        err = 1.2533 * float(np.std(each, ddof=1)) / math.sqrt(n)  # error of a median
    else:
        err = float(2.5 / math.log(10) * flux_err_e[good][0] / flux_e[good][0])
    return {
        "zero_point": float(np.median(each)),
        "zero_point_err": err,
        "zero_point_n": n,
        "zero_point_approximate": n < min_stars,
    }


def depth_magnitude(zero_point_mag: float, depth_flux_e: float, exptime_s: float) -> float:
    """The 5-sigma point-source depth in magnitudes, from its flux (electrons) and the zero point."""
    if not (math.isfinite(zero_point_mag) and depth_flux_e > 0):
        return math.nan
    return zero_point_mag - 2.5 * math.log10(depth_flux_e / exptime_s)


def calibrate(
    sources: Table,
    ref: Table,
    band: str,
    epoch_jyear: float,
    exptime_s: float,
    radius_arcsec: float = 1.5,
    min_stars: int = 5,
) -> tuple[dict, np.ndarray]:
    """Astrometry and zero point of one detector's sources; also a mask of the sources matched to Gaia."""
    ref_ra, ref_dec = at_epoch(ref, epoch_jyear)
    src_idx, ref_idx = match(
        np.asarray(sources["ra"]), np.asarray(sources["dec"]), ref_ra, ref_dec, radius_arcsec
    )
    result = astrometry(
        np.asarray(sources["ra"])[src_idx],
        np.asarray(sources["dec"])[src_idx],
        ref_ra[ref_idx],
        ref_dec[ref_idx],
    )
    matched = np.zeros(len(sources), bool)
    matched[src_idx] = True
    mags = reference_magnitude(ref, band)
    if mags is None:  # no transformation for the band: zero_point's answer for no stars
        none = np.zeros(0)
        return result | zero_point(none, none, none, exptime_s, min_stars), matched
    clean = ~np.asarray(sources["flag_saturated"])[src_idx] & ~np.asarray(sources["flag_deblended"])[src_idx]
    result |= zero_point(
        np.asarray(sources["flux_aperture"], float)[src_idx][clean],
        np.asarray(sources["flux_aperture_err"], float)[src_idx][clean],
        mags[ref_idx][clean],
        exptime_s,
        min_stars,
    )
    return result, matched
