"""What each visit costs over its pure work: Slurm job arrays, the local executor, one pipetask.

For each visit count N, in a temporary copy of the workflow with N simulated
visits (SimCam, 4 detectors of 512 x 512 pixels each), after simulation and
ingest (not timed), the processing of all N visits is timed three ways,
side by side in one run:

``slurm``
    ``snakemake --profile profiles/slurm`` on the local Slurm
    (``tests/services/slurm.sh start``): one job per visit, submitted as job
    arrays; the number of ``sbatch`` calls is read from Snakemake's log.
``local``
    plain ``snakemake`` with the local executor, as many jobs at once as cores.
``pipetask``
    one ``pipetask run`` over all N visits in one process, into one RUN: the
    least the middleware can do.

The pure work of a visit is the marginal cost of one more visit in the
single pipetask process, (t(N_max) - t(N_min)) / (N_max - N_min). The fixed
cost a visit adds under an executor is then its core-seconds per visit
(wall time x cores / N) minus that pure work.

    .venv/bin/python benchmarks/visit_throughput.py --visits 1 50 \\
        --output benchmarks/results/visit_throughput.json
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
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
CORES = os.cpu_count() or 1


def run(cmd: list[str] | str, cwd: Path, shell: bool = False) -> tuple[float, str]:
    """Run a command; its wall time (s) and its output. Raises if it fails."""
    env = dict(os.environ, PATH=f"{BIN}{os.pathsep}{os.environ['PATH']}")
    t0 = time.perf_counter()
    shell_kw = {"shell": True, "executable": "/bin/bash"} if shell else {}
    out = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, check=False, **shell_kw)
    elapsed = time.perf_counter() - t0
    if out.returncode != 0:
        raise RuntimeError(f"{cmd} failed:\n{out.stdout[-2000:]}\n{out.stderr[-3000:]}")
    return elapsed, out.stdout + out.stderr


def copy_workflow(dest: Path) -> Path:
    """The repository's tracked files at ``dest`` (no results, no environments)."""
    files = subprocess.check_output(["git", "ls-files"], cwd=REPO, text=True).split()
    for name in files:
        target = dest / name
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes((REPO / name).read_bytes())
        target.chmod((REPO / name).stat().st_mode)
    return dest


def visit_table(n: int) -> str:
    """N visits alternating r and g, seeing 0.7-1.1 arcsec, small dithers."""
    rows = ["visit\tband\tseeing_arcsec\tra_offset_arcsec\tdec_offset_arcsec"]
    for v in range(1, n + 1):
        seeing = 0.7 + 0.1 * (v % 5)
        rows.append(f"{v}\t{'rg'[v % 2]}\t{seeing:.2f}\t{(v * 7) % 31 - 15}\t{(v * 11) % 31 - 15}")
    return "\n".join(rows) + "\n"


def sbatch_calls(workdir: Path) -> int:
    """sbatch calls the latest Snakemake run logged (an array counts once)."""
    log = max((workdir / ".snakemake/log").glob("*.snakemake.log"), key=lambda p: p.stat().st_mtime)
    text = log.read_text()
    return len(re.findall(r"has been submitted with SLURM jobid|^Submitted array job", text, re.M))


def measure(n: int, root: Path) -> dict:
    work = copy_workflow(root / f"workflow-{n}")
    (work / "config/visits.tsv").write_text(visit_table(n))
    snakemake = str(BIN / "snakemake")
    visits = [f"results/visits/{v}/summary.json" for v in range(1, n + 1)]
    prep_targets = [f"results/butler/raws/{v}.json" for v in range(1, n + 1)]
    prep_targets += ["results/butler/calibs.json", "results/butler/dataset_types.json"]
    prep_s, _ = run([snakemake, "--cores", str(CORES), *prep_targets], work)

    local_s, _ = run([snakemake, "--cores", str(CORES), *visits], work)
    slurm_s, _ = run([snakemake, "--profile", "profiles/slurm", "--forcerun", "process_visit", *visits], work)
    sbatch = sbatch_calls(work)

    config = yaml.safe_load((work / "config/config.yaml").read_text())
    overrides = " ".join(f"-c measure:{k}={v}" for k, v in sorted(config["processing"].items()))
    tag = config["stack"]["tag"]
    where = f"instrument='SimCam' AND visit IN ({', '.join(str(v) for v in range(1, n + 1))})"
    direct_s, _ = run(
        f"source resources/stack/{tag}/activate.sh && pipetask run -b {config['butler']['repo']}"
        f" -i SimCam/defaults --output-run bench/direct -p {config['pipeline']['file']} {overrides}"
        f' -d "{where}"',
        work,
        shell=True,
    )
    return {
        "visits": n,
        "prep_s": round(prep_s, 1),
        "slurm_s": round(slurm_s, 1),
        "slurm_sbatch_calls": sbatch,
        "local_s": round(local_s, 1),
        "pipetask_one_process_s": round(direct_s, 1),
        "slurm_over_pipetask": round(slurm_s / direct_s, 2),
        "local_over_pipetask": round(local_s / direct_s, 2),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--visits", type=int, nargs="+", default=[1, 50, 500])
    parser.add_argument("--output", type=Path, required=True)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        results = []
        for n in args.visits:
            results.append(measure(n, Path(tmp)))
            print(json.dumps(results[-1]), flush=True)
    lo, hi = min(results, key=lambda r: r["visits"]), max(results, key=lambda r: r["visits"])
    summary = {}
    if hi["visits"] > lo["visits"]:
        pure = (hi["pipetask_one_process_s"] - lo["pipetask_one_process_s"]) / (hi["visits"] - lo["visits"])
        summary = {
            "pure_work_per_visit_s": round(pure, 2),
            "cores": CORES,
            "fixed_core_s_per_visit": {
                executor: round(hi[f"{executor}_s"] * CORES / hi["visits"] - pure, 2)
                for executor in ("slurm", "local")
            },
        }
    record = {
        "benchmark": "visit_throughput",
        "date": time.strftime("%Y-%m-%d"),
        "machine": f"{platform.node()} {CORES} cores, Python {platform.python_version()}",
        "results": results,
        "summary": summary,
    }
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(record, indent=2) + "\n")
    print(json.dumps(record, indent=2))


if __name__ == "__main__":
    main()
