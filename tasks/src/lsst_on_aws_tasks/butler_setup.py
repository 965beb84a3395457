"""Butler repository setup for SimCam: instrument records, raw and calibration ingest.

The LSST stack does this with ``obs_base`` (``butler register-instrument``,
``butler ingest-raws``, ``butler define-visits``); those need ``afw`` and an
``obs_*`` package, which the pip stack does not have. This module does the
same job for SimCam with the Butler's public API: it translates raw FITS
headers into dimension records (exposure, one-to-one visit, visit and
visit-detector regions from the WCS) and ingests the files.

Run it inside the stack environment::

    python -m lsst_on_aws_tasks.butler_setup create-repo REPO --seed-config YAML \\
        [--registry sqlite|postgresql://...] [--namespace SCHEMA] --output JSON
    python -m lsst_on_aws_tasks.butler_setup register-instrument REPO --output JSON
    python -m lsst_on_aws_tasks.butler_setup ingest-calibs REPO FILE... --output JSON
    python -m lsst_on_aws_tasks.butler_setup ingest-raws REPO FILE... --output JSON
    python -m lsst_on_aws_tasks.butler_setup ingest-raws REPO --instrument DECam --index CSV --visit V \\
        --output JSON
    python -m lsst_on_aws_tasks.butler_setup ingest-refcat REPO GAIA_FITS... --output JSON
    python -m lsst_on_aws_tasks.butler_setup register-dataset-types REPO PIPELINE --output JSON
    python -m lsst_on_aws_tasks.butler_setup remove-run REPO RUN
    python -m lsst_on_aws_tasks.butler_setup set-chain REPO CHAIN --summaries JSON... --output JSON

``ingest-raws`` ingests one visit's files. A file it cannot take (damaged,
another instrument, headers missing) does not fail the command: the record
it writes says ``"status": "failed"`` with the reason, which names the file,
and the visit's processing reports it. Every other command fails with exit
status 2 and one line naming what is wrong (a file, the registry).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

import astropy.units as u
import numpy as np
from astropy.io import fits
from astropy.time import Time
from astropy.wcs import WCS
from lsst.daf.butler import (
    Butler,
    CollectionType,
    Config,
    DatasetRef,
    DatasetType,
    FileDataset,
    MissingCollectionError,
    Timespan,
)
from lsst.sphgeom import ConvexPolygon, LonLat, UnitVector3d

from . import simcam
from .errors import IngestError, RepositoryError

RAW_RUN = f"{simcam.NAME}/raw/all"
CALIB_RUN = f"{simcam.NAME}/calib"
DEFAULTS = f"{simcam.NAME}/defaults"
VISIT_SYSTEM = 0  # one exposure per visit
FORMATTER = "lsst_on_aws_tasks.formatters.CCDDataFitsFormatter"


def _dataset_types(universe) -> list[DatasetType]:
    return [
        DatasetType("raw", ("instrument", "exposure", "detector"), "CCDData", universe=universe),
        DatasetType("bias", ("instrument", "detector"), "CCDData", universe=universe),
        DatasetType("flat", ("instrument", "physical_filter", "detector"), "CCDData", universe=universe),
    ]


def create_repo(repo: str, seed_config: str, registry: str = "sqlite", namespace: str = "") -> dict:
    """Create a repository, or adopt the one already at ``repo``.

    ``registry`` is "sqlite" (a file in the repository) or a PostgreSQL URL,
    whose tables go in schema ``namespace``. An existing repository is never
    overwritten: it holds every earlier run's outputs. It is opened to prove
    it is usable and reused, provided it uses the registry asked for.
    """
    root = Path(repo)
    if (root / "butler.yaml").exists():
        butler = Butler.from_config(repo)
        action = "reused"
        db = str(butler._config["registry", "db"])
        if (registry == "sqlite") != db.startswith("sqlite") or (registry != "sqlite" and db != registry):
            raise RepositoryError(
                f"the repository {repo} uses the registry {db}, but the config asks for {registry};"
                " registries are not switched under an existing repository: use a new butler.repo"
            )
    else:
        config = Config(seed_config)
        if registry != "sqlite":
            config["registry", "db"] = registry
            config["registry", "namespace"] = namespace
        Butler.makeRepo(repo, config=config)
        butler = Butler.from_config(repo)
        action = "created"
    return {
        "repo": str(root.absolute()),
        "action": action,
        "registry": str(butler._config["registry", "db"]),
        "namespace": str(butler._config.get(("registry", "namespace"), "") or ""),
        "dimension_universe": f"{butler.dimensions.namespace}:{butler.dimensions.version}",
    }


def register_dataset_types(repo: str, pipeline_file: str) -> dict:
    """Register the dataset types a pipeline reads and writes, once, before any run.

    Registering them here, in one job, keeps concurrent ``pipetask`` runs
    from racing to insert the same definitions. A pipeline that does not
    write what the per-visit export reads is refused here, before any visit
    runs (raises `RepositoryError`).
    """
    from lsst.pipe.base import Pipeline

    from .export import EXPORTED_DATASETS

    butler = Butler.from_config(repo, writeable=True)
    graph = Pipeline.from_uri(pipeline_file).to_graph(registry=butler.registry)
    missing = [name for name in EXPORTED_DATASETS if name not in graph.dataset_types]
    if missing:
        raise RepositoryError(
            f"pipeline {os.path.expandvars(pipeline_file)} does not write {', '.join(missing)}, which the"
            " per-visit export reads (config key pipeline.file; see README, A stack's own pipeline)"
        )
    graph.register_dataset_types(butler, include_packages=True)
    return {
        "pipeline": os.path.expandvars(pipeline_file),  # a stack's, as resolved in it
        "tasks": sorted(graph.tasks.keys()),
        "dataset_types": sorted(graph.dataset_types.keys()),
    }


def register_instrument(repo: str) -> dict:
    """Write SimCam's static dimension records, dataset types and collections.

    Idempotent: records that already exist with the same values are left as
    they are, so a rerun after a stack change does nothing harmful.
    """
    butler = Butler.from_config(repo, writeable=True)
    reg = butler.registry
    detectors = simcam.detectors()
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
    for dt in _dataset_types(butler.dimensions):
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


def _polygon(corners_deg: np.ndarray) -> ConvexPolygon:
    return ConvexPolygon([UnitVector3d(LonLat.fromDegrees(float(r), float(d))) for r, d in corners_deg])


def _detector_corners(header: fits.Header) -> np.ndarray:
    wcs = WCS(header)
    nx, ny = simcam.NX, simcam.NY
    px = np.array([[-0.5, -0.5], [nx - 0.5, -0.5], [nx - 0.5, ny - 0.5], [-0.5, ny - 0.5]])
    return np.column_stack(wcs.all_pix2world(px[:, 0], px[:, 1], 0))


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
        common | {"id": expnum, "name": visit_name, "seq_num": expnum, "region": _polygon(corners)}
    )
    out["visit_definition"].append({"instrument": instrument, "exposure": expnum, "visit": expnum})
    out["visit_system_membership"].append(
        {"instrument": instrument, "visit_system": VISIT_SYSTEM, "visit": expnum}
    )
    for detector, det_corners in sorted(regions.items()):
        out["visit_detector_region"].append(
            {"instrument": instrument, "visit": expnum, "detector": detector, "region": _polygon(det_corners)}
        )


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


def _ingest(butler: Butler, datasets: list[FileDataset], run: str, transfer: str) -> int:
    """Ingest files not yet in ``run``; returns how many were new."""
    todo = []
    for ds in datasets:
        ref = ds.refs[0]
        existing = butler.find_dataset(ref.datasetType, ref.dataId, collections=run)
        if existing is None:
            todo.append(ds)
    if todo:
        butler.ingest(*todo, transfer=transfer)
    return len(todo)


def ingest_raws(repo: str, paths: list[Path], transfer: str = "copy") -> dict:
    """Register exposures and visits from raw headers, then ingest the raw files.

    All files are checked before anything is written, and the ingest is one
    transaction, so a bad file leaves the repository as it was.
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
    butler = Butler.from_config(repo, writeable=True)
    with butler.transaction():
        for element, rows in records.items():
            for row in rows:
                butler.registry.syncDimensionData(element, row)
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
    new = _ingest(butler, datasets, RAW_RUN, transfer)
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
    new = _ingest(butler, datasets, CALIB_RUN, transfer)
    return {"run": CALIB_RUN, "files": [p.name for p in paths], "ingested": new}


def remove_run(repo: str, run: str) -> bool:
    """Remove a RUN collection and its datasets, if it exists (from any chain too)."""
    butler = Butler.from_config(repo, writeable=True)
    try:
        butler.registry.getCollectionType(run)
    except MissingCollectionError:
        return False
    for parent in butler.registry.getCollectionParentChains(run):
        chain = [c for c in butler.registry.getCollectionChain(parent) if c != run]
        butler.registry.setCollectionChain(parent, chain)
    butler.removeRuns([run])
    return True


def set_chain(repo: str, chain: str, runs: list[str], inputs: str = DEFAULTS) -> list[str]:
    """Define ``chain`` as ``runs`` (newest first) followed by the inputs."""
    butler = Butler.from_config(repo, writeable=True)
    butler.registry.registerCollection(chain, CollectionType.CHAINED)
    children = [*runs, inputs]
    butler.registry.setCollectionChain(chain, children)
    return list(butler.registry.getCollectionChain(chain))


def chain_visits(repo: str, chain: str, summary_paths: list[Path], inputs: str = DEFAULTS) -> dict:
    """Chain the RUNs of the visits whose processing succeeded, in the given order.

    A failed visit's RUN (whatever its attempt left) stays out of the chain,
    so the chain holds only complete results; the record lists what was left
    out and why.
    """
    runs, failed = [], {}
    for path in summary_paths:
        summary = json.loads(path.read_text())
        if summary.get("status", "ok") == "ok":
            runs.append(summary["run"])
        else:
            failed[summary["run"]] = summary.get("reason", "")
    return {"chain": chain, "children": set_chain(repo, chain, runs, inputs), "left_out": failed}


def _main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m lsst_on_aws_tasks.butler_setup", description=__doc__.split("\n")[0]
    )
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("create-repo")
    p.add_argument("repo")
    p.add_argument("--seed-config", required=True)
    p.add_argument("--registry", default="sqlite", help='"sqlite" or a postgresql:// URL')
    p.add_argument("--namespace", default="", help="PostgreSQL schema of the registry's tables")
    p.add_argument("--output", type=Path, required=True)
    p = sub.add_parser("register-dataset-types")
    p.add_argument("repo")
    p.add_argument("pipeline")
    p.add_argument("--output", type=Path, required=True)
    p = sub.add_parser("register-instrument")
    p.add_argument("repo")
    p.add_argument("--instrument", default=simcam.NAME, choices=[simcam.NAME, "DECam"])
    p.add_argument("--output", type=Path, required=True)
    for name in ("ingest-raws", "ingest-calibs"):
        p = sub.add_parser(name)
        p.add_argument("repo")
        p.add_argument("files", nargs="*", type=Path)
        p.add_argument("--transfer", default="copy")
        p.add_argument("--output", type=Path, required=True)
        if name == "ingest-raws":
            p.add_argument("--instrument", default=simcam.NAME, choices=[simcam.NAME, "DECam"])
            p.add_argument("--index", type=Path, help="DECam: the index of InstCal files (instead of files)")
            p.add_argument("--visit", type=int, help="DECam: the visit (EXPNUM) to ingest from the index")
    p = sub.add_parser("ingest-refcat")
    p.add_argument("repo")
    p.add_argument("files", nargs="+", type=Path)
    p.add_argument("--output", type=Path, required=True)
    p = sub.add_parser("remove-run")
    p.add_argument("repo")
    p.add_argument("run")
    p = sub.add_parser("set-chain")
    p.add_argument("repo")
    p.add_argument("chain")
    p.add_argument("--summaries", nargs="+", type=Path, required=True)
    p.add_argument("--inputs", default=DEFAULTS, help="the instrument's input collection, chained last")
    p.add_argument("--output", type=Path, required=True)
    args = parser.parse_args(argv)
    try:
        if args.command == "create-repo":
            result = create_repo(args.repo, args.seed_config, args.registry, args.namespace)
        elif args.command == "register-dataset-types":
            result = register_dataset_types(args.repo, args.pipeline)
        elif args.command == "register-instrument":
            if args.instrument == "DECam":
                from .decam_ingest import register_decam

                result = register_decam(args.repo)
            else:
                result = register_instrument(args.repo)
        elif args.command == "ingest-raws":
            files = list(args.files)
            try:
                if args.instrument == "DECam":
                    from .decam_ingest import files_of_visit, ingest_decam

                    files = files_of_visit(args.index, args.visit)
                    result = {"status": "ok", **ingest_decam(args.repo, files, args.transfer)}
                else:
                    result = {"status": "ok", **ingest_raws(args.repo, files, args.transfer)}
            except IngestError as exc:
                # a visit's bad file is that visit's outcome, not the workflow's
                # failure: recorded here, reported in the summary
                print(f"error: {exc}", file=sys.stderr)
                result = {"status": "failed", "error": str(exc), "files": [p.name for p in files]}
        elif args.command == "ingest-refcat":
            from .decam_ingest import ingest_refcat

            result = ingest_refcat(args.repo, args.files)
        elif args.command == "ingest-calibs":
            result = ingest_calibs(args.repo, args.files, args.transfer)
        elif args.command == "remove-run":
            removed = remove_run(args.repo, args.run)
            print(f"{'removed' if removed else 'no'} run {args.run}")
            return 0
        else:
            result = chain_visits(args.repo, args.chain, args.summaries, args.inputs)
    except (IngestError, RepositoryError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(result, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(_main())
