"""The DECam pipeline's calibration against Gaia, as a PipelineTask (per visit and detector).

The algorithm lives in :mod:`.calibrate`; this class only connects it to the Butler.
"""

from __future__ import annotations

import lsst.pex.config as pexConfig
import lsst.pipe.base as pipeBase
import lsst.pipe.base.connectionTypes as cT
from astropy.table import Table

from .calibrate import calibrate, depth_magnitude

__all__ = ["GaiaCalibrateConfig", "GaiaCalibrateTask"]


class GaiaCalibrateConnections(
    pipeBase.PipelineTaskConnections, dimensions=("instrument", "visit", "detector")
):
    sources = cT.Input(
        doc="The detector's sources (RA, Dec, aperture fluxes, flags).",
        name="single_visit_source",
        storageClass="ArrowAstropy",
        dimensions=("instrument", "visit", "detector"),
    )
    summary = cT.Input(
        doc="The detector's measured numbers (PSF, sky, depth flux).",
        name="detector_summary",
        storageClass="StructuredDataDict",
        dimensions=("instrument", "visit", "detector"),
    )
    refcat = cT.PrerequisiteInput(
        doc="Gaia DR2 stars (positions at J2015.5, proper motions, G, BP, RP).",
        name="gaia_dr2_refcat",
        storageClass="ArrowAstropy",
        dimensions=(),
    )
    calibrated = cT.Output(
        doc="The detector's numbers with its astrometric check, zero point and depth in magnitudes.",
        name="calibrated_detector_summary",
        storageClass="StructuredDataDict",
        dimensions=("instrument", "visit", "detector"),
    )


class GaiaCalibrateConfig(pipeBase.PipelineTaskConfig, pipelineConnections=GaiaCalibrateConnections):
    match_radius_arcsec = pexConfig.Field[float](
        doc="Largest source-to-Gaia distance of a match.", default=1.5
    )
    min_zero_point_stars = pexConfig.Field[int](
        doc="Below this many matched stars, the zero point is flagged approximate.", default=5
    )


class GaiaCalibrateTask(pipeBase.PipelineTask):
    """Astrometric check and photometric zero point of one detector against Gaia (see :mod:`.calibrate`)."""

    ConfigClass = GaiaCalibrateConfig
    _DefaultName = "calibrate"

    def run(
        self, sources: Table, summary: dict, refcat: Table, band: str, epoch_jyear: float, exptime_s: float
    ) -> pipeBase.Struct:
        result, _ = calibrate(
            sources,
            refcat,
            band,
            epoch_jyear,
            exptime_s,
            radius_arcsec=self.config.match_radius_arcsec,
            min_stars=self.config.min_zero_point_stars,
        )
        result["depth_mag_5sigma"] = depth_magnitude(
            result["zero_point"], summary["depth_flux_5sigma"], exptime_s
        )
        self.log.info(
            "%d Gaia matches, offset %.3f arcsec; zero point %.3f +- %.3f (%d stars%s)",
            result["astrom_n_matched"],
            result["astrom_offset_arcsec"],
            result["zero_point"],
            result["zero_point_err"],
            result["zero_point_n"],
            ", approximate" if result["zero_point_approximate"] else "",
        )
        return pipeBase.Struct(calibrated={**summary, **result})

    def runQuantum(self, butlerQC, inputRefs, outputRefs):
        inputs = butlerQC.get(inputRefs)
        visit = butlerQC.quantum.dataId.records["visit"]
        epoch = visit.timespan.begin.tai.jyear + 0.5 * visit.exposure_time / (365.25 * 86400)
        outputs = self.run(
            **inputs,
            band=str(butlerQC.quantum.dataId["band"]),
            epoch_jyear=epoch,
            exptime_s=visit.exposure_time,
        )
        butlerQC.put(outputs, outputRefs)
