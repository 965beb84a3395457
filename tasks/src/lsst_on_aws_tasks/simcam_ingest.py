"""SimCam into a Butler repository: its instrument records, then raws and calibrations.

The LSST stack does this with ``obs_base`` (``butler register-instrument``,
``butler ingest-raws``, ``butler define-visits``); those need ``afw`` and an
``obs_*`` package, which the pip stack does not have. This module does the
same job for SimCam with the Butler's public API: it translates raw FITS
headers into dimension records (exposure, one-to-one visit, visit and
visit-detector regions from the WCS) and ingests the files.
"""

from __future__ import annotations

from pathlib import Path

import astropy.units as u
import numpy as np
from astropy.io import fits
from astropy.time import Time
from astropy.wcs import WCS
from lsst.daf.butler import Butler, CollectionType, DatasetRef, DatasetType, FileDataset, Timespan
from lsst.daf.butler.registry import ConflictingDefinitionError

from . import simcam
from .ingest import (
    FORMATTER,
    RECORD_ELEMENTS,
    VISIT_SYSTEM,
    IngestError,
    add_exposure_records,
    ingest_datasets,
)
from .repo import RepositoryError, open_butler

RAW_RUN = f"{simcam.NAME}/raw/all"


CALIB_RUN = f"{simcam.NAME}/calib"


DEFAULTS = f"{simcam.NAME}/defaults"


def _dataset_types(universe) -> list[DatasetType]:
    return [
        DatasetType("raw", ("instrument", "exposure", "detector"), "CCDData", universe=universe),
        DatasetType("bias", ("instrument", "detector"), "CCDData", universe=universe),
        DatasetType("flat", ("instrument", "physical_filter", "detector"), "CCDData", universe=universe),
    ]


def register_instrument(repo: str, detectors: int = simcam.DETECTORS) -> dict:
    """Write the static dimension records of SimCam with ``detectors`` detectors, its dataset types
    and collections.

    Idempotent: records that already exist with the same values are left as
    they are, so a rerun after a stack change does nothing harmful.

    Raises
    ------
    RepositoryError
        The repository holds SimCam with another count of detectors.
    """
    butler = Butler.from_config(repo, writeable=True)
    reg = butler.registry
    try:
        return _register(reg, butler.dimensions, simcam.detectors(detectors))
    except ConflictingDefinitionError as exc:
        raise RepositoryError(
            f"{repo} holds SimCam with another camera than {detectors} detectors ({exc}). A"
            " repository holds one camera: remove the repository (results/butler/) to start one"
            " with this camera, or set simulation.detectors back."
        ) from exc


def _register(reg, universe, detectors: list[simcam.Detector]) -> dict:
    reg.syncDimensionData(
        "instrument",
        {
            "name": simcam.NAME,
            "visit_max": 10**7,
            "visit_system": VISIT_SYSTEM,
            "exposure_max": 10**7,
            "detector_max": len(detectors),
            "class_name": "lsst_on_aws_tasks.simcam",
        },
    )
    for band in simcam.BANDS:
        reg.syncDimensionData(
            "physical_filter",
            {"instrument": simcam.NAME, "name": simcam.physical_filter(band), "band": band},
        )
    for det in detectors:
        reg.syncDimensionData(
            "detector",
            {
                "instrument": simcam.NAME,
                "id": det.id,
                "full_name": det.name,
                "name_in_raft": det.name,
                "raft": "R00",
                "purpose": "SCIENCE",
            },
        )
    reg.syncDimensionData(
        "visit_system", {"instrument": simcam.NAME, "id": VISIT_SYSTEM, "name": "one-to-one"}
    )
    for dt in _dataset_types(universe):
        reg.registerDatasetType(dt)
    for run in (RAW_RUN, CALIB_RUN):
        reg.registerRun(run)
    reg.registerCollection(DEFAULTS, CollectionType.CHAINED)
    reg.setCollectionChain(DEFAULTS, [RAW_RUN, CALIB_RUN])
    return {
        "instrument": simcam.NAME,
        "detectors": [d.id for d in detectors],
        "physical_filters": [simcam.physical_filter(b) for b in simcam.BANDS],
        "collections": {"raw": RAW_RUN, "calib": CALIB_RUN, "defaults": DEFAULTS},
    }


def _read_header(path: Path) -> fits.Header:
    try:
        with fits.open(path) as hdul:
            hdul.verify("exception")
            header = hdul[0].header
            if hdul[0].data is None:
                raise IngestError(f"{path}: the primary HDU holds no image")
            return header
    except IngestError:
        raise
    except Exception as exc:  # astropy raises several types for a damaged file
        raise IngestError(f"{path}: not a readable FITS file ({exc})") from exc


def _check_instrument(path: Path, header: fits.Header) -> None:
    instrument = header.get("INSTRUME")
    if instrument != simcam.NAME:
        raise IngestError(
            f"{path}: INSTRUME is {instrument!r}, not {simcam.NAME!r}; this repository is for SimCam"
        )


def _detector_corners(header: fits.Header) -> np.ndarray:
    wcs = WCS(header)
    # the imaging area: the header's WCS and DATASEC describe it, the overscan lies beyond
    nx, ny = header["NAXIS1"] - simcam.OVERSCAN, header["NAXIS2"]
    px = np.array([[-0.5, -0.5], [nx - 0.5, -0.5], [nx - 0.5, ny - 0.5], [-0.5, ny - 0.5]])
    return np.column_stack(wcs.all_pix2world(px[:, 0], px[:, 1], 0))


def raw_records(headers: list[tuple[Path, fits.Header]]) -> dict[str, list[dict]]:
    """Dimension records for the SimCam exposures in ``headers`` (one visit per exposure).

    Returns records keyed by dimension element, in the order they must be
    inserted.
    """
    out: dict[str, list[dict]] = {k: [] for k in RECORD_ELEMENTS}
    by_exposure: dict[int, list[tuple[Path, fits.Header]]] = {}
    for path, h in headers:
        by_exposure.setdefault(int(h["EXPNUM"]), []).append((path, h))
    for expnum, members in sorted(by_exposure.items()):
        h = members[0][1]
        begin = Time(h["DATE-OBS"], format="isot", scale="tai")
        physical = h["FILTER"]
        simcam.band_of(physical)  # raises for an unknown filter
        common = {
            "instrument": simcam.NAME,
            "day_obs": int(h["DAYOBS"]),
            "physical_filter": physical,
            "exposure_time": float(h["EXPTIME"]),
            "target_name": h.get("OBJECT", ""),
            "observation_reason": "science",
            "science_program": "simulation",
            "azimuth": 0.0,
            "zenith_angle": 30.0,
            "timespan": Timespan(begin, begin + float(h["EXPTIME"]) * u.s),
        }
        exposure = {
            "id": expnum,
            "group": h["OBSID"],
            "obs_id": h["OBSID"],
            "dark_time": float(h["EXPTIME"]),
            "observation_type": h["OBSTYPE"],
            "seq_num": expnum,
            "seq_start": expnum,
            "seq_end": expnum,
            "tracking_ra": float(h["TELRA"]),
            "tracking_dec": float(h["TELDEC"]),
            "sky_angle": 0.0,
            "has_simulated": True,
            "can_see_sky": True,
        }
        regions = {int(hh["CCDNUM"]): _detector_corners(hh) for _, hh in members}
        add_exposure_records(out, common, exposure, h["OBSID"], regions)
    return out


def ingest_raws(repo: str | Butler, paths: list[Path], transfer: str = "copy") -> dict:
    """Register exposures and visits from raw headers, then ingest the raw files.

    All files are checked before anything is written, and the ingest is one
    transaction, so a bad file leaves the repository as it was. ``repo`` is
    the repository's path or a writeable Butler of it.
    """
    if not paths:
        raise IngestError("no raw FITS files given")
    headers = []
    for path in paths:
        header = _read_header(path)
        _check_instrument(path, header)
        missing = [
            k for k in ("EXPNUM", "CCDNUM", "FILTER", "DATE-OBS", "EXPTIME", "OBSID") if k not in header
        ]
        if missing:
            raise IngestError(f"{path}: header lacks {', '.join(missing)}")
        headers.append((path, header))
    records = raw_records(headers)
    butler = open_butler(repo, writeable=True)
    with butler.transaction():
        for element, rows in records.items():
            for row in rows:
                butler.registry.syncDimensionData(element, row, update=True)
    raw_type = butler.get_dataset_type("raw")
    datasets = [
        FileDataset(
            path=str(path.absolute()),
            refs=[
                DatasetRef(
                    raw_type,
                    {"instrument": simcam.NAME, "exposure": int(h["EXPNUM"]), "detector": int(h["CCDNUM"])},
                    run=RAW_RUN,
                )
            ],
            formatter=FORMATTER,
        )
        for path, h in headers
    ]
    new = ingest_datasets(butler, datasets, RAW_RUN, transfer)
    return {
        "run": RAW_RUN,
        "exposures": sorted({int(h["EXPNUM"]) for _, h in headers}),
        "files": [p.name for p, _ in headers],
        "sources": [
            {"exposure": int(h["EXPNUM"]), "detector": int(h["CCDNUM"]), "path": str(p)} for p, h in headers
        ],
        "ingested": new,
        "already_present": len(datasets) - new,
    }


def ingest_calibs(repo: str, paths: list[Path], transfer: str = "copy") -> dict:
    """Ingest master bias and flat frames, keyed by their headers."""
    butler = Butler.from_config(repo, writeable=True)
    datasets = []
    for path in paths:
        h = _read_header(path)
        _check_instrument(path, h)
        kind = h.get("OBSTYPE")
        data_id = {"instrument": simcam.NAME, "detector": int(h["CCDNUM"])}
        if kind == "flat":
            simcam.band_of(h["FILTER"])
            data_id["physical_filter"] = h["FILTER"]
        elif kind != "bias":
            raise IngestError(f"{path}: OBSTYPE {kind!r} is neither 'bias' nor 'flat'")
        ref = DatasetRef(butler.get_dataset_type(kind), data_id, run=CALIB_RUN)
        datasets.append(FileDataset(path=str(path.absolute()), refs=[ref], formatter=FORMATTER))
    new = ingest_datasets(butler, datasets, CALIB_RUN, transfer)
    return {"run": CALIB_RUN, "files": [p.name for p in paths], "ingested": new}
