"""How long Snakemake takes to plan this workflow for many visits, against a plain Snakefile.

For each visit count N, in a temporary copy of the workflow, the visit table
is replaced by N simulated visits and ``snakemake --dry-run`` is timed; the
same is done, side by side in the same run, for a two-rule Snakefile with N
wildcard jobs and an aggregate (the least any Snakemake workflow of that
size costs to plan). The ratio of the two is the workflow's own planning
overhead: its config checks, input functions and job count per visit.

    .venv/bin/python benchmarks/plan_scaling.py --visits 2000 20000 \
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


def timed(cmd: list[str], cwd: Path) -> tuple[float, str]:
    env = dict(os.environ, PATH=f"{BIN}{os.pathsep}{os.environ['PATH']}")
    t0 = time.perf_counter()
    out = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, check=False)
    elapsed = time.perf_counter() - t0
    if out.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed:\n{out.stderr[-3000:]}")
    return elapsed, out.stdout + out.stderr


def job_count(text: str) -> int:
    for line in text.splitlines():
        if line.startswith("total"):
            return int(line.split()[1])
    return 0


def measure(n: int, root: Path) -> dict:
    work = root / f"workflow-{n}"
    shutil.copytree(
        REPO,
        work,
        ignore=shutil.ignore_patterns(".venv", ".git", "results", "resources", "logs", ".snakemake"),
    )
    rows = ["visit\tband\tseeing_arcsec"] + [f"{v}\t{'gr'[v % 2]}\t0.8" for v in range(1, n + 1)]
    (work / "config/visits.tsv").write_text("\n".join(rows) + "\n")
    plain = root / f"plain-{n}"
    plain.mkdir()
    (plain / "Snakefile").write_text(PLAIN)
    workflow_s, workflow_out = timed([str(BIN / "snakemake"), "--dry-run", "--quiet", "rules"], work)
    plain_s, plain_out = timed(
        [str(BIN / "snakemake"), "--dry-run", "--quiet", "rules", "--cores", "1", "--config", f"visits={n}"],
        plain,
    )
    return {
        "visits": n,
        "workflow_jobs": job_count(workflow_out),
        "workflow_plan_s": round(workflow_s, 2),
        "plain_jobs": job_count(plain_out),
        "plain_plan_s": round(plain_s, 2),
        "ratio": round(workflow_s / plain_s, 2),
        "workflow_ms_per_job": round(1000 * workflow_s / max(job_count(workflow_out), 1), 3),
        "plain_ms_per_job": round(1000 * plain_s / max(job_count(plain_out), 1), 3),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--visits", type=int, nargs="+", default=[2000, 20000])
    parser.add_argument("--output", type=Path, required=True)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        results = [measure(n, Path(tmp)) for n in args.visits]
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
