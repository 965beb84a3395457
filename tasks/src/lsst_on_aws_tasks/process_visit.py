"""Process one visit: clear its RUN, run ``pipetask``, export the results, record the outcome.

The workflow's ``process_visit`` rule runs, inside the stack::

    python -m lsst_on_aws_tasks.process_visit REPO RUN VISIT --instrument NAME --inputs COLLECTION \\
        --pipeline YAML [-c LABEL:KEY=VALUE ...] --raws JSON \\
        --summary JSON --sources PARQUET --report JSON --quanta JSON --job JSON

1. If the visit's raw ingest recorded a failure (a damaged file, another
   instrument), the visit fails at once with that reason.
2. The visit's RUN collection is removed, with whatever an earlier,
   interrupted or failed attempt left in it, so a retry never meets its
   own debris.
3. ``pipetask run`` processes the visit's detectors into that RUN. Its
   command-line code is called in this process: the middleware's imports
   (about 3-4 s) are paid once per visit instead of once for each of three
   processes (remove, pipetask, export).
4. On success the visit summary and source catalogues are read back
   through the Butler into ``--summary`` and ``--sources``.
5. On failure, ``pipetask``'s ``--summary`` report names each failed quantum
   and its exception. When every failure is a ``RepeatableQuantumError``
   (LSST's class for "this data cannot be processed by this algorithm";
   ``AlgorithmError`` derives from it), the visit is recorded as failed:
   ``--summary`` says ``"status": "failed"`` and why, ``--sources`` is an
   empty catalogue, and the command succeeds, so the other visits and the
   summary go on. Any other failure (memory, a lost node, a bug) makes the
   command fail, and the workflow's retries apply.

``--quanta`` lists each quantum's task label, detector, node, start, end,
run time, CPU time and peak memory, from the ``<label>_metadata`` datasets
pipetask wrote (also for a visit that failed part-way; empty when pipetask
never ran). ``--job`` records the Slurm job id (empty outside Slurm), the host, and when
the processing started and ended (UTC).
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import socket
import sys
from datetime import UTC, datetime
from pathlib import Path

from . import butler_setup, export


class ProcessingError(RuntimeError):
    """pipetask failed for a reason that is not the data; a retry may succeed."""


def is_data_error(class_name: str) -> bool:
    """Whether an exception class, named as in pipetask's report, marks a data failure."""
    from lsst.pipe.base import RepeatableQuantumError

    module, _, name = class_name.rpartition(".")
    try:
        cls = getattr(importlib.import_module(module), name)
    except (ImportError, AttributeError, ValueError):
        return False
    return isinstance(cls, type) and issubclass(cls, RepeatableQuantumError)


def failed_quanta(report: dict) -> list[dict]:
    """The failed quanta of a ``pipetask run --summary`` report: task, data id, exception."""
    out = []
    for quantum in report.get("quantaReports", []):
        if quantum.get("status") != "failure":
            continue
        info = quantum.get("exceptionInfo") or {}
        out.append(
            {
                "task": quantum.get("taskLabel", "?"),
                "data_id": quantum.get("dataId", {}),
                "exception": info.get("className", ""),
                "message": info.get("message", ""),
            }
        )
    return out


def failure_reason(failures: list[dict], limit: int = 3) -> str:
    """One line naming the failed quanta and why, for the summary table."""
    parts = []
    for failure in failures[:limit]:
        where = ", ".join(f"{k} {v}" for k, v in failure["data_id"].items() if k not in ("instrument",))
        kind = failure["exception"].rpartition(".")[2]
        parts.append(f"{failure['task']} ({where}): {kind}: {failure['message']}")
    if len(failures) > limit:
        parts.append(f"and {len(failures) - limit} more")
    return "; ".join(parts)


def run_pipetask(args: list[str]) -> int:
    """``pipetask ARGS``, with the command-line tool's own code, in this process: its exit status."""
    from lsst.ctrl.mpexec.cli.pipetask import cli

    print("pipetask", " ".join(args), flush=True)
    try:
        # without standalone mode, click returns the status a command exits with
        status = cli.main(args=args, prog_name="pipetask", standalone_mode=False)
    except SystemExit as exc:
        status = exc.code
    if status is None or isinstance(status, int):
        return status or 0
    return 1  # exited with a message


def process_visit(
    repo: str,
    run: str,
    visit: int,
    *,
    instrument: str,
    inputs: str,
    pipeline: str,
    overrides: list[str],
    raws_record: Path,
    summary_path: Path,
    sources_path: Path,
    report_path: Path,
    quanta_path: Path,
) -> dict:
    """Process one visit; return its summary (``status`` "ok" or "failed").

    Raises
    ------
    ProcessingError
        pipetask failed for a reason other than the data.
    """
    raws = json.loads(raws_record.read_text())
    if raws.get("status", "ok") != "ok":
        reason = f"ingest: {raws.get('error', 'failed')}"
        print(f"visit {visit} failed: {reason}", flush=True)
        report_path.parent.mkdir(parents=True, exist_ok=True)
        report_path.write_text(json.dumps({"status": "not run", "reason": reason}) + "\n")
        export.write_quantum_timings(None, run, quanta_path)
        return export.write_failed_visit(visit, run, reason, [], summary_path, sources_path)

    removed = butler_setup.remove_run(repo, run)
    print(f"{'removed an earlier attempt of' if removed else 'no earlier'} run {run}", flush=True)
    report_path.parent.mkdir(parents=True, exist_ok=True)
    report_path.unlink(missing_ok=True)
    args = ["--long-log", "--log-level", "lsst_on_aws_tasks=INFO", "run", "-b", repo]
    args += ["-i", inputs, "--output-run", run, "-p", pipeline]
    for override in overrides:
        args += ["-c", override]
    args += ["-d", f"instrument='{instrument}' AND visit={visit}", "--summary", str(report_path)]
    try:
        status = run_pipetask(args)
        error = f"exit status {status}" if status else None
    except Exception as exc:
        error = f"{type(exc).__name__}: {exc}"
    butler = export.open_butler(repo)  # one, for the timings and the export
    export.write_quantum_timings(butler, run, quanta_path)
    if error is not None:
        failures = failed_quanta(json.loads(report_path.read_text())) if report_path.exists() else []
        if not failures or not all(is_data_error(f["exception"]) for f in failures):
            raise ProcessingError(
                f"pipetask failed on visit {visit} ({error}); "
                + (failure_reason(failures) if failures else "no quantum report")
            )
        reason = failure_reason(failures)
        print(f"visit {visit} failed for a reason in its data: {reason}", flush=True)
        return export.write_failed_visit(visit, run, reason, failures, summary_path, sources_path)
    return export.export_visit(butler, run, visit, summary_path, sources_path)


def write_job_record(path: Path, start: datetime) -> None:
    """Where and when this ran: Slurm job id (empty outside Slurm), host, start and end (UTC)."""
    record = {
        "slurm_job_id": os.environ.get("SLURM_JOB_ID", ""),
        "host": socket.gethostname(),
        "start": start.isoformat(timespec="milliseconds"),
        "end": datetime.now(UTC).isoformat(timespec="milliseconds"),
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(record) + "\n")


def _main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m lsst_on_aws_tasks.process_visit", description=__doc__.split("\n")[0]
    )
    parser.add_argument("repo")
    parser.add_argument("run")
    parser.add_argument("visit", type=int)
    parser.add_argument("--instrument", required=True)
    parser.add_argument("--inputs", required=True)
    parser.add_argument("--pipeline", required=True)
    parser.add_argument("-c", "--config", dest="overrides", action="append", default=[])
    parser.add_argument("--raws", type=Path, required=True, help="the visit's ingest record")
    parser.add_argument("--summary", type=Path, required=True)
    parser.add_argument("--sources", type=Path, required=True)
    parser.add_argument("--report", type=Path, required=True, help="pipetask's quantum report")
    parser.add_argument("--quanta", type=Path, required=True, help="per-quantum timings (JSON)")
    parser.add_argument("--job", type=Path, required=True)
    args = parser.parse_args(argv)
    start = datetime.now(UTC)
    try:
        result = process_visit(
            args.repo,
            args.run,
            args.visit,
            instrument=args.instrument,
            inputs=args.inputs,
            pipeline=args.pipeline,
            overrides=args.overrides,
            raws_record=args.raws,
            summary_path=args.summary,
            sources_path=args.sources,
            report_path=args.report,
            quanta_path=args.quanta,
        )
    except ProcessingError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    write_job_record(args.job, start)
    print(f"visit {args.visit}: {result['status']}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(_main())
