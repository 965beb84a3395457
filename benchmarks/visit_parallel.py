"""One many-detector visit on 1 and more cores; and the work redone when its job is killed halfway.

In a copy of the workflow whose SimCam has ``--detectors`` detectors of ``--pixels`` pixels a side,
visit 1 is simulated and processed once (the preparation, not timed). Then, side by side, in
alternation, ``--repeat`` times:

``cores N``
    its RUN removed, ``snakemake --forcerun process_batch`` with ``visit_jobs.cpus: N`` and
    ``--cores N``: the visit's detectors N at a time (``lsst_on_aws_tasks.executor``). The time is
    the job's own (``job.json``: ingest, graph, quanta, export), and the quanta's (their
    ``<label>_metadata``).

and then, for each N, the kill:

``kill N``
    its RUN removed, the same run with ``--retries 1``, its process and workers killed
    (SIGKILL, as a lost node) once half the visit's quanta have finished; the retry resumes.
    Counted from the first attempt's log and the retry's ``report.json``: the quanta the first
    attempt finished, those it had in flight, and those the retry ran (processed twice: finished
    by the first attempt and run again).

    .venv/bin/python benchmarks/visit_parallel.py --detectors 16 --pixels 1024 --cores 1 2 \\
        --repeat 2 --output benchmarks/results/visit_parallel.json
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import subprocess
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path

from visit_throughput import copy_workflow, run

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
TARGET = "results/batches/1-1/batch.json"
LOG = "logs/batches/1-1/process_batch.log"
TOOK = re.compile(r"Execution of task '(\w+)' on quantum \{[^}]*?detector: (\d+)[^}]*\} took")
STARTED = re.compile(r"Preparing execution of quantum for label=(\w+) dataId=\{[^}]*?detector: (\d+)")


def quanta(pattern: re.Pattern, text: str) -> set[tuple[str, int]]:
    return {(task, int(detector)) for task, detector in pattern.findall(text)}


def settings(work: Path, detectors: int, pixels: int, cores: int) -> Path:
    path = work / f"bench-{cores}.yaml"
    stars = round(600 * detectors * (pixels / 512) ** 2 / 4)  # SimCam's density of stars
    path.write_text(
        json.dumps(
            {
                "simulation": {"detectors": detectors, "detector_pixels": pixels, "n_stars": stars},
                "visit_jobs": {"cpus": cores},
            }
        )
    )
    return path


def remove_run(work: Path) -> None:
    stack = next((work / "resources/stack").glob("*/activate.sh"))
    run(
        f"source {stack} && python -m lsst_on_aws_tasks.butler_setup remove-run results/butler/repo"
        " SimCam/runs/single-visit/1",
        work,
        shell=True,
    )


def snakemake(work: Path, config: Path, cores: int, *extra: str) -> list[str]:
    return [str(BIN / "snakemake"), "--configfile", str(config), "--cores", str(cores), *extra, "--", TARGET]


def timed(work: Path, config: Path, cores: int) -> dict:
    remove_run(work)
    wall, _ = run(snakemake(work, config, cores, "--forcerun", "process_batch"), work)
    job = json.loads((work / "results/visits/1/job.json").read_text())
    spent = json.loads((work / "results/visits/1/quanta.json").read_text())
    starts, ends = [q["start"] for q in spent], [q["end"] for q in spent]
    return {
        "cores": cores,
        "snakemake_s": round(wall, 2),
        "job_wall_s": job["wall_s"],
        "quanta": len(spent),
        "quanta_cpu_s": round(sum(q["cpu_s"] for q in spent), 2),
        "quanta_span_s": round(
            (datetime.fromisoformat(max(ends)) - datetime.fromisoformat(min(starts))).total_seconds(), 2
        ),
    }


def killed(work: Path, config: Path, cores: int, total: int) -> dict:
    remove_run(work)
    log = work / LOG
    log.unlink(missing_ok=True)
    env = dict(os.environ, PATH=f"{BIN}{os.pathsep}{os.environ['PATH']}")
    cmd = snakemake(work, config, cores, "--forcerun", "process_batch", "--retries", "1")
    out = subprocess.PIPE
    proc = subprocess.Popen(cmd, cwd=work, env=env, stdout=out, stderr=subprocess.STDOUT, text=True)
    first = ""
    while len(quanta(TOOK, first)) < total // 2:
        if proc.poll() is not None:
            raise RuntimeError("the run ended before half its quanta")
        time.sleep(0.1)
        first = log.read_text() if log.exists() else ""
    # killed right after the log was read (the retry starts at once, and rewrites it): a quantum
    # that finished in between counts as in flight
    subprocess.run(["pkill", "-KILL", "-f", "lsst_on_aws_tasks.process_visit"], check=False)
    output, _ = proc.communicate()
    if proc.returncode != 0:
        raise RuntimeError(f"the retry failed:\n{output[-3000:]}")
    report = json.loads((work / "results/visits/1/report.json").read_text())
    ran = {
        (q["taskLabel"], q["dataId"].get("detector"))
        for q in report["quantaReports"]
        if q["status"] == "success"
    }
    finished, started = quanta(TOOK, first), quanta(STARTED, first)
    in_flight = started - finished
    return {
        "cores": cores,
        "quanta": len(report["quantaReports"]),
        "finished_before_kill": len(finished),
        "in_flight_at_kill": len(in_flight),
        "retry_skipped": sum(q["status"] == "skipped" for q in report["quantaReports"]),
        "retry_ran": len(ran),
        "processed_twice": len(ran & finished),
        "in_flight_redone": len(ran & in_flight),
        "resumed": report["resumed"],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--detectors", type=int, default=16)
    parser.add_argument("--pixels", type=int, default=1024)
    parser.add_argument("--cores", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--repeat", type=int, default=2)
    parser.add_argument("--workdir", type=Path)
    parser.add_argument("--output", type=Path, required=True)
    args = parser.parse_args()
    root = args.workdir or Path(tempfile.mkdtemp(prefix="visit-parallel-"))
    work = copy_workflow(root / "workflow")  # over an earlier copy: its results are reused
    configs = {n: settings(work, args.detectors, args.pixels, n) for n in args.cores}
    t0 = time.perf_counter()
    run(snakemake(work, configs[args.cores[0]], max(args.cores)), work)
    prep = time.perf_counter() - t0
    total = len(json.loads((work / "results/visits/1/quanta.json").read_text()))
    legs = [timed(work, configs[n], n) for _ in range(args.repeat) for n in args.cores]
    kills = [killed(work, configs[n], n, total) for n in args.cores]
    head = subprocess.check_output(["git", "rev-parse", "--short", "HEAD"], cwd=REPO, text=True).strip()
    record = {
        "date": time.strftime("%Y-%m-%d"),
        "machine": {"cores": os.cpu_count(), "python": platform.python_version()},
        "commit": head,
        "detectors": args.detectors,
        "pixels": args.pixels,
        "prepare_s": round(prep, 1),
        "legs": legs,
        "kills": kills,
    }
    base = [leg for leg in legs if leg["cores"] == args.cores[0]]
    for leg in legs:
        same_round = base[legs.index(leg) // len(args.cores)]
        leg["speedup"] = round(same_round["job_wall_s"] / leg["job_wall_s"], 2)
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(record, indent=1) + "\n")
    print(json.dumps(record, indent=1))


if __name__ == "__main__":
    main()
