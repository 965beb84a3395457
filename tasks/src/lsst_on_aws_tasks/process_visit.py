"""Process a batch of visits in one process: for each, ingest its raws, clear its RUN, run its quanta,
export, record.

The workflow's ``process_batch`` rule runs, inside the stack::

    python -m lsst_on_aws_tasks.process_visit REPO --output-prefix CHAIN --visits V [V ...] \\
        --instrument NAME --inputs COLLECTION --pipeline YAML [-c LABEL:KEY=VALUE ...] \\
        (--raw-dir DIR | --index CSV) [--transfer MODE] --visits-dir DIR --record JSON

and writes, for each visit, ``VISITS_DIR/<visit>/`` with ``ingest.json``,
``summary.json``, ``sources.parquet``, ``preview.fits``, ``quanta.json``,
``job.json`` and ``report.json`` (what an earlier attempt left in the visit's
folder is removed first), then, last, the batch's record ``JSON``, which lists
the visits. The visits run one after another; the middleware's imports (about
3-4 s), the Butler, the resolved pipeline and the software versions are paid
once per batch, not once per visit (:class:`~.executor.BatchExecutor`). For
each visit, into RUN ``CHAIN/<visit>``:

1. The visit's raw files (SimCam: ``RAW_DIR/<visit>/*.fits``; DECam: the
   InstCal files the index lists for its EXPNUM) are ingested into the raw
   RUN, in one transaction; files already there from the same bytes are
   kept, files whose content changed are replaced. If the ingest fails (a
   damaged file, another instrument), the visit fails at once with that
   reason, and nothing of it enters the repository.
2. The visit's quantum graph is built. A RUN an earlier, interrupted attempt
   at the same work left (the same input datasets, configs and software) is
   resumed: its complete quanta are skipped, partial outputs removed. Any
   other RUN of that name is removed first, with all it holds, so a retry
   never meets its own debris.
3. The visit's quanta run into that RUN, as ``pipetask run`` would (the
   middleware's own quantum executor), ``--processes`` detectors at a time,
   through a quantum-backed Butler, as BPS's ``run-qbb`` jobs do: their
   datasets are registered together when the visit ends, not one at a time.
4. On success the visit summary and source catalogues are read back
   through the Butler into ``summary.json`` and ``sources.parquet``.
5. A quantum that raises a ``RepeatableQuantumError`` (LSST's class for
   "this data cannot be processed by this algorithm"; ``AlgorithmError``
   derives from it) fails for a reason in its data: the visit's other
   quanta still run, those needing its outputs do not, and the visit is
   recorded as failed: ``summary.json`` says ``"status": "failed"``, naming
   each failed quantum, its exception and the file its detector was read
   from, ``sources.parquet`` is an empty catalogue, and the batch goes on to
   its next visit. Any other failure (memory, a lost node, a bug) fails the
   whole batch, and the workflow's retries apply to it. ``report.json``
   gives the status of each quantum.

``quanta.json`` lists each quantum's task label, detector, node, start, end,
run time, CPU time and peak memory, from the ``<label>_metadata`` datasets
the quanta wrote (also for a visit that failed part-way; empty when none
ran). ``job.json`` records the Slurm job id (empty outside Slurm), the
host, the batch, and the visit's own start, end (UTC), wall time, CPU time and
the process's peak memory so far; ``batch.json`` the same for the whole batch.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import socket
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

from lsst.daf.butler import Butler

from . import export
from .executor import BatchExecutor, ProcessingError
from .ingest import IngestError


def input_files(raws: dict, data_id: dict) -> list[str]:
    """The files a failed quantum's detector was ingested from (its ingest record's ``sources``), as
    the ingest was given them: relative to the workflow's folder for data inside it, as in the ingest's
    own errors.
    """
    return [
        source["path"]
        for source in raws.get("sources", [])
        if source["exposure"] == data_id.get("visit") and source["detector"] == data_id.get("detector")
    ]


def failure_reason(failures: list[dict], limit: int = 3) -> str:
    """One line naming the failed quanta, why, and the files they read, for the summary table."""
    parts = []
    for failure in failures[:limit]:
        where = ", ".join(f"{k} {v}" for k, v in failure["data_id"].items() if k not in ("instrument",))
        kind = failure["exception"].rpartition(".")[2]
        files = f" (file {', '.join(failure['files'])})" if failure.get("files") else ""
        parts.append(f"{failure['task']} ({where}): {kind}: {failure['message']}{files}")
    if len(failures) > limit:
        parts.append(f"and {len(failures) - limit} more")
    return "; ".join(parts)


def ingest_visit(
    butler: Butler, visit: int, *, instrument: str, raw_dir: Path | None, index: Path | None, transfer: str
) -> dict:
    """Ingest a visit's raw files with the batch's ``butler``; return the ingest's record,
    ``"status"`` "ok" or "failed" (a file the ingest cannot take: the visit's outcome, not the
    batch's failure) with the reason.
    """
    from . import decam_ingest, simcam_ingest

    files: list[Path] = []
    try:
        if instrument == "DECam":
            files = decam_ingest.files_of_visit(index, visit)
            return {"status": "ok", **decam_ingest.ingest_decam(butler, files, transfer)}
        files = sorted((raw_dir / str(visit)).glob("*.fits"))
        return {"status": "ok", **simcam_ingest.ingest_raws(butler, files, transfer)}
    except IngestError as exc:
        print(f"visit {visit}: ingest failed: {exc}", flush=True)
        return {"status": "failed", "error": str(exc), "files": [p.name for p in files]}


def process_visit(
    executor: BatchExecutor,
    run: str,
    visit: int,
    *,
    instrument: str,
    raws_record: Path,
    summary_path: Path,
    sources_path: Path,
    report_path: Path,
    quanta_path: Path,
    preview_path: Path | None = None,
) -> dict:
    """Process one visit with the batch's ``executor``; return its summary (``status`` "ok" or
    "failed").

    Raises
    ------
    ProcessingError
        A quantum failed for a reason other than the data.
    """
    raws = json.loads(raws_record.read_text())
    if raws.get("status", "ok") != "ok":
        reason = f"ingest: {raws.get('error', 'failed')}"
        print(f"visit {visit} failed: {reason}", flush=True)
        report_path.parent.mkdir(parents=True, exist_ok=True)
        report_path.write_text(json.dumps({"status": "not run", "reason": reason}) + "\n")
        export.write_quantum_timings(None, run, quanta_path)
        return export.write_failed_visit(visit, run, reason, [], summary_path, sources_path, preview_path)

    report_path.parent.mkdir(parents=True, exist_ok=True)
    report_path.unlink(missing_ok=True)
    try:
        failures = executor.run(visit, run, report_path)
    finally:
        export.write_quantum_timings(executor.butler, run, quanta_path)
    if failures:
        for failure in failures:
            failure["files"] = input_files(raws, failure["data_id"])
        reason = failure_reason(failures)
        print(f"visit {visit} failed for a reason in its data: {reason}", flush=True)
        return export.write_failed_visit(
            visit, run, reason, failures, summary_path, sources_path, preview_path
        )
    return export.export_visit(
        executor.butler, run, visit, summary_path, sources_path, instrument, preview_path
    )


class Stopwatch:
    """Wall and CPU time since it started, for a job record."""

    def __init__(self) -> None:
        self.start = datetime.now(UTC)
        self._wall = time.perf_counter()
        self._cpu = time.process_time()

    def elapsed(self) -> float:
        """Wall seconds since it started."""
        return round(time.perf_counter() - self._wall, 3)

    def record(self, **extra) -> dict:
        """Where and when: Slurm job id (empty outside Slurm), host, start, end, wall, CPU, peak RSS."""
        return {
            "slurm_job_id": os.environ.get("SLURM_JOB_ID", ""),
            "host": socket.gethostname(),
            **extra,
            "start": self.start.isoformat(timespec="milliseconds"),
            "end": datetime.now(UTC).isoformat(timespec="milliseconds"),
            "wall_s": self.elapsed(),
            "cpu_s": round(time.process_time() - self._cpu, 3),
            # the process's peak so far (Linux reports kB)
            "max_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        }


def write_json(path: Path, record: dict | list) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(record) + "\n")


def process_batch(
    repo: str,
    output_prefix: str,
    visits: list[int],
    *,
    raws: dict,
    visits_dir: Path,
    record: Path,
    batch: str,
    **pipeline,
) -> dict[int, str]:
    """Ingest and process ``visits`` one after another into ``visits_dir``; return visit -> status.

    ``raws`` holds :func:`ingest_visit`'s keyword arguments (``raw_dir``,
    ``index``, ``transfer``); ``pipeline`` the :class:`BatchExecutor`'s
    ``instrument``, ``inputs``, ``pipeline``, ``overrides`` and ``processes``.

    Raises
    ------
    ProcessingError
        A visit failed for a reason other than its data.
    """
    whole = Stopwatch()
    # the record, written last, says that every visit folder it lists is this run's and complete
    record.unlink(missing_ok=True)
    executor = BatchExecutor(repo, **pipeline)
    statuses = {}
    for visit in visits:
        clock = Stopwatch()
        folder = visits_dir / str(visit)
        # what an earlier, failed or outdated attempt left goes first
        shutil.rmtree(folder, ignore_errors=True)
        folder.mkdir(parents=True)
        ingest = ingest_visit(executor.butler, visit, instrument=pipeline["instrument"], **raws)
        write_json(folder / "ingest.json", ingest)
        ingest_s = clock.elapsed()
        result = process_visit(
            executor,
            f"{output_prefix}/{visit}",
            visit,
            instrument=pipeline["instrument"],
            raws_record=folder / "ingest.json",
            summary_path=folder / "summary.json",
            sources_path=folder / "sources.parquet",
            report_path=folder / "report.json",
            quanta_path=folder / "quanta.json",
            preview_path=folder / "preview.fits",
        )
        write_json(folder / "job.json", clock.record(batch=batch, visit=visit, ingest_s=ingest_s))
        statuses[visit] = result["status"]
        print(f"visit {visit}: {result['status']}", flush=True)
    write_json(record, whole.record(batch=batch, visits=visits))
    return statuses


def _main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m lsst_on_aws_tasks.process_visit", description=__doc__.split("\n")[0]
    )
    parser.add_argument("repo")
    parser.add_argument("--output-prefix", required=True, help="each visit's RUN is PREFIX/<visit>")
    parser.add_argument("--visits", type=int, nargs="+", required=True)
    parser.add_argument("--instrument", required=True)
    parser.add_argument("--inputs", required=True)
    parser.add_argument("--pipeline", required=True)
    parser.add_argument("-c", "--config", dest="overrides", action="append", default=[])
    raws = parser.add_mutually_exclusive_group(required=True)
    raws.add_argument("--raw-dir", type=Path, help="SimCam: the folder of the visits' raw/<visit>/ folders")
    raws.add_argument("--index", type=Path, help="DECam: the index of InstCal files")
    parser.add_argument("--transfer", default="copy", help="the raws' ingest transfer mode")
    parser.add_argument("--visits-dir", type=Path, required=True, help="folder of the visits' results")
    parser.add_argument("--record", type=Path, required=True, help="the batch's record, written last")
    parser.add_argument(
        "--processes", type=int, default=1, help="how many of a visit's detectors are processed at once"
    )
    args = parser.parse_args(argv)
    from lsst.daf.butler.cli.cliLog import CliLog

    # as `pipetask --long-log`: the middleware's and the tasks' messages, with where they come from
    CliLog.initLog(longlog=True)
    CliLog.setLogLevels([(None, "INFO")])
    try:
        process_batch(
            args.repo,
            args.output_prefix,
            args.visits,
            raws={"raw_dir": args.raw_dir, "index": args.index, "transfer": args.transfer},
            visits_dir=args.visits_dir,
            record=args.record,
            batch=args.record.parent.name,
            instrument=args.instrument,
            inputs=args.inputs,
            pipeline=args.pipeline,
            overrides=args.overrides,
            processes=args.processes,
        )
    except ProcessingError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(_main())
