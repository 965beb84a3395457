"""What every instrument's ingest shares: the exposure and visit records of one exposure (with its
sky regions), and files into a RUN in one transaction.
"""

from __future__ import annotations

from pathlib import Path

import astropy.units as u
import numpy as np
from astropy.time import Time
from lsst.daf.butler import Butler, FileDataset, Timespan
from lsst.sphgeom import ConvexPolygon, LonLat, UnitVector3d


class IngestError(RuntimeError):
    """A file cannot be ingested; the message names the file and the reason."""


VISIT_SYSTEM = 0  # one exposure per visit


FORMATTER = "lsst_on_aws_tasks.formatters.CCDDataFitsFormatter"


def polygon(corners_deg: np.ndarray) -> ConvexPolygon:
    return ConvexPolygon([UnitVector3d(LonLat.fromDegrees(float(r), float(d))) for r, d in corners_deg])


RECORD_ELEMENTS = (
    "physical_filter",
    "day_obs",
    "group",
    "exposure",
    "visit",
    "visit_definition",
    "visit_system_membership",
    "visit_detector_region",
)


def add_exposure_records(
    out: dict[str, list[dict]],
    common: dict,
    exposure: dict,
    visit_name: str,
    regions: dict[int, np.ndarray],
) -> None:
    """Append one exposure's records to ``out`` (keyed by `RECORD_ELEMENTS`): its night, group, exposure,
    its one-to-one visit and the visit's and each detector's region on the sky.

    ``common`` holds the fields exposure and visit share (instrument,
    day_obs, physical_filter, timespan, ...), ``exposure`` the exposure's own
    (id, group, obs_id, ...), ``regions`` each detector's corners (RA, Dec).
    """
    instrument, expnum, night = common["instrument"], exposure["id"], str(common["day_obs"])
    day_start = Time(f"{night[:4]}-{night[4:6]}-{night[6:]}T12:00:00", scale="tai")
    out["day_obs"].append(
        {
            "instrument": instrument,
            "id": common["day_obs"],
            "timespan": Timespan(day_start, day_start + 1 * u.day),
        }
    )
    out["group"].append({"instrument": instrument, "name": exposure["group"]})
    out["exposure"].append(common | exposure)
    corners = np.vstack(list(regions.values()))
    out["visit"].append(
        common | {"id": expnum, "name": visit_name, "seq_num": expnum, "region": polygon(corners)}
    )
    out["visit_definition"].append({"instrument": instrument, "exposure": expnum, "visit": expnum})
    out["visit_system_membership"].append(
        {"instrument": instrument, "visit_system": VISIT_SYSTEM, "visit": expnum}
    )
    for detector, det_corners in sorted(regions.items()):
        out["visit_detector_region"].append(
            {"instrument": instrument, "visit": expnum, "detector": detector, "region": polygon(det_corners)}
        )


def _changed(stored, path: Path) -> bool:
    """Whether the repository's copy of a file (a ``ResourcePath``) holds other bytes than ``path``."""
    return stored.size() != path.stat().st_size or stored.read() != path.read_bytes()


def ingest_datasets(butler: Butler, datasets: list[FileDataset], run: str, transfer: str) -> int:
    """Ingest files not yet in ``run``, or whose content changed since; returns how many were ingested.

    A dataset already there from the same bytes (a retry, a rerun of an
    unchanged visit) is kept. One whose file now holds other bytes (a
    re-simulated visit) is replaced: with ``copy`` or ``hardlink`` the
    repository keeps its own copy, which would otherwise be processed in
    place of the new file. A ``direct`` or ``symlink`` ingest reads the
    file where it is, so its stored content is always the file's.
    """
    todo, stale = [], []
    for ds in datasets:
        ref = ds.refs[0]
        existing = butler.find_dataset(ref.datasetType, ref.dataId, collections=run)
        if existing is None:
            todo.append(ds)
        elif _changed(butler.getURI(existing), Path(ds.path)):
            stale.append(existing)
            todo.append(ds)
    if stale:
        butler.pruneDatasets(stale, disassociate=True, unstore=True, purge=True)
    if todo:
        butler.ingest(*todo, transfer=transfer)
    return len(todo)
