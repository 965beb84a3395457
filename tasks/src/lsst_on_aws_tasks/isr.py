"""Instrument signature removal with ccdproc: overscan, trim, bias, gain, flat.

This is the minimal but real ISR of a CCD frame, in the order a
calibration pipeline applies it. The result is in electrons, with an
uncertainty plane (Poisson plus read noise) and a mask of saturated pixels.
"""

from __future__ import annotations

import astropy.units as u
import ccdproc
import numpy as np
from astropy.modeling import models
from astropy.nddata import CCDData, StdDevUncertainty

__all__ = ["instcal_to_electrons", "run_isr"]


def run_isr(raw: CCDData, bias: CCDData, flat: CCDData, overscan_order: int = 3) -> CCDData:
    """Calibrate one raw frame.

    Parameters
    ----------
    raw
        Raw frame in ADU; its header must carry ``BIASSEC``, ``DATASEC``,
        ``GAIN`` (e-/ADU) and ``RDNOISE`` (e-), and may carry ``SATURATE``.
    bias
        Master bias in ADU, trimmed and overscan-corrected.
    flat
        Master flat, trimmed, normalised so that 1 is the reference response.
    overscan_order
        Order of the polynomial fitted to the overscan along the rows.

    Returns
    -------
    CCDData
        The trimmed image in electrons with uncertainty and mask.
    """
    header = raw.header
    for key in ("BIASSEC", "DATASEC", "GAIN", "RDNOISE"):
        if key not in header:
            raise ValueError(f"raw header lacks {key}, needed by ISR")
    gain = float(header["GAIN"]) * u.electron / u.adu
    read_noise = float(header["RDNOISE"]) * u.electron
    data = np.asarray(raw.data, dtype=np.float64)
    ccd = CCDData(data, unit=u.adu, header=header.copy(), wcs=raw.wcs)
    saturated = data >= float(header["SATURATE"]) if "SATURATE" in header else np.zeros(data.shape, bool)

    ccd = ccdproc.subtract_overscan(
        ccd,
        fits_section=header["BIASSEC"],
        overscan_axis=1,
        median=True,
        model=models.Polynomial1D(overscan_order),
    )
    ccd = ccdproc.trim_image(ccd, fits_section=header["DATASEC"])
    mask = ccdproc.trim_image(
        CCDData(saturated.astype(np.uint8), unit=u.dimensionless_unscaled), fits_section=header["DATASEC"]
    ).data.astype(bool)
    if bias.data.shape != ccd.data.shape or flat.data.shape != ccd.data.shape:
        raise ValueError(
            f"calibration shape {bias.data.shape}/{flat.data.shape}"
            f" does not match the trimmed raw {ccd.data.shape}"
        )
    ccd = ccdproc.subtract_bias(ccd, CCDData(np.asarray(bias.data, np.float64), unit=u.adu))
    ccd = ccdproc.gain_correct(ccd, gain)
    ccd = ccdproc.create_deviation(ccd, readnoise=read_noise, disregard_nan=True)
    ccd = ccdproc.flat_correct(
        ccd, CCDData(np.asarray(flat.data, np.float64), unit=u.dimensionless_unscaled), norm_value=1.0
    )
    mask |= ~np.isfinite(ccd.data) | (np.asarray(flat.data) <= 0)
    ccd.mask = mask
    # float32 is ample for calibrated pixels and halves the files
    ccd.data = ccd.data.astype(np.float32)
    ccd.uncertainty = StdDevUncertainty(np.asarray(ccd.uncertainty.array, dtype=np.float32))
    ccd.header["BUNIT"] = "electron"
    ccd.header["ISR"] = ("overscan,trim,bias,gain,flat", "ISR steps applied")
    return ccd


def instcal_to_electrons(image: CCDData, invvar: CCDData, dq: CCDData) -> CCDData:
    """A DECam Community Pipeline InstCal CCD (calibrated, in ADU) as this pipeline's calibrated image.

    The three planes become one ``CCDData`` in electrons: pixels times the
    gain (the mean of the CCD's two amplifiers' GAINA and GAINB), the
    uncertainty from the inverse-variance plane (``gain / sqrt(invvar)``),
    and a mask of every pixel that the data-quality plane flags (non-zero),
    that has no variance (``invvar <= 0``), that reaches the lower of the two
    amplifiers' saturation levels (SATURATA, SATURATB, in ADU), or that is
    not finite. The sky is left in: background subtraction comes later.
    """
    header = image.header
    for key in ("GAINA", "GAINB", "SATURATA", "SATURATB"):
        if key not in header:
            raise ValueError(f"InstCal header lacks {key}, needed to calibrate it")
    shapes = {image.data.shape, invvar.data.shape, dq.data.shape}
    if len(shapes) != 1:
        raise ValueError(f"the InstCal planes differ in shape: {sorted(shapes)}")
    gain = 0.5 * (float(header["GAINA"]) + float(header["GAINB"]))  # e-/ADU
    saturation = min(float(header["SATURATA"]), float(header["SATURATB"]))
    adu = np.asarray(image.data, dtype=np.float64)
    weight = np.asarray(invvar.data, dtype=np.float64)
    mask = (np.asarray(dq.data) != 0) | ~(weight > 0) | ~np.isfinite(adu) | (adu >= saturation)
    with np.errstate(divide="ignore", invalid="ignore"):
        sigma_adu = np.where(weight > 0, 1.0 / np.sqrt(weight), np.inf)
    out = CCDData(
        (adu * gain).astype(np.float32),
        unit=u.electron,
        wcs=image.wcs,
        header=header.copy(),
        mask=mask,
        uncertainty=StdDevUncertainty((sigma_adu * gain).astype(np.float32)),
    )
    out.header["BUNIT"] = "electron"
    out.header["GAIN"] = (gain, "e-/ADU applied (mean of GAINA, GAINB)")
    out.header["ISR"] = ("instcal:gain,invvar,dq,saturation", "from DECam CP InstCal planes")
    return out
