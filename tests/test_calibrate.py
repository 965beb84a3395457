"""Astrometry and zero point against a reference catalogue: exact cases built by hand."""

from __future__ import annotations

import math

import numpy as np
import pytest
from astropy.table import Table

from lsst_on_aws_tasks import calibrate


def refcat(ra, dec, g, bp_rp, pmra=0.0, pmdec=0.0) -> Table:
    n = len(ra)
    return Table(
        {
            "ra": np.asarray(ra, float),
            "dec": np.asarray(dec, float),
            "pmra": np.full(n, pmra),
            "pmdec": np.full(n, pmdec),
            "phot_g_mean_mag": np.asarray(g, float),
            "phot_bp_mean_mag": np.asarray(g, float) + np.asarray(bp_rp, float),
            "phot_rp_mean_mag": np.asarray(g, float),
        }
    )


def test_proper_motion_moves_stars_to_the_epoch():
    ref = refcat([10.0], [60.0], [18.0], [1.0], pmra=500.0, pmdec=-1000.0)
    ra, dec = calibrate.at_epoch(ref, 2025.5)  # ten years after J2015.5
    assert dec[0] == pytest.approx(60.0 - 10_000 / 3.6e6)
    assert ra[0] == pytest.approx(10.0 + 5_000 / 3.6e6 / math.cos(math.radians(60.0)))


def test_offsets_median_and_scatter():
    ref_ra, ref_dec = np.array([150.0, 150.01, 150.02]), np.array([2.0, 2.0, 2.0])
    shift = np.array([0.2, 0.3, 0.4]) / 3600  # arcsec north
    result = calibrate.astrometry(ref_ra, ref_dec + shift, ref_ra, ref_dec)
    assert result["astrom_n_matched"] == 3
    assert result["astrom_ddec_arcsec"] == pytest.approx(0.3, abs=1e-6)
    assert result["astrom_dra_arcsec"] == pytest.approx(0.0, abs=1e-6)
    assert result["astrom_offset_arcsec"] == pytest.approx(0.3, abs=1e-6)
    assert result["astrom_scatter_arcsec"] == pytest.approx(math.sqrt(0.02 / 3), abs=1e-6)


def test_match_takes_the_nearest_source_within_the_radius():
    src_idx, ref_idx = calibrate.match(
        np.array([150.0, 150.0 + 0.5 / 3600, 151.0]), np.array([2.0, 2.0, 2.0]),
        np.array([150.0 + 0.4 / 3600, 152.0]), np.array([2.0, 2.0]), radius_arcsec=1.0,
    )  # fmt: skip
    assert src_idx.tolist() == [1] and ref_idx.tolist() == [0]


def test_reference_magnitude_is_g_plus_the_colour_polynomial():
    ref = refcat([0, 0, 0], [0, 0, 0], [18.0, 18.0, 18.0], [0.0, 9.0, np.nan])
    r = calibrate.reference_magnitude(ref, "r")
    coeffs = calibrate.GAIA_TO_DECAM["r"]
    assert r[0] == pytest.approx(18.0 + coeffs[0])
    assert r[1] == pytest.approx(18.0 + np.polynomial.polynomial.polyval(4.1, coeffs))  # clipped
    assert r[2] == pytest.approx(18.0 + np.polynomial.polynomial.polyval(1.4, coeffs))  # no colour
    assert calibrate.reference_magnitude(ref, "Y") is None


def test_zero_point_recovers_the_true_one():
    mags = np.array([17.0, 18.0, 19.0, 20.0, 21.0])
    flux = 100.0 * 10 ** (-0.4 * (mags - 30.0))  # 100 s at a zero point of 30
    result = calibrate.zero_point(flux, np.sqrt(flux), mags, exptime_s=100.0, min_stars=5)
    assert result["zero_point"] == pytest.approx(30.0)
    assert result["zero_point_err"] == pytest.approx(0.0, abs=1e-9)
    assert result["zero_point_n"] == 5 and result["zero_point_approximate"] is False
    few = calibrate.zero_point(flux[:3], np.sqrt(flux[:3]), mags[:3], 100.0, min_stars=5)
    assert few["zero_point_approximate"] is True
    assert calibrate.depth_magnitude(30.0, 100.0 * 10 ** (-0.4 * (26.0 - 30.0)), 100.0) == pytest.approx(26.0)
