"""SimCam: the small simulated LSST-like camera of the embedded default.

One definition of the camera is shared by the simulator (which writes raw
frames) and by the Butler side (which turns raw headers into dimension
records), so the two cannot drift apart. Nothing here imports the LSST
middleware: the workflow environment imports it too.

The numbers are chosen to be LSST-like at a small scale: 0.2 arcsec pixels
(LSSTCam), a gain near 1.5 e-/ADU and read noise near 5 e- (typical of the
LSSTCam e2v/ITL sensors), a bias level of about 1000 ADU with a serial
overscan strip, as on every CCD read out through an amplifier.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

NAME = "SimCam"
PIXEL_SCALE = 0.2  # arcsec / pixel
NX = 512  # imaging columns
NY = 512  # imaging rows
OVERSCAN = 32  # serial overscan columns to the right of the imaging area
GAP = 40  # pixels between neighbouring detectors on the focal plane
GAIN = 1.5  # e- / ADU
READ_NOISE = 5.0  # e-
BIAS_LEVEL = 1000.0  # ADU
SATURATION = 60000.0  # ADU, of a 16-bit ADC less margin
EXPTIME = 30.0  # s
# Photometric zero points in e-/s for a 0 mag source, and the dark-sky
# surface brightness per band (mag / arcsec^2), of an LSST-like site.
ZEROPOINT = {"g": 28.3, "r": 28.1}
SKY_MAG = {"g": 22.1, "r": 21.2}
BANDS = tuple(ZEROPOINT)
MOFFAT_BETA = 3.5  # atmospheric PSF wings (Trujillo et al. 2001)
FIELD_RA = 150.0  # deg, the boresight of visit offsets (0, 0)
FIELD_DEC = 2.0
DAY_OBS = 20260115
FIRST_EXPOSURE_MJD = 61055.125  # 2026-01-15T03:00 TAI
VISIT_CADENCE = 90.0  # s between consecutive visit ids


@dataclass(frozen=True)
class Detector:
    """One CCD of the SimCam focal plane."""

    id: int
    name: str
    # lower-left corner of the imaging area on the focal plane, in pixels,
    # relative to the boresight
    x0: float
    y0: float
    # imaging columns and rows
    nx: int = NX
    ny: int = NY

    @property
    def datasec(self) -> str:
        """The imaging area as a FITS section."""
        return section(0, self.nx, 0, self.ny)

    @property
    def biassec(self) -> str:
        """The serial overscan, right of the imaging area, as a FITS section."""
        return section(self.nx, self.nx + OVERSCAN, 0, self.ny)


DETECTORS = 4  # the embedded default's 2x2 focal plane


def grid(count: int) -> tuple[int, int]:
    """Columns and rows of a focal plane of ``count`` detectors: as square as it can be."""
    cols = math.ceil(math.sqrt(count))
    return cols, math.ceil(count / cols)


def detectors(count: int = DETECTORS, pixels: int = NX) -> list[Detector]:
    """``count`` square detectors of ``pixels`` a side, row by row in a grid centred on the
    boresight, ``GAP`` apart. The default is the embedded default's 2x2 camera; 189 detectors
    (a 14x14 grid less 7) are LSSTCam's count of science CCDs.
    """
    if count < 1 or pixels < 64:
        raise ValueError(f"SimCam needs at least 1 detector of 64 pixels, not {count} of {pixels}")
    cols, rows = grid(count)
    digits = len(str(max(cols, rows) - 1))
    pitch = pixels + GAP
    out = []
    for det_id in range(count):
        col, row = det_id % cols, det_id // cols
        x0 = -(cols * pitch - GAP) / 2 + col * pitch
        y0 = -(rows * pitch - GAP) / 2 + row * pitch
        out.append(Detector(det_id, f"S{row:0{digits}d}{col:0{digits}d}", x0, y0, pixels, pixels))
    return out


def half_extent(dets: list[Detector]) -> float:
    """Half the width of the focal plane's larger side, in pixels."""
    return max(max(max(d.x0 + d.nx, -d.x0) for d in dets), max(max(d.y0 + d.ny, -d.y0) for d in dets))


def physical_filter(band: str) -> str:
    """The physical filter name of a band, e.g. ``SimCam-r``."""
    return f"{NAME}-{band}"


def band_of(physical: str) -> str:
    """The band of a physical filter name."""
    prefix = f"{NAME}-"
    if not physical.startswith(prefix) or physical[len(prefix) :] not in BANDS:
        raise ValueError(f"{physical!r} is not a SimCam filter ({', '.join(map(physical_filter, BANDS))})")
    return physical[len(prefix) :]


def exposure_mjd(visit: int) -> float:
    """Start of exposure ``visit`` (MJD, TAI): visits are taken in id order."""
    return FIRST_EXPOSURE_MJD + visit * VISIT_CADENCE / 86400.0


def section(x_start: int, x_stop: int, y_start: int, y_stop: int) -> str:
    """A FITS section string (1-based, inclusive) for 0-based half-open ranges."""
    return f"[{x_start + 1}:{x_stop},{y_start + 1}:{y_stop}]"
