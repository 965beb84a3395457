"""DECam, as NOIRLab's Community Pipeline delivers it: "InstCal" files, one CCD each, in three planes.

An InstCal exposure comes as three files per CCD, named alike:
``..._ooi_<band>_<version>.<CCD>.fits`` (the image, ADU, sky not
subtracted), ``..._oow_...`` (inverse variance) and ``..._ood_...`` (data
quality, 0 = good). Each holds the full DECam header in its primary HDU and
the CCD's own (TPV WCS, gains, saturation) in HDU 1.

This module turns those headers into what the Butler needs, as ``obs_decam``
would with ``afw``: the instrument's detectors (CCDNUM -> name, as DECam
numbers them), physical filters and bands, and per CCD file an
:class:`Observation` (exposure = visit = EXPNUM, detector = CCDNUM, the
filter, the night, the timespan, the pointing and the CCD's footprint on the
sky from its WCS). Nothing here reads a header value as a measurement.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import astropy.units as u
import numpy as np
from astropy.coordinates import Angle
from astropy.io import fits
from astropy.time import Time
from astropy.wcs import WCS, FITSFixedWarning

NAME = "DECam"
# DECam's 62 science CCDs in CCDNUM order (1..62), as the camera's headers number them
_SOUTH = (29, 30, 31, 25, 26, 27, 28, *range(20, 25), *range(14, 20), *range(8, 14), *range(1, 8))
CCD_NAMES = tuple([f"S{n}" for n in _SOUTH] + [f"N{n}" for n in range(1, 32)])
BANDS = ("u", "g", "r", "i", "z", "Y")
# the three planes of an InstCal CCD: file-name code -> Butler dataset type
PLANES = {"ooi": "instcal_image", "oow": "instcal_invvar", "ood": "instcal_dq"}
_PLANE = re.compile(r"_(ooi|oow|ood)_")


class DecamHeaderError(ValueError):
    """A file is not a DECam InstCal CCD this module can describe; the message names it."""


def detectors() -> list[tuple[int, str]]:
    """(CCDNUM, name) of every science CCD."""
    return list(enumerate(CCD_NAMES, start=1))


def physical_filter(filter_card: str) -> tuple[str, str]:
    """The physical filter (the FILTER card, e.g. "z DECam SDSS c0004 9260.0 1520.0") and its band."""
    name = " ".join(str(filter_card).split())
    band = name.split(" ", 1)[0] if name else ""
    if band not in BANDS:
        raise DecamHeaderError(f"FILTER {filter_card!r} is not one of DECam's bands {', '.join(BANDS)}")
    return name, band


def plane_of(path: Path) -> str:
    """Which plane a file holds, from its name: "ooi" (image), "oow" (inverse variance) or "ood" (mask)."""
    found = _PLANE.search(path.name)
    if not found:
        raise DecamHeaderError(f"{path}: not an InstCal file name (_ooi_, _oow_ or _ood_)")
    return found.group(1)


def sibling(path: Path, plane: str) -> Path:
    """The file of another plane of the same CCD (``plane`` one of "ooi", "oow", "ood")."""
    return path.with_name(_PLANE.sub(f"_{plane}_", path.name, count=1))


@dataclass(frozen=True)
class Observation:
    """What the Butler records of one CCD of one exposure."""

    exposure: int
    detector: int
    detector_name: str
    physical_filter: str
    band: str
    day_obs: int
    begin: Time
    exposure_time_s: float
    obs_id: str
    target_name: str
    science_program: str
    observation_type: str
    tracking_ra_deg: float
    tracking_dec_deg: float
    zenith_angle_deg: float
    azimuth_deg: float
    corners_deg: np.ndarray  # (4, 2): RA, Dec of the CCD's corners

    @property
    def end(self) -> Time:
        return self.begin + self.exposure_time_s * u.s


def _card(header: fits.Header, key: str, path: Path):
    if key not in header:
        raise DecamHeaderError(f"{path}: header lacks {key}")
    return header[key]


def ccd_corners(ccd_header: fits.Header) -> np.ndarray:
    """RA, Dec (degrees) of the outer corners of a CCD's pixels, from its WCS (TPV included)."""
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FITSFixedWarning)
        wcs = WCS(ccd_header)
    nx, ny = int(ccd_header["NAXIS1"]), int(ccd_header["NAXIS2"])
    px = np.array([[-0.5, -0.5], [nx - 0.5, -0.5], [nx - 0.5, ny - 0.5], [-0.5, ny - 0.5]])
    return np.column_stack(wcs.all_pix2world(px[:, 0], px[:, 1], 0))


def observation(path: Path, primary: fits.Header, ccd_header: fits.Header) -> Observation:
    """The observation of one InstCal CCD file from its two headers. Raises `DecamHeaderError`."""
    instrument = primary.get("INSTRUME")
    if instrument != NAME:
        raise DecamHeaderError(f"{path}: INSTRUME is {instrument!r}, not {NAME!r}")
    if primary.get("PROCTYPE") != "InstCal":
        raise DecamHeaderError(f"{path}: PROCTYPE is {primary.get('PROCTYPE')!r}, not 'InstCal'")
    ccdnum = int(_card(ccd_header, "CCDNUM", path))
    if not 1 <= ccdnum <= len(CCD_NAMES):
        raise DecamHeaderError(f"{path}: CCDNUM {ccdnum} is not a DECam science CCD (1-{len(CCD_NAMES)})")
    name = CCD_NAMES[ccdnum - 1]
    if ccd_header.get("DETPOS", name) != name:
        raise DecamHeaderError(
            f"{path}: DETPOS {ccd_header['DETPOS']!r} does not match CCDNUM {ccdnum} ({name})"
        )
    try:
        physical, band = physical_filter(_card(primary, "FILTER", path))
    except DecamHeaderError as err:
        raise DecamHeaderError(f"{path}: {err}") from None
    if primary.get("TIMESYS", "UTC") != "UTC":
        raise DecamHeaderError(f"{path}: TIMESYS {primary['TIMESYS']!r}; DATE-OBS is expected in UTC")
    begin = Time(_card(primary, "DATE-OBS", path), format="isot", scale="utc")
    night = str(primary.get("DTCALDAT") or (begin - 12 * u.hour).isot[:10])
    zenith = (
        float(primary["ZD"])
        if "ZD" in primary
        else float(np.degrees(np.arccos(1.0 / float(primary["AIRMASS"]))))
    )
    return Observation(
        exposure=int(_card(primary, "EXPNUM", path)),
        detector=ccdnum,
        detector_name=name,
        physical_filter=physical,
        band=band,
        day_obs=int(night.replace("-", "")),
        begin=begin,
        exposure_time_s=float(_card(primary, "EXPTIME", path)),
        obs_id=str(primary.get("OBSID", primary["EXPNUM"])),
        target_name=str(primary.get("OBJECT", "")),
        science_program=str(primary.get("PROPID", "")),
        observation_type=str(primary.get("OBSTYPE", "object")),
        tracking_ra_deg=Angle(_card(primary, "TELRA", path), unit=u.hourangle).degree,
        tracking_dec_deg=Angle(_card(primary, "TELDEC", path), unit=u.deg).degree,
        zenith_angle_deg=zenith,
        azimuth_deg=float(primary.get("AZ", 0.0)),
        corners_deg=ccd_corners(ccd_header),
    )


def read_observation(path: Path) -> Observation:
    """The observation of an InstCal CCD file (any of its three planes). Raises `DecamHeaderError`."""
    try:
        with fits.open(path) as hdul:
            hdul.verify("exception")
            if len(hdul) < 2 or hdul[1].data is None:
                raise DecamHeaderError(f"{path}: no CCD image in HDU 1")
            return observation(path, hdul[0].header, hdul[1].header)
    except DecamHeaderError:
        raise
    except Exception as exc:  # astropy raises several types for a damaged file
        raise DecamHeaderError(f"{path}: not a readable FITS file ({exc})") from exc


def index_directory(root: Path) -> list[dict]:
    """Every InstCal image file (``*_ooi_*.fits``) under ``root``: path, exposure, CCD, band.

    Only headers are read. A file whose headers cannot be read is listed with
    exposure -1 and the reason, for the visit that misses it to report.
    """
    rows = []
    for path in sorted(root.rglob("*_ooi_*.fits*")):
        try:
            with fits.open(path) as hdul:
                obs = observation(path, hdul[0].header, hdul[1].header)
        except DecamHeaderError as err:
            rows.append({"path": str(path), "exposure": -1, "detector": -1, "band": "", "error": str(err)})
            continue
        except Exception as exc:  # astropy raises several types for a damaged file
            reason = f"{path}: not a readable FITS file ({exc})"
            rows.append({"path": str(path), "exposure": -1, "detector": -1, "band": "", "error": reason})
            continue
        rows.append(
            {
                "path": str(path),
                "exposure": obs.exposure,
                "detector": obs.detector,
                "band": obs.band,
                "error": "",
            }
        )
    return rows
