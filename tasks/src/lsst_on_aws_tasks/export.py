"""Export a processed visit from the Butler into plain files for the workflow.

A visit that could not be processed gets the same two files: a summary
saying ``"status": "failed"`` and why, and an empty source catalogue.

After ``pipetask`` has run a visit into its own RUN collection, this reads
the visit summary and the per-detector source catalogues back through the
Butler and writes them as JSON and parquet, so the workflow's summary and
report (which run outside the LSST stack) never open the repository.

    python -m lsst_on_aws_tasks.export REPO RUN VISIT --summary JSON --sources PARQUET
"""

from __future__ import annotations

import argparse
import json
import sys
from datetime import datetime
from pathlib import Path

import numpy as np
from astropy.table import Table, vstack
from lsst.daf.butler import Butler, MissingCollectionError

from . import simcam
from .repo import open_butler

# what the per-visit export reads from a visit's RUN: the pipeline must write them
EXPORTED_DATASETS = ("visit_summary_stats", "visit_summary", "single_visit_source", "preliminary_visit_image")


def export_visit(
    repo: str | Butler,
    run: str,
    visit: int,
    summary_path: Path,
    sources_path: Path,
    instrument: str = simcam.NAME,
    preview_path: Path | None = None,
) -> dict:
    """Write the visit's summary (JSON), its sources (parquet) and, with ``preview_path``, a preview
    of its images (FITS, see :func:`write_preview`); return the summary."""
    butler = open_butler(repo)
    data_id = {"instrument": instrument, "visit": visit}
    stats = dict(butler.get("visit_summary_stats", data_id, collections=[run]))
    per_detector = butler.get("visit_summary", data_id, collections=[run])
    # each type queried once, for its count and, for those read back (EXPORTED_DATASETS), its
    # datasets: a processed visit has those, and none raises EmptyQueryResultError (explain)
    refs = {
        name: butler.query_datasets(
            name,
            collections=run,
            data_id=data_id,
            explain=name in EXPORTED_DATASETS,
        )
        for name in ("post_isr_image", "preliminary_visit_image", "single_visit_source", "detector_summary")
    }
    by_detector = sorted(refs["single_visit_source"], key=lambda r: r.dataId["detector"])
    tables = [butler.get(ref) for ref in by_detector]
    sources = vstack(tables) if tables else None
    counts = {name: len(found) for name, found in refs.items()}
    result = {
        "visit": visit,
        "run": run,
        "status": "ok",
        "reason": "",
        **stats,
        "detectors": [dict(zip(per_detector.colnames, row, strict=True)) for row in per_detector.iterrows()],
        "datasets": counts,
    }
    summary_path.parent.mkdir(parents=True, exist_ok=True)
    summary_path.write_text(json.dumps(result, indent=2, default=_jsonable) + "\n")
    if sources is not None:
        sources.meta.clear()
        sources.write(sources_path, format="parquet", overwrite=True)
    if preview_path is not None:
        images = refs["preliminary_visit_image"]
        write_preview({ref.dataId["detector"]: butler.get(ref).data for ref in images}, preview_path)
    return result


PREVIEW_SIZE = 256


def write_preview(images: dict[int, np.ndarray], path: Path, size: int = PREVIEW_SIZE) -> None:
    """The background-subtracted images, binned to at most ``size`` pixels a side, one HDU a detector.

    Each HDU's ``BIN`` says by how much it was binned (block means), so that
    source positions (full-resolution pixels) can be drawn on it. No images
    (a failed visit): a primary HDU only.
    """
    from astropy.io import fits
    from astropy.nddata import block_reduce

    hdus = [fits.PrimaryHDU()]
    for detector, data in sorted(images.items()):
        factor = max(1, -(-max(data.shape) // size))
        binned = block_reduce(np.nan_to_num(np.asarray(data, dtype=np.float32)), factor, func=np.mean)
        hdu = fits.ImageHDU(binned.astype(np.float32), name=f"DET{detector}")
        hdu.header["DETECTOR"] = (int(detector), "detector id")
        hdu.header["BIN"] = (factor, "pixels of the image per preview pixel, a side")
        hdus.append(hdu)
    path.parent.mkdir(parents=True, exist_ok=True)
    fits.HDUList(hdus).writeto(path, overwrite=True)


def write_failed_visit(
    visit: int,
    run: str,
    reason: str,
    failures: list[dict],
    summary_path: Path,
    sources_path: Path,
    preview_path: Path | None = None,
) -> dict:
    """Record a visit that could not be processed: why, and an empty source catalogue.

    The summary keeps the shape of a processed visit's, with ``status``
    "failed", the one-line ``reason`` and, when pipetask ran, its failed
    quanta; the numbers are absent.
    """
    result = {
        "visit": visit,
        "run": run,
        "status": "failed",
        "reason": reason,
        "failed_quanta": failures,
        "n_detectors": 0,
        "n_sources": 0,
        "detectors": [],
        "datasets": {},
    }
    summary_path.parent.mkdir(parents=True, exist_ok=True)
    summary_path.write_text(json.dumps(result, indent=2) + "\n")
    empty = Table({"visit": np.zeros(0, dtype=np.int64), "detector": np.zeros(0, dtype=np.int64)})
    empty.write(sources_path, format="parquet", overwrite=True)
    if preview_path is not None:
        write_preview({}, preview_path)
    return result


def quantum_timings(repo: str | Butler, run: str) -> list[dict]:
    """Per-quantum run time, CPU time and peak memory, from the ``<label>_metadata`` datasets of ``run``.

    The executor records, for each quantum, the UTC time, process CPU time
    and peak RSS (bytes) at its start and end. One record per quantum:
    ``task_label``, ``detector`` (absent for visit-level tasks), ``node``,
    ``start`` and ``end`` (UTC ISO), ``wall_s``, ``cpu_s`` and ``max_rss_mb``.
    An empty list when the run holds no metadata (pipetask never ran).
    """
    butler = open_butler(repo)
    try:
        butler.collections.get_info(run)
    except MissingCollectionError:
        return []
    records = []
    for dataset_type in butler.registry.queryDatasetTypes("*_metadata"):
        for ref in butler.query_datasets(dataset_type, collections=run, explain=False):
            quantum = butler.get(ref)["quantum"]
            start, end = quantum["startUtc"], quantum["endUtc"]
            records.append(
                {
                    "task_label": dataset_type.name.removesuffix("_metadata"),
                    "detector": ref.dataId.mapping.get("detector"),
                    "node": quantum.get("nodeName", ""),
                    "start": start,
                    "end": end,
                    "wall_s": (datetime.fromisoformat(end) - datetime.fromisoformat(start)).total_seconds(),
                    "cpu_s": quantum["endCpuTime"] - quantum["startCpuTime"],
                    "max_rss_mb": quantum["endMaxResidentSetSize"] / 2**20,
                }
            )
    return sorted(records, key=lambda r: (r["start"], r["task_label"]))


def write_quantum_timings(repo: str | Butler | None, run: str, path: Path) -> list[dict]:
    """Write :func:`quantum_timings` of ``run`` as JSON (an empty list when ``repo`` is None)."""
    records = quantum_timings(repo, run) if repo is not None else []
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(records, indent=1) + "\n")
    return records


def _jsonable(value):
    if hasattr(value, "item"):
        return value.item()
    raise TypeError(f"cannot write {type(value).__name__} as JSON")


def _main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m lsst_on_aws_tasks.export", description=__doc__.split("\n")[0]
    )
    parser.add_argument("repo")
    parser.add_argument("run")
    parser.add_argument("visit", type=int)
    parser.add_argument("--summary", type=Path, required=True)
    parser.add_argument("--sources", type=Path, required=True)
    parser.add_argument("--instrument", default=simcam.NAME)
    args = parser.parse_args(argv)
    export_visit(args.repo, args.run, args.visit, args.summary, args.sources, args.instrument)
    return 0


if __name__ == "__main__":
    sys.exit(_main())
