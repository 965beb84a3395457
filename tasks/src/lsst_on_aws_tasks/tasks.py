"""PipelineTasks of the project's single-visit pipelines.

``IsrTask`` (per exposure and detector) calibrates a raw frame (``InstcalTask``
a DECam InstCal CCD), ``MeasureTask`` (per visit and detector) models the
background, detects, measures the PSF and does aperture photometry, and
``VisitSummaryTask`` (per visit) gathers the detectors' numbers, like Rubin's
visit summary. The DECam pipeline's calibration against Gaia is in
:mod:`.gaia_task`. The algorithms live in :mod:`.isr` and :mod:`.measure`;
these classes only connect them to the Butler.
"""

from __future__ import annotations

import math

import lsst.pex.config as pexConfig
import lsst.pipe.base as pipeBase
import lsst.pipe.base.connectionTypes as cT
import numpy as np
from astropy.nddata import CCDData, StdDevUncertainty
from astropy.table import Table

from .isr import instcal_to_electrons, run_isr
from .measure import MeasureParams, measure_image

__all__ = [
    "InstcalConfig",
    "InstcalTask",
    "IsrConfig",
    "IsrTask",
    "MeasureConfig",
    "MeasureTask",
    "VisitSummaryConfig",
    "VisitSummaryTask",
]


class IsrConnections(pipeBase.PipelineTaskConnections, dimensions=("instrument", "exposure", "detector")):
    raw = cT.Input(
        doc="Raw frame.",
        name="raw",
        storageClass="CCDData",
        dimensions=("instrument", "exposure", "detector"),
    )
    bias = cT.PrerequisiteInput(
        doc="Master bias, trimmed and overscan-corrected (ADU).",
        name="bias",
        storageClass="CCDData",
        dimensions=("instrument", "detector"),
    )
    flat = cT.PrerequisiteInput(
        doc="Master flat of the exposure's filter.",
        name="flat",
        storageClass="CCDData",
        dimensions=("instrument", "physical_filter", "detector"),
    )
    post_isr_image = cT.Output(
        doc="Calibrated, trimmed image in electrons, with uncertainty and mask.",
        name="post_isr_image",
        storageClass="CCDData",
        dimensions=("instrument", "exposure", "detector"),
    )


class IsrConfig(pipeBase.PipelineTaskConfig, pipelineConnections=IsrConnections):
    overscan_order = pexConfig.Field[int](
        doc="Order of the polynomial fitted to the overscan along the rows.", default=3
    )


class IsrTask(pipeBase.PipelineTask):
    """Overscan, trim, bias, gain and flat correction."""

    ConfigClass = IsrConfig
    _DefaultName = "isr"

    def run(self, raw: CCDData, bias: CCDData, flat: CCDData) -> pipeBase.Struct:
        image = run_isr(raw, bias, flat, overscan_order=self.config.overscan_order)
        self.metadata["median_electrons"] = float(np.nanmedian(image.data))
        return pipeBase.Struct(post_isr_image=image)


class InstcalConnections(pipeBase.PipelineTaskConnections, dimensions=("instrument", "exposure", "detector")):
    image = cT.Input(
        doc="DECam InstCal image (ADU, calibrated by the Community Pipeline, sky in).",
        name="instcal_image",
        storageClass="CCDData",
        dimensions=("instrument", "exposure", "detector"),
    )
    invvar = cT.Input(
        doc="Its inverse variance (1/ADU^2).",
        name="instcal_invvar",
        storageClass="CCDData",
        dimensions=("instrument", "exposure", "detector"),
    )
    dq = cT.Input(
        doc="Its data-quality plane (0 = good).",
        name="instcal_dq",
        storageClass="CCDData",
        dimensions=("instrument", "exposure", "detector"),
    )
    post_isr_image = cT.Output(
        doc="Calibrated image in electrons, with uncertainty and mask.",
        name="post_isr_image",
        storageClass="CCDData",
        dimensions=("instrument", "exposure", "detector"),
    )


class InstcalConfig(pipeBase.PipelineTaskConfig, pipelineConnections=InstcalConnections):
    pass


class InstcalTask(pipeBase.PipelineTask):
    """DECam InstCal planes -> this pipeline's calibrated image (gain, variance, mask, saturation)."""

    ConfigClass = InstcalConfig
    _DefaultName = "instcal"

    def run(self, image: CCDData, invvar: CCDData, dq: CCDData) -> pipeBase.Struct:
        calibrated = instcal_to_electrons(image, invvar, dq)
        self.metadata["median_electrons"] = float(np.nanmedian(calibrated.data))
        self.metadata["masked_fraction"] = float(np.mean(calibrated.mask))
        return pipeBase.Struct(post_isr_image=calibrated)


class MeasureConnections(pipeBase.PipelineTaskConnections, dimensions=("instrument", "visit", "detector")):
    post_isr_image = cT.Input(
        doc="Calibrated image of the visit's exposure (one per visit for SimCam).",
        name="post_isr_image",
        storageClass="CCDData",
        dimensions=("instrument", "exposure", "detector"),
        multiple=True,
    )
    sources = cT.Output(
        doc="Detected sources with centroids, shapes, PSF-star flags and aperture fluxes.",
        name="single_visit_source",
        storageClass="ArrowAstropy",
        dimensions=("instrument", "visit", "detector"),
    )
    image = cT.Output(
        doc="Background-subtracted image in electrons.",
        name="preliminary_visit_image",
        storageClass="CCDData",
        dimensions=("instrument", "visit", "detector"),
    )
    summary = cT.Output(
        doc="Per-detector numbers: sky, noise, PSF, source count, depth.",
        name="detector_summary",
        storageClass="StructuredDataDict",
        dimensions=("instrument", "visit", "detector"),
    )


class MeasureConfig(pipeBase.PipelineTaskConfig, pipelineConnections=MeasureConnections):
    detection_threshold = pexConfig.Field[float](
        doc="Detection threshold, in sigma of the smoothed image.", default=MeasureParams.detection_threshold
    )
    min_pixels = pexConfig.Field[int](
        doc="Minimum connected pixels of a detection.", default=MeasureParams.min_pixels
    )
    kernel_fwhm_pix = pexConfig.Field[float](
        doc="FWHM of the detection kernel (pixels).", default=MeasureParams.kernel_fwhm_pix
    )
    background_box = pexConfig.Field[int](
        doc="Background mesh size (pixels).", default=MeasureParams.background_box
    )
    deblend_contrast = pexConfig.Field[float](
        doc="Deblender contrast.", default=MeasureParams.deblend_contrast
    )
    psf_min_snr = pexConfig.Field[float](doc="Minimum S/N of a PSF star.", default=MeasureParams.psf_min_snr)
    psf_max_stars = pexConfig.Field[int](
        doc="At most this many (brightest) PSF stars.", default=MeasureParams.psf_max_stars
    )
    psf_isolation_fwhm = pexConfig.Field[float](
        doc="PSF stars have no neighbour within this many FWHM.", default=MeasureParams.psf_isolation_fwhm
    )
    psf_size_tolerance = pexConfig.Field[float](
        doc="PSF stars' FWHM lie within this fraction of the stellar locus's.",
        default=MeasureParams.psf_size_tolerance,
    )
    aperture_radius_fwhm = pexConfig.Field[float](
        doc="Aperture radius in units of the PSF FWHM.", default=MeasureParams.aperture_radius_fwhm
    )

    def params(self) -> MeasureParams:
        """The measurement settings as the algorithm takes them."""
        return MeasureParams(
            detection_threshold=self.detection_threshold,
            min_pixels=self.min_pixels,
            kernel_fwhm_pix=self.kernel_fwhm_pix,
            background_box=self.background_box,
            deblend_contrast=self.deblend_contrast,
            psf_min_snr=self.psf_min_snr,
            psf_max_stars=self.psf_max_stars,
            psf_isolation_fwhm=self.psf_isolation_fwhm,
            psf_size_tolerance=self.psf_size_tolerance,
            aperture_radius_fwhm=self.aperture_radius_fwhm,
        )


class MeasureTask(pipeBase.PipelineTask):
    """Background, detection, deblending, PSF and aperture photometry of one detector."""

    ConfigClass = MeasureConfig
    _DefaultName = "measure"

    def run(self, post_isr_image: list[CCDData]) -> pipeBase.Struct:
        if len(post_isr_image) != 1:
            raise RuntimeError(f"expected one exposure per visit, got {len(post_isr_image)}")
        ccd = post_isr_image[0]
        variance = np.asarray(ccd.uncertainty.array, dtype=np.float64) ** 2
        catalog, summary, subtracted = measure_image(
            ccd.data, variance, ccd.mask, ccd.wcs, params=self.config.params()
        )
        pixel_scale = _pixel_scale_arcsec(ccd)
        summary["psf_fwhm_arcsec"] = summary["psf_fwhm_pix"] * pixel_scale
        summary["pixel_scale_arcsec"] = pixel_scale
        for key in ("n_sources", "n_psf_stars", "psf_fwhm_pix", "sky_level"):
            self.metadata[key] = summary[key]
        self.log.info(
            "%d sources; PSF FWHM %.2f arcsec from %d stars; sky %.1f e-",
            summary["n_sources"],
            summary["psf_fwhm_arcsec"],
            summary["n_psf_stars"],
            summary["sky_level"],
        )
        image = CCDData(
            subtracted.astype(np.float32),
            unit=ccd.unit,
            wcs=ccd.wcs,
            header=ccd.header,
            uncertainty=StdDevUncertainty(ccd.uncertainty.array),
            mask=ccd.mask,
        )
        return pipeBase.Struct(sources=catalog, image=image, summary=summary)

    def runQuantum(self, butlerQC, inputRefs, outputRefs):
        inputs = butlerQC.get(inputRefs)
        outputs = self.run(**inputs)
        data_id = outputRefs.summary.dataId
        outputs.summary["visit"] = int(data_id["visit"])
        outputs.summary["detector"] = int(data_id["detector"])
        outputs.sources["visit"] = int(data_id["visit"])
        outputs.sources["detector"] = int(data_id["detector"])
        butlerQC.put(outputs, outputRefs)


def _pixel_scale_arcsec(ccd: CCDData) -> float:
    if ccd.wcs is None:
        return float("nan")
    scales = ccd.wcs.proj_plane_pixel_scales()
    return float(math.sqrt(scales[0].to_value("arcsec") * scales[1].to_value("arcsec")))


class VisitSummaryConnections(pipeBase.PipelineTaskConnections, dimensions=("instrument", "visit")):
    summaries = cT.Input(
        doc="Per-detector summaries of the visit.",
        name="detector_summary",
        storageClass="StructuredDataDict",
        dimensions=("instrument", "visit", "detector"),
        multiple=True,
    )
    visit_summary = cT.Output(
        doc="One row per detector with its PSF, sky and source numbers.",
        name="visit_summary",
        storageClass="ArrowAstropy",
        dimensions=("instrument", "visit"),
    )
    visit_stats = cT.Output(
        doc="Visit-level numbers: medians over detectors and totals.",
        name="visit_summary_stats",
        storageClass="StructuredDataDict",
        dimensions=("instrument", "visit"),
    )


class VisitSummaryConfig(pipeBase.PipelineTaskConfig, pipelineConnections=VisitSummaryConnections):
    pass


class VisitSummaryTask(pipeBase.PipelineTask):
    """Gather the detectors' summaries into the visit summary."""

    ConfigClass = VisitSummaryConfig
    _DefaultName = "visitSummary"

    def run(self, summaries: list[dict]) -> pipeBase.Struct:
        table = Table(rows=sorted(summaries, key=lambda s: s["detector"]))
        stats = {
            "visit": int(table["visit"][0]),
            "n_detectors": len(table),
            "n_sources": int(np.sum(table["n_sources"])),
            "n_psf_stars": int(np.sum(table["n_psf_stars"])),
            "psf_fwhm_arcsec": float(np.nanmedian(table["psf_fwhm_arcsec"])),
            "psf_fwhm_pix": float(np.nanmedian(table["psf_fwhm_pix"])),
            "psf_ellipticity": float(np.nanmedian(table["psf_ellipticity"])),
            "sky_level": float(np.median(table["sky_level"])),
            "sky_noise": float(np.median(table["sky_noise"])),
        }
        if "zero_point" in table.colnames:  # calibrated against a reference catalogue
            stats |= {
                "zero_point": float(np.nanmedian(table["zero_point"])),
                "zero_point_err": float(np.nanmedian(table["zero_point_err"])),
                "zero_point_n": int(np.sum(table["zero_point_n"])),
                "zero_point_approximate": bool(np.any(table["zero_point_approximate"])),
                "astrom_n_matched": int(np.sum(table["astrom_n_matched"])),
                "astrom_offset_arcsec": float(np.nanmedian(table["astrom_offset_arcsec"])),
                "astrom_scatter_arcsec": float(np.nanmedian(table["astrom_scatter_arcsec"])),
                "depth_mag_5sigma": float(np.nanmedian(table["depth_mag_5sigma"])),
            }
        self.log.info("Visit summary: %s", stats)
        return pipeBase.Struct(visit_summary=table, visit_stats=stats)
