"""How long Snakemake takes to plan this workflow for many visits, against a plain Snakefile.

For each visit count N, in a temporary copy of the workflow, the visit table
is replaced by N visits and ``snakemake --dry-run`` is timed, once for each
leg asked for: a data source (``simulated``, the embedded default, which
simulates each batch of visits in a job of its own; ``directory``, a folder
of raws, as real data comes) and a ``visits_per_job``. The same is done,
side by side in the same run, for a two-rule Snakefile with N wildcard jobs and an aggregate
(the least any Snakemake workflow of that size costs to plan). The ratio of
the two is the workflow's own planning overhead: its config checks, input
functions and job count per visit. Each plan's peak memory (the
``snakemake`` process's maximum resident set) is recorded beside its time.

    .venv/bin/python benchmarks/plan_scaling.py --visits 2000 20000 100000 \
        --legs simulated:1 simulated:10 directory:1 directory:10 \
        --output benchmarks/results/plan_scaling.json
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
PLAIN = """
N = int(config["visits"])

rule all:
    input: "summary.txt"

rule work:
    output: "out/{i}.txt"
    shell: "echo {wildcards.i} > {output}"

rule aggregate:
    input: expand("out/{i}.txt", i=range(1, N + 1))
    output: "summary.txt"
    shell: "cat {input} > {output}"
"""


def timed(cmd: list[str], cwd: Path) -> tuple[float, float, str]:
    """Run ``cmd``: its wall seconds, peak resident memory (MB) and output."""
    env = dict(os.environ, PATH=f"{BIN}{os.pathsep}{os.environ['PATH']}")
    with tempfile.TemporaryFile("w+") as out:
        t0 = time.perf_counter()
        proc = subprocess.Popen(cmd, cwd=cwd, env=env, stdout=out, stderr=subprocess.STDOUT, text=True)
        _, status, usage = os.wait4(proc.pid, 0)
        elapsed = time.perf_counter() - t0
        proc.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        text = out.read()
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed:\n{text[-3000:]}")
    return elapsed, usage.ru_maxrss / 1024, text


def job_count(text: str) -> int:
    for line in text.splitlines():
        if line.startswith("total"):
            return int(line.split()[1])
    return 0


def measure(n: int, legs: list[tuple[str, int]], root: Path) -> list[dict]:
    work = root / f"workflow-{n}"
    shutil.copytree(
        REPO,
        work,
        ignore=shutil.ignore_patterns(".venv", ".git", "results", "resources", "logs", ".snakemake"),
    )
    rows = ["visit\tband\tseeing_arcsec"] + [f"{v}\t{'gr'[v % 2]}\t0.8" for v in range(1, n + 1)]
    (work / "config/visits.tsv").write_text("\n".join(rows) + "\n")
    # a directory data source: calib/ and raw/<visit>/ for each visit (empty: planning reads no file)
    data = root / f"data-{n}"
    for folder in ["calib", *(f"raw/{v}" for v in range(1, n + 1))]:
        (data / folder).mkdir(parents=True)
    sources = {
        "simulated": "{'source': 'simulated'}",
        "directory": f"{{'source': 'directory', 'path': '{data}'}}",
    }
    plain = root / f"plain-{n}"
    plain.mkdir()
    (plain / "Snakefile").write_text(PLAIN)
    dry_run = [str(BIN / "snakemake"), "--dry-run", "--quiet", "rules"]
    out = []
    for source, size in legs:
        # side by side: the plain Snakefile planned right after each of the workflow's plans
        settings = ["--config", f"visits_per_job={size}", f"data={sources[source]}"]
        workflow_s, workflow_mb, workflow_out = timed([*dry_run, *settings], work)
        plain_s, plain_mb, plain_out = timed([*dry_run, "--cores", "1", "--config", f"visits={n}"], plain)
        out.append(
            {
                "visits": n,
                "data": source,
                "visits_per_job": size,
                "workflow_jobs": job_count(workflow_out),
                "workflow_plan_s": round(workflow_s, 2),
                "workflow_peak_mb": round(workflow_mb),
                "plain_jobs": job_count(plain_out),
                "plain_plan_s": round(plain_s, 2),
                "plain_peak_mb": round(plain_mb),
                "ratio": round(workflow_s / plain_s, 2),
                "workflow_ms_per_job": round(1000 * workflow_s / max(job_count(workflow_out), 1), 3),
                "plain_ms_per_job": round(1000 * plain_s / max(job_count(plain_out), 1), 3),
            }
        )
        print(json.dumps(out[-1]), flush=True)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--visits", type=int, nargs="+", default=[2000, 20000])
    parser.add_argument(
        "--legs", nargs="+", default=["simulated:1", "simulated:10"], help="DATA:VISITS_PER_JOB each"
    )
    parser.add_argument("--output", type=Path, required=True)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        legs = [(leg.split(":")[0], int(leg.split(":")[1])) for leg in args.legs]
        results = [row for n in args.visits for row in measure(n, legs, Path(tmp))]
    record = {
        "benchmark": "plan_scaling",
        "date": time.strftime("%Y-%m-%d"),
        "machine": f"{platform.node()} {os.cpu_count()} cores, Python {platform.python_version()}",
        "results": results,
    }
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(record, indent=2) + "\n")
    print(json.dumps(record, indent=2))


if __name__ == "__main__":
    main()
