"""What a process pays to start when its environment's bytecode is not compiled, side by side.

Every Slurm job of the workflow starts three Python processes before any visit runs: the
plugin's job-step ``snakemake``, the ``snakemake`` it runs the rule in, and the batch's
``python -m lsst_on_aws_tasks.process_visit``, which imports the LSST middleware. Where
``.pyc`` files cannot be written (``PYTHONDONTWRITEBYTECODE``, as on the machines that run
CI; or a stack on read-only shared storage), each of them compiles every module it imports
from source, every time. With ``uv pip sync --compile-bytecode`` the install compiles them
once.

For each of the two environments (the workflow's, ``envs/workflow.lock`` and the project;
the pip stack, ``envs/stack-pip/<tag>.lock`` and the task package), this script installs it
twice from the warm uv cache, with and without ``--compile-bytecode``, timing each install.
Then, alternately, for ``--repeat`` rounds, it times in each:

- ``snakemake``: a dry run of one processing batch the way a Slurm job's ``snakemake`` plans
  it (``--target-jobs process_batch:batch=...  --mode remote``), in a copy of the workflow;
- ``stack``: ``python -c "import lsst_on_aws_tasks.process_visit"``, the batch's imports.

    PYTHONDONTWRITEBYTECODE=1 .venv/bin/python benchmarks/startup.py \\
        --output benchmarks/results/startup.json
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

from lsst_on_aws.stack.common import uv_env

REPO = Path(__file__).resolve().parents[1]
UV = Path(sys.executable).parent / "uv"
STACK_TAG = yaml.safe_load((REPO / "config/config.yaml").read_text())["stack"]["tag"]
STACK_MODULE = "lsst_on_aws_tasks.process_visit"


def timed(cmd: list[str], cwd: Path) -> tuple[float, float]:
    """Run ``cmd``: its wall and CPU seconds (user + system)."""
    with tempfile.TemporaryFile("w+") as out:
        t0 = time.perf_counter()
        proc = subprocess.Popen(cmd, cwd=cwd, stdout=out, stderr=subprocess.STDOUT, text=True)
        _, status, usage = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - t0
        if os.waitstatus_to_exitcode(status) != 0:
            out.seek(0)
            raise RuntimeError(f"{' '.join(cmd)} failed:\n{out.read()[-2000:]}")
    return wall, usage.ru_utime + usage.ru_stime


def install(venv: Path, lock: Path, project: list[str], compiled: bool) -> float:
    """A venv at ``venv`` from ``lock`` plus ``project`` (uv pip install arguments): wall seconds."""
    flag = ["--compile-bytecode"] if compiled else []
    t0 = time.perf_counter()
    subprocess.run([UV, "venv", "--quiet", "--python", sys.executable, venv], check=True, env=uv_env())
    subprocess.run(
        [UV, "pip", "sync", "--quiet", *flag, "--python", venv / "bin/python", lock], check=True, env=uv_env()
    )
    subprocess.run(
        [UV, "pip", "install", "--quiet", "--no-deps", *flag, "--python", venv / "bin/python", *project],
        check=True,
        env=uv_env(),
    )
    return time.perf_counter() - t0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--output", type=Path)
    args = parser.parse_args()
    if os.environ.get("PYTHONDONTWRITEBYTECODE") != "1":
        sys.exit("set PYTHONDONTWRITEBYTECODE=1: else the first run writes the .pyc files the others read")
    with tempfile.TemporaryDirectory(prefix="startup-", dir="/var/tmp") as tmp:
        root = Path(tmp)
        work = root / "workflow"
        skip = shutil.ignore_patterns(
            *(".venv", ".git", "results", "resources", "logs", ".snakemake"),
            *("build", "*.egg-info", "__pycache__"),
        )
        shutil.copytree(REPO, work, ignore=skip)
        tasks = work / "tasks"
        installs, commands = {}, {}
        for kind, compiled in (("plain", False), ("compiled", True)):
            venv, stack = root / f"workflow-{kind}", root / f"stack-{kind}"
            editable = ["-e", str(REPO), "-e", str(REPO / "tasks")]
            installs[f"snakemake-{kind}"] = install(venv, REPO / "envs/workflow.lock", editable, compiled)
            lock = REPO / f"envs/stack-pip/{STACK_TAG}.lock"
            installs[f"stack-{kind}"] = install(stack, lock, [str(tasks)], compiled)
            # what a Slurm job's snakemake does before its rule runs (batch 1-1 of the default config)
            commands[f"snakemake-{kind}"] = [
                *(str(venv / "bin/snakemake"), "--dry-run", "--target-jobs", "process_batch:batch=1-1"),
                *("--allowed-rules", "process_batch", "--force", "--mode", "remote", "--cores", "1"),
            ]
            commands[f"stack-{kind}"] = [str(stack / "bin/python"), "-c", f"import {STACK_MODULE}"]
        times = {name: {"wall": [], "cpu": []} for name in commands}
        for _ in range(args.repeat):
            for name, cmd in commands.items():
                wall, cpu = timed(cmd, cwd=work)
                times[name]["wall"].append(round(wall, 2))
                times[name]["cpu"].append(round(cpu, 2))
    results = {
        name: {
            "wall_s": value["wall"],
            "cpu_s": value["cpu"],
            "median_wall_s": statistics.median(value["wall"]),
            "median_cpu_s": statistics.median(value["cpu"]),
        }
        for name, value in times.items()
    }
    summary = {}
    for what in ("snakemake", "stack"):
        plain, compiled = results[f"{what}-plain"], results[f"{what}-compiled"]
        saved = plain["median_cpu_s"] - compiled["median_cpu_s"]
        extra_install = installs[f"{what}-compiled"] - installs[f"{what}-plain"]
        summary[what] = {
            "compiled_over_plain_wall": round(compiled["median_wall_s"] / plain["median_wall_s"], 2),
            "cpu_s_saved_per_process": round(saved, 2),
            "extra_install_s": round(extra_install, 1),
            "processes_to_repay_install": round(extra_install / saved, 1) if saved > 0 else None,
        }
    record = {
        "benchmark": "startup",
        "date": time.strftime("%Y-%m-%d"),
        "machine": f"{platform.node()} {os.cpu_count()} cores, Python {platform.python_version()}",
        "repeat": args.repeat,
        "install_s": {name: round(value, 1) for name, value in installs.items()},
        "results": results,
        "summary": summary,
    }
    text = json.dumps(record, indent=2)
    print(text)
    if args.output:
        args.output.parent.mkdir(parents=True, exist_ok=True)
        args.output.write_text(text + "\n")


if __name__ == "__main__":
    main()
