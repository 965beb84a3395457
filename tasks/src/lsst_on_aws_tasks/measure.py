"""Single-detector measurement with photutils: background, detection, PSF, photometry.

Every number comes from the pixels. The steps follow the order of the LSST
stack's ``calibrateImage``, with photutils and astropy in place of afw and
meas_algorithms:

1. background: a 2-D sigma-clipped median mesh (``Background2D``), fitted
   twice, the second time with the first pass's detections masked;
2. detection on the image smoothed with a Gaussian kernel, at a threshold
   in units of the *smoothed* image's noise (a matched filter), then
   deblending of blended footprints;
3. windowed centroids with their errors from the variance plane;
4. PSF: adaptive second moments (GalSim's HSM) of bright, isolated,
   unsaturated sources; those on the stellar locus are the PSF stars, flagged
   in the catalogue, and the FWHM and ellipticity are their medians;
5. circular-aperture photometry at a radius in units of the PSF FWHM, and
   PSF-weighted photometry (a Gaussian of the measured FWHM, aperture-
   corrected on the PSF stars), both with errors propagated from the
   variance plane.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from astropy.convolution import convolve
from astropy.stats import SigmaClip, sigma_clipped_stats
from astropy.table import Table
from astropy.wcs import WCS
from lsst.pipe.base import AlgorithmError
from photutils.aperture import CircularAperture, aperture_photometry
from photutils.background import Background2D, MedianBackground
from photutils.segmentation import SourceCatalog, deblend_sources, detect_sources, make_2dgaussian_kernel

from .psf import FWHM_PER_SIGMA, measure_psf, psf_photometry

__all__ = ["MeasureParams", "NoSourcesError", "measure_image"]


class NoSourcesError(AlgorithmError):
    """Nothing in the image rises above the detection threshold.

    An ``AlgorithmError``: a property of the data that a retry cannot fix, so
    the workflow records the visit as failed instead of resubmitting it.
    """

    def __init__(self, message: str, **metadata: float):
        super().__init__(message)
        self._metadata = metadata

    @property
    def metadata(self) -> dict[str, float]:
        return self._metadata


@dataclass(frozen=True)
class MeasureParams:
    """Tunable numbers of the measurement; the task config mirrors them."""

    detection_threshold: float = 5.0  # sigma of the smoothed image
    min_pixels: int = 5  # connected pixels of a detection
    kernel_fwhm_pix: float = 4.0  # smoothing kernel, near the expected seeing
    background_box: int = 64  # mesh size of the background model (pixels)
    deblend_contrast: float = 0.005
    psf_min_snr: float = 50.0  # PSF star candidates: at least this S/N ...
    psf_max_stars: int = 40  # ... the brightest this many of them
    psf_isolation_fwhm: float = 4.0  # no neighbour within this many FWHM
    psf_size_tolerance: float = 0.15  # stellar locus: FWHM within this fraction of its centre
    aperture_radius_fwhm: float = 3.0  # 99.7% of a beta=3.5 Moffat's light (FWHM from moments)


def _background(data: np.ndarray, mask: np.ndarray, box: int) -> Background2D:
    return Background2D(
        data,
        box_size=box,
        mask=mask,
        filter_size=(3, 3),
        sigma_clip=SigmaClip(sigma=3.0),
        bkg_estimator=MedianBackground(),
    )


def measure_image(
    image: np.ndarray,
    variance: np.ndarray,
    mask: np.ndarray | None = None,
    wcs: WCS | None = None,
    params: MeasureParams | None = None,
) -> tuple[Table, dict, np.ndarray]:
    """Measure one calibrated detector image.

    Parameters
    ----------
    image
        Calibrated pixels (electrons).
    variance
        Per-pixel variance of ``image`` (electrons^2).
    mask
        True where pixels are bad (saturated, no data).
    wcs
        Celestial WCS of the image, for source RA/Dec.
    params
        Measurement settings.

    Returns
    -------
    catalog : `astropy.table.Table`
        One row per detected source.
    summary : `dict`
        Background, noise, PSF and source counts of the image.
    subtracted : `numpy.ndarray`
        The background-subtracted image.
    """
    params = params or MeasureParams()
    image = np.asarray(image, dtype=np.float64)
    mask = np.zeros(image.shape, bool) if mask is None else np.asarray(mask, bool)
    bad = mask | ~np.isfinite(image) | ~(variance > 0)
    sigma = np.sqrt(np.where(bad, np.nan, variance))

    kernel = make_2dgaussian_kernel(params.kernel_fwhm_pix, size=2 * int(2 * params.kernel_fwhm_pix) + 1)
    # the noise of the smoothed image is the pixel noise times sqrt(sum k^2)
    smooth_factor = math.sqrt(float(np.sum(kernel.array**2)))

    bkg = _background(image, bad, params.background_box)
    segm = None
    for _ in range(2):
        sub = image - bkg.background
        conv = convolve(np.where(bad, 0.0, sub), kernel, normalize_kernel=True)
        threshold = params.detection_threshold * bkg.background_rms * smooth_factor
        segm = detect_sources(conv, threshold, n_pixels=params.min_pixels, mask=bad)
        if segm is None:
            break
        source_mask = segm.make_source_mask(size=2 * int(params.kernel_fwhm_pix) + 1)
        bkg = _background(image, bad | source_mask, params.background_box)
    sub = image - bkg.background
    sky_level = float(np.median(bkg.background))
    sky_noise = float(np.median(bkg.background_rms))
    if segm is None:
        raise NoSourcesError(
            f"no source above {params.detection_threshold} sigma"
            f" (sky {sky_level:.1f} e-, noise {sky_noise:.2f} e-)",
            detection_threshold=params.detection_threshold,
            sky_level=sky_level,
            sky_noise=sky_noise,
        )
    conv = convolve(np.where(bad, 0.0, sub), kernel, normalize_kernel=True)
    deblended = deblend_sources(conv, segm, n_pixels=params.min_pixels, contrast=params.deblend_contrast)
    # parents split by the deblender: their children are flagged as blended
    parent_of = {}
    for label in deblended.labels:
        ys, xs = deblended.slices[deblended.get_index(label)]
        cy = (ys.start + ys.stop) // 2
        cx = (xs.start + xs.stop) // 2
        parent_of[label] = int(
            segm.data[min(max(cy, 0), image.shape[0] - 1), min(max(cx, 0), image.shape[1] - 1)]
        )
    children = np.bincount([p for p in parent_of.values() if p > 0], minlength=segm.max_label + 1)

    error = np.where(bad, 0.0, np.nan_to_num(sigma))
    cat = SourceCatalog(sub, deblended, convolved_data=conv, error=error, mask=bad, wcs=wcs)
    x = np.asarray(cat.x_centroid_win, dtype=np.float64)
    y = np.asarray(cat.y_centroid_win, dtype=np.float64)
    x_err = np.asarray(cat.x_centroid_win_err, dtype=np.float64)
    y_err = np.asarray(cat.y_centroid_win_err, dtype=np.float64)
    flux_seg = np.asarray(cat.segment_flux, dtype=np.float64)
    flux_seg_err = np.asarray(cat.segment_flux_err, dtype=np.float64)
    saturated = np.array([bool(np.any(m)) for m in _segment_masks(deblended, mask)])
    table = Table(
        {
            "id": np.asarray(cat.label, dtype=np.int64),
            "x": x,
            "y": y,
            "x_err": x_err,
            "y_err": y_err,
            "area": np.asarray(cat.area.value, dtype=np.float64),
            "ellipticity": np.asarray(cat.ellipticity.value, dtype=np.float64),
            "flux_segment": flux_seg,
            "snr_segment": flux_seg / np.where(flux_seg_err > 0, flux_seg_err, np.nan),
            "flag_deblended": np.array([children[parent_of[lbl]] > 1 for lbl in cat.label]),
            "flag_saturated": saturated,
        }
    )
    psf, used = measure_psf(sub, bad, table, params.kernel_fwhm_pix, params)
    table["is_psf_star"] = used
    fwhm = psf["psf_fwhm_pix"] if np.isfinite(psf["psf_fwhm_pix"]) else params.kernel_fwhm_pix
    radius = params.aperture_radius_fwhm * fwhm
    phot = aperture_photometry(
        np.where(bad, 0.0, sub), CircularAperture(np.column_stack([x, y]), r=radius), error=error, mask=bad
    )
    table["flux_aperture"] = np.asarray(phot["aperture_sum"], dtype=np.float64)
    table["flux_aperture_err"] = np.asarray(phot["aperture_sum_err"], dtype=np.float64)
    table["snr"] = table["flux_aperture"] / table["flux_aperture_err"]
    psf_flux, psf_flux_err, aperture_correction = psf_photometry(
        np.where(bad, 0.0, sub), error, bad, table, fwhm
    )
    table["flux_psf"] = psf_flux
    table["flux_psf_err"] = psf_flux_err
    if wcs is not None:
        ra, dec = wcs.all_pix2world(x, y, 0)
        table["ra"] = ra
        table["dec"] = dec
    table.meta["aperture_radius_pix"] = radius
    # 5-sigma point-source depth in electrons: the flux a PSF-weighted
    # measurement finds at S/N 5 against the sky noise alone, through the
    # PSF's noise-equivalent area (4 pi sigma^2 for a Gaussian of the
    # measured FWHM; Rubin's definition)
    sigma_psf = fwhm / FWHM_PER_SIGMA
    depth_flux = 5.0 * sky_noise * math.sqrt(4.0 * math.pi * sigma_psf**2)
    _, median_snr, _ = sigma_clipped_stats(np.asarray(table["snr"]))
    summary = {
        "n_sources": len(table),
        "sky_level": sky_level,
        "sky_noise": sky_noise,
        **psf,
        "aperture_radius_pix": float(radius),
        "depth_flux_5sigma": float(depth_flux),
        "psf_aperture_correction": float(aperture_correction),
        "median_snr": float(median_snr),
    }
    return table, summary, sub


def _segment_masks(segm, mask: np.ndarray):
    for sl, label in zip(segm.slices, segm.labels, strict=True):
        yield mask[sl][segm.data[sl] == label]
