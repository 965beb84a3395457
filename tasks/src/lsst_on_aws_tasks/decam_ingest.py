"""DECam InstCal into a Butler repository: the instrument's records, then each CCD's three planes together.

``register_decam`` writes DECam's static records (the instrument, its 62
science CCDs, the one-exposure-per-visit visit system) and the InstCal
dataset types: ``instcal_image``, ``instcal_invvar`` and ``instcal_dq``, each
``CCDData`` with dimensions (instrument, exposure, detector). Physical
filters are recorded as ingest meets them (their names are the FILTER cards).

``ingest_decam`` takes a visit's image files (``*_ooi_*``): each must have
its inverse-variance and data-quality files beside it, for the same exposure
and CCD. Every file is checked before anything is written, then the
exposure, visit and region records and the three planes of every CCD go in
together, in one transaction: a bad file leaves the repository as it was.
"""

from __future__ import annotations

from pathlib import Path

from lsst.daf.butler import Butler, CollectionType, DatasetRef, DatasetType, FileDataset, Timespan

from . import decam
from .ingest import (
    FORMATTER,
    RECORD_ELEMENTS,
    VISIT_SYSTEM,
    IngestError,
    add_exposure_records,
    ingest_datasets,
)
from .repo import open_butler

RAW_RUN = f"{decam.NAME}/raw/all"
REFCAT_RUN = "refcats/gaia_dr2"
REFCAT = "gaia_dr2_refcat"
DEFAULTS = f"{decam.NAME}/defaults"
# the Gaia columns the calibration reads
REFCAT_COLUMNS = [
    "source_id", "ra", "dec", "pmra", "pmdec", "parallax", "ref_epoch",
    "phot_g_mean_mag", "phot_bp_mean_mag", "phot_rp_mean_mag",
]  # fmt: skip


def register_decam(repo: str) -> dict:
    """Write DECam's static records, the InstCal dataset types and collections (idempotent)."""
    butler = Butler.from_config(repo, writeable=True)
    reg = butler.registry
    reg.syncDimensionData(
        "instrument",
        {
            "name": decam.NAME,
            "visit_max": 2**25,
            "visit_system": VISIT_SYSTEM,
            "exposure_max": 2**25,
            "detector_max": 100,
            "class_name": "lsst_on_aws_tasks.decam",
        },
    )
    for ccdnum, name in decam.detectors():
        reg.syncDimensionData(
            "detector",
            {
                "instrument": decam.NAME,
                "id": ccdnum,
                "full_name": name,
                "name_in_raft": name,
                "raft": name[0],
                "purpose": "SCIENCE",
            },
        )
    reg.syncDimensionData(
        "visit_system", {"instrument": decam.NAME, "id": VISIT_SYSTEM, "name": "one-to-one"}
    )
    for dataset_type in decam.PLANES.values():
        reg.registerDatasetType(
            DatasetType(
                dataset_type, ("instrument", "exposure", "detector"), "CCDData", universe=butler.dimensions
            )
        )
    reg.registerDatasetType(DatasetType(REFCAT, (), "ArrowAstropy", universe=butler.dimensions))
    reg.registerRun(RAW_RUN)
    reg.registerRun(REFCAT_RUN)
    reg.registerCollection(DEFAULTS, CollectionType.CHAINED)
    reg.setCollectionChain(DEFAULTS, [RAW_RUN, REFCAT_RUN])
    return {
        "instrument": decam.NAME,
        "detectors": [ccdnum for ccdnum, _ in decam.detectors()],
        "dataset_types": sorted([*decam.PLANES.values(), REFCAT]),
        "collections": {"raw": RAW_RUN, "refcat": REFCAT_RUN, "defaults": DEFAULTS},
    }


def _planes(image: Path) -> tuple[decam.Observation, dict[str, Path]]:
    """An image file's observation and its three planes' files, each checked to be the same CCD."""
    if decam.plane_of(image) != "ooi":
        raise IngestError(f"{image}: give the image files (_ooi_); their _oow_ and _ood_ planes come along")
    obs = decam.read_observation(image)
    files = {}
    for plane, dataset_type in decam.PLANES.items():
        path = decam.sibling(image, plane)
        if not path.exists():
            what = {"oow": "inverse-variance", "ood": "data-quality"}[plane]
            raise IngestError(f"{image}: its {what} plane {path.name} is missing")
        if plane != "ooi":
            other = decam.read_observation(path)
            if (other.exposure, other.detector) != (obs.exposure, obs.detector):
                raise IngestError(
                    f"{path}: exposure {other.exposure} CCD {other.detector_name}, but its image {image.name}"
                    f" is exposure {obs.exposure} CCD {obs.detector_name}"
                )
        files[dataset_type] = path
    return obs, files


def decam_records(observations: list[decam.Observation]) -> dict[str, list[dict]]:
    """Dimension records for the exposures of ``observations`` (one visit each), in insertion order."""
    out: dict[str, list[dict]] = {k: [] for k in RECORD_ELEMENTS}
    by_exposure: dict[int, list[decam.Observation]] = {}
    for obs in observations:
        by_exposure.setdefault(obs.exposure, []).append(obs)
    for expnum, members in sorted(by_exposure.items()):
        obs = members[0]
        out["physical_filter"].append(
            {"instrument": decam.NAME, "name": obs.physical_filter, "band": obs.band}
        )
        common = {
            "instrument": decam.NAME,
            "day_obs": obs.day_obs,
            "physical_filter": obs.physical_filter,
            "exposure_time": obs.exposure_time_s,
            "target_name": obs.target_name,
            "observation_reason": "science",
            "science_program": obs.science_program,
            "azimuth": obs.azimuth_deg,
            "zenith_angle": obs.zenith_angle_deg,
            "timespan": Timespan(obs.begin.tai, obs.end.tai),
        }
        exposure = {
            "id": expnum,
            "group": obs.obs_id,
            "obs_id": obs.obs_id,
            "dark_time": obs.exposure_time_s,
            "observation_type": obs.observation_type,
            "seq_num": expnum,
            "seq_start": expnum,
            "seq_end": expnum,
            "tracking_ra": obs.tracking_ra_deg,
            "tracking_dec": obs.tracking_dec_deg,
            "sky_angle": 0.0,
            "has_simulated": False,
            "can_see_sky": True,
        }
        regions = {m.detector: m.corners_deg for m in members}
        add_exposure_records(out, common, exposure, obs.obs_id, regions)
    return out


def ingest_decam(repo: str | Butler, images: list[Path], transfer: str = "copy") -> dict:
    """Register the exposures of ``images`` (InstCal ``_ooi_`` files); ingest their three planes together.
    ``repo`` is the repository's path or a writeable Butler of it.
    """
    if not images:
        raise IngestError("no DECam InstCal image files given")
    checked = []
    for image in images:
        try:
            checked.append(_planes(image))
        except decam.DecamHeaderError as err:
            raise IngestError(str(err)) from None
    butler = open_butler(repo, writeable=True)
    datasets = []
    for obs, files in checked:
        data_id = {"instrument": decam.NAME, "exposure": obs.exposure, "detector": obs.detector}
        for dataset_type, path in files.items():
            ref = DatasetRef(butler.get_dataset_type(dataset_type), data_id, run=RAW_RUN)
            datasets.append(FileDataset(path=str(path.absolute()), refs=[ref], formatter=FORMATTER))
    with butler.transaction():
        for element, rows in decam_records([obs for obs, _ in checked]).items():
            for row in rows:
                butler.registry.syncDimensionData(element, row, update=True)
        new = ingest_datasets(butler, datasets, RAW_RUN, transfer)
    return {
        "run": RAW_RUN,
        "exposures": sorted({obs.exposure for obs, _ in checked}),
        "files": sorted(p.name for _, files in checked for p in files.values()),
        "sources": [
            {
                "exposure": obs.exposure,
                "detector": obs.detector,
                "path": str(files[decam.PLANES["ooi"]]),
            }
            for obs, files in checked
        ],
        "ingested": new,
        "already_present": len(datasets) - new,
    }


def files_of_visit(index: Path, visit: int) -> list[Path]:
    """The InstCal image files of exposure ``visit`` in an index (see `decam.index_directory`).

    Raises `IngestError` naming the visit when there are none, with the
    files whose headers could not be read (one of them may be the visit's).
    """
    import csv

    with open(index, newline="") as f:
        rows = list(csv.DictReader(f))
    files = [Path(r["path"]) for r in rows if int(r["exposure"]) == visit]
    if files:
        return files
    unreadable = [r["error"] for r in rows if int(r["exposure"]) < 0]
    message = f"no DECam InstCal image file has EXPNUM {visit} (visit {visit} of the visit table)"
    if unreadable:
        message += "; these files could not be read: " + "; ".join(unreadable)
    raise IngestError(message)


def ingest_refcat(repo: str, paths: list[Path]) -> dict:
    """Put the Gaia DR2 catalogue files' stars into the repository as one ``gaia_dr2_refcat`` table.

    A catalogue already there is replaced: the files are the truth.
    """
    from astropy.table import Table, vstack

    if not paths:
        raise IngestError("no Gaia catalogue files given (config key data.refcat)")
    tables = []
    for path in paths:
        try:
            table = Table.read(path)
        except Exception as exc:  # astropy raises several types for a damaged file
            raise IngestError(f"{path}: not a readable FITS table ({exc})") from exc
        missing = [c for c in REFCAT_COLUMNS if c not in table.colnames]
        if missing:
            raise IngestError(f"{path}: not a Gaia DR2 catalogue, it lacks {', '.join(missing)}")
        tables.append(table[REFCAT_COLUMNS])
    stars = vstack(tables)
    stars.meta.clear()
    butler = Butler.from_config(repo, writeable=True)
    existing = butler.find_dataset(REFCAT, {}, collections=REFCAT_RUN)
    with butler.transaction():
        if existing is not None:
            butler.pruneDatasets([existing], disassociate=True, unstore=True, purge=True)
        butler.put(stars, REFCAT, {}, run=REFCAT_RUN)
    return {
        "run": REFCAT_RUN,
        "files": [p.name for p in paths],
        "stars": len(stars),
        "replaced": existing is not None,
    }
