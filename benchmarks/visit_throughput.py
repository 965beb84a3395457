"""What each visit costs over its pure work: Slurm jobs, batches, the local executor, one pipetask.

For each visit count N, in a copy of the workflow with N simulated visits
(SimCam, 4 detectors of 512 x 512 pixels each), after simulation (not timed),
the processing of all N visits, read as a folder of raws, is timed several
ways ("legs"), side by side in one run:

``slurm``
    ``snakemake --profile profiles/slurm`` on the local Slurm
    (``tests/services/slurm.sh start``): one job per visit
    (``visits_per_job=1``), one ``sbatch`` a job (job arrays in the results
    recorded before 2026-11-30, when the profile stopped using them: see
    docs/slurm.md); the number of ``sbatch`` calls is read from Snakemake's log.
``slurm-batch``
    the same with ``visits_per_job=B`` (``--batch``): one job per B visits;
    ``slurm-batch:250`` (as ``local-batch:250``) sets the leg's own B, so
    that one run compares batch sizes.
``local``, ``local-batch``
    plain ``snakemake`` with the local executor, as many jobs at once as
    cores, one visit or B visits per job.
``pipetask``
    one ``pipetask run`` over all N visits in one process, into one RUN: the
    least the middleware can do.
``pipetask-per-core``
    as many ``pipetask run`` processes at once as cores, each over its share
    of the visits (every CORES-th), each into its own RUN: the same least
    work with every core busy, as the executors keep them. What the legs pay
    beyond it is theirs; what it pays beyond ``pipetask`` is the machine's
    (processes side by side share caches, memory, the disk and the
    registry's lock).
``bps``
    the peer: Rubin's BPS (``bps submit``) with its Parsl plugin
    (``lsst.ctrl.bps.parsl.sites.Slurm``) on the same local Slurm, the quanta
    clustered by visit (one job a visit, as this workflow's), over the same
    visits, pipeline, settings and repository: one quantum graph for all N
    visits, ``pre-exec-init-qbb``, the jobs' ``pipetask run-qbb`` in a Parsl
    block of one node, then ``butler aggregate-graph``. Its stack is the
    workflow's packages at the same versions plus ``lsst-ctrl-bps`` and
    ``lsst-ctrl-bps-parsl`` (``benchmarks/bps/requirements.lock``), built once
    in the work folder, with the workaround for Python 3.12.1's zipfile seek
    bugs that every saved quantum graph needs (``benchmarks/bps/
    zipfile_seek_fix.py``; benchmark only). ``sbatch`` calls are Parsl's
    blocks (its submit scripts).

Every workflow leg forces ``process_batch`` and ends with its batches' records,
so each pays the whole per-visit path: the raws' ingest (they are there
already, from the preparation, and are kept), the RUN, pipetask, the export.
Each leg writes RUNs of its own (``butler.output``): a visit's RUN that an
earlier leg finished with the same inputs, configs and software would be
resumed, every quantum skipped (as the first run with the peer leg found: its
50-visit ``local-batch`` leg, after ``slurm-batch``, measured only that). The pure work of a
visit is the marginal cost of one more visit in the single pipetask
process, (t(N_max) - t(N_min)) / (N_max - N_min). The fixed cost a visit
adds under an executor is then its core-seconds per visit (wall time x
cores / N) minus that pure work. With the ``pipetask-per-core`` leg, each
leg's core-seconds a visit beyond that leg's are given as well (the same N).

    .venv/bin/python benchmarks/visit_throughput.py --visits 1 50 --batch 25 \\
        --output benchmarks/results/visit_throughput.json

``--workdir`` keeps the copies (``<dir>/workflow-<N>``) and reuses their
simulated and ingested visits on the next call; ``--prep-only`` stops after
that preparation.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

from lsst_on_aws.config import batches
from lsst_on_aws.stack.pip import install_pip_stack

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
CORES = os.cpu_count() or 1


def command_env() -> dict[str, str]:
    """The environment of the commands a leg runs: this venv's tools first on the PATH."""
    return dict(os.environ, PATH=f"{BIN}{os.pathsep}{os.environ['PATH']}")


def run(cmd: list[str] | str, cwd: Path, shell: bool = False) -> tuple[float, str]:
    """Run a command; its wall time (s) and its output. Raises if it fails."""
    env = command_env()
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


LEGS = ["slurm", "slurm-batch", "local", "local-batch", "pipetask", "pipetask-per-core", "bps"]


def leg_batch(leg: str, batch: int) -> tuple[str, int]:
    """A leg's kind and its visits a job: ``slurm-batch:250`` is ``slurm-batch`` at 250 visits a
    job; a ``-batch`` leg without ``:B`` has ``batch`` (``--batch``), the others 1.
    """
    kind, _, size = leg.partition(":")
    if kind not in LEGS or (size and not (kind.endswith("-batch") and size.isdigit() and int(size) > 0)):
        raise ValueError(
            f"a leg is one of {', '.join(LEGS)}, a -batch one perhaps with :VISITS_A_JOB; not {leg!r}"
        )
    return kind, int(size or (batch if kind.endswith("-batch") else 1))


BPS = REPO / "benchmarks/bps"


# the raws of every leg: the simulated visits, read as a folder of raws, so that no leg simulates
DATA = "data:\n  source: directory\n  path: {path}\n"
INGEST = """
import sys
from pathlib import Path
from lsst_on_aws_tasks.simcam_ingest import ingest_raws
for visit in sys.argv[2:]:
    ingest_raws(sys.argv[1], sorted(Path(f"results/simulated/raw/{visit}").glob("*.fits")))
"""


def settings(work: Path, per_job: int, output: str = "") -> Path:
    """The legs' config file (not --config: the Slurm plugin's array submission broke on it); with
    ``output``, the visits' RUNs under that prefix (``butler.output``).
    """
    path = work / f"bench-{per_job}.yaml"
    text = DATA.format(path=work / "results/simulated") + f"visits_per_job: {per_job}\n"
    path.write_text(text + (f"butler:\n  output: {output}\n" if output else ""))
    return path


def prepare(n: int, root: Path) -> tuple[Path, float]:
    """The workflow copy for N visits, simulated, the repository made and the raws ingested (for the
    pipetask leg; the workflow's legs ingest them again, finding them there, as a rerun does): its
    folder and the time that took.
    """
    work = root / f"workflow-{n}"
    snakemake = str(BIN / "snakemake")
    if not work.exists():
        copy_workflow(work)
        (work / "config/visits.tsv").write_text(visit_table(n))
    else:  # an earlier preparation, perhaps interrupted: go on from where it stopped
        run([snakemake, "--unlock"], work)
    simulated = [f"results/simulated/batches/{v}-{v}.json" for v in range(1, n + 1)]
    simulated.append("results/simulated/calib")
    prep_s, _ = run([snakemake, "--cores", str(CORES), "--rerun-incomplete", *simulated], work)
    repo = ["results/butler/calibs.json", "results/butler/dataset_types.json"]
    cmd = [snakemake, "--cores", str(CORES), "--configfile", str(settings(work, 1)), "--", *repo]
    prep_s += run(cmd, work)[0]
    config = yaml.safe_load((work / "config/config.yaml").read_text())
    python = work / "resources/stack" / config["stack"]["tag"] / "venv/bin/python"
    cmd = [str(python), "-c", INGEST, config["butler"]["repo"], *map(str, range(1, n + 1))]
    prep_s += run(cmd, work)[0]
    return work, prep_s


def batch_records(n: int, per_job: int) -> list[str]:
    """The processing batches' records of N visits at ``per_job`` visits a job, named as the workflow
    names its batches (runs of the table).
    """
    visits = range(1, n + 1)
    return [f"results/batches/{name}/batch.json" for name in batches(visits, visits, per_job)]


def workflow_leg(work: Path, n: int, leg: str, batch: int) -> dict:
    """Process N visits through the workflow (forced) on one leg: wall time, and sbatch calls under Slurm."""
    kind, per_job = leg_batch(leg, batch)
    cmd = [str(BIN / "snakemake")]
    cmd += ["--profile", "profiles/slurm"] if kind.startswith("slurm") else ["--cores", str(CORES)]
    # RUNs of their own: the same visits' RUNs of an earlier leg, finished with the same inputs,
    # configs and software, would be resumed (every quantum skipped), not processed again
    output = f"SimCam/bench/{kind}-{per_job}/{time.strftime('%Y%m%dT%H%M%S')}"
    cmd += ["--configfile", str(settings(work, per_job, output)), "--forcerun", "process_batch", "--"]
    cmd += batch_records(n, per_job)
    wall, _ = run(cmd, work)
    out = {f"{leg}_s": round(wall, 1)}
    if kind.startswith("slurm"):
        out[f"{leg}_sbatch_calls"] = sbatch_calls(work)
    return out


def pipetask_command(work: Path, visits: list[int], run_name: str) -> str:
    """``pipetask run`` of ``visits`` into RUN ``run_name``, with the workflow's pipeline and settings."""
    config = yaml.safe_load((work / "config/config.yaml").read_text())
    return (
        f"source resources/stack/{config['stack']['tag']}/activate.sh && pipetask run"
        f" -b {config['butler']['repo']} -i SimCam/defaults --output-run {run_name}"
        f' -p {config["pipeline"]["file"]} {settings_overrides(config)} -d "{visit_query(visits)}"'
    )


def pipetask_leg(work: Path, n: int) -> float:
    """All N visits in one pipetask process, into a RUN of its own: the wall time."""
    visits = list(range(1, n + 1))
    wall, _ = run(
        pipetask_command(work, visits, f"bench/direct/{time.strftime('%Y%m%dT%H%M%S')}"), work, shell=True
    )
    return wall


def pipetask_per_core_leg(work: Path, n: int) -> float:
    """The N visits split among as many pipetask processes as cores, run at once, each into a RUN of
    its own: the wall time until the last ends. The same work as ``pipetask``'s with every core busy,
    as the executors' legs keep them: what running side by side costs on this machine (shared caches,
    memory, disk, the registry's lock), which is no executor's overhead.
    """
    stamp = time.strftime("%Y%m%dT%H%M%S")
    env = command_env()
    logs = [work / f"logs/bench/pipetask-per-core-{core}.log" for core in range(min(CORES, n))]
    logs[0].parent.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    procs = []
    for core, log in enumerate(logs):  # into files: a full pipe would stop a process
        command = pipetask_command(work, list(range(1 + core, n + 1, CORES)), f"bench/direct-{core}/{stamp}")
        with log.open("w") as out:
            procs.append(
                subprocess.Popen(
                    command, cwd=work, env=env, shell=True, executable="/bin/bash", stdout=out, stderr=out
                )
            )
    codes = [proc.wait() for proc in procs]
    wall = time.perf_counter() - t0
    for code, log in zip(codes, logs, strict=True):
        if code != 0:
            raise RuntimeError(f"pipetask failed (exit {code}):\n{log.read_text()[-3000:]}")
    return wall


def settings_overrides(config: dict) -> str:
    """The workflow's processing settings as pipetask -c options, as its batches pass them."""
    return " ".join(f"-c measure:{k}={v}" for k, v in sorted(config["processing"].items()))


def visit_query(visits: list[int]) -> str:
    """The visits, as a Butler query."""
    return f"instrument='SimCam' AND visit IN ({', '.join(str(v) for v in visits)})"


def bps_stack(work: Path, config: dict) -> Path:
    """The BPS leg's stack in the work folder (made once): its activation script."""
    prefix = work / "resources/bps-stack"
    if not (prefix / "manifest.json").exists():
        shutil.rmtree(prefix, ignore_errors=True)
        lock = BPS / "requirements.lock"
        install_pip_stack(prefix, "bps", lock, work / "tasks", config["stack"]["python"], log=lambda *a: None)
        site = next((prefix / "venv/lib").glob("python3.*/site-packages"))
        shutil.copy(BPS / "zipfile_seek_fix.py", site)
        (site / "zipfile_seek_fix.pth").write_text("import zipfile_seek_fix; zipfile_seek_fix.apply()\n")
    python = prefix / "venv/bin/python"
    check = "import sys, zipfile_seek_fix as z; sys.exit(not z.reads_correctly())"
    if subprocess.run([str(python), "-c", check], check=False).returncode != 0:
        raise RuntimeError(f"{python} still misreads saved quantum graphs: zipfile_seek_fix did not apply")
    return prefix / "activate.sh"


def bps_leg(work: Path, n: int) -> dict:
    """All N visits through ``bps submit`` with Parsl on the local Slurm: wall time and sbatch calls."""
    config = yaml.safe_load((work / "config/config.yaml").read_text())
    activate = bps_stack(work, config)
    pipeline = work / config["pipeline"]["file"]
    labels = list(yaml.safe_load(pipeline.read_text())["tasks"])
    folder = work / "bps" / time.strftime("%Y%m%dT%H%M%S")
    folder.mkdir(parents=True)
    bps = {
        "operator": "bench",
        "project": "lsst-on-aws",
        "campaign": "visit_throughput",
        "pipelineYaml": str(pipeline),
        "payload": {
            "payloadName": f"visits-{n}",
            "butlerConfig": str(work / config["butler"]["repo"]),
            "inCollection": f"{config['instrument']}/defaults",
            "dataQuery": visit_query(list(range(1, n + 1))),
            "output": "bench/bps",
            "outputRun": f"bench/bps/{folder.name}",
        },
        "extraQgraphOptions": settings_overrides(config),
        "submitPath": str(folder / "submit"),
        # one job a visit, its detectors' quanta and its summary in one pipetask run-qbb (isr's
        # quanta are by exposure, which is the visit here: as drp_pipe clusters them)
        "clusterAlgorithm": "lsst.ctrl.bps.quantum_clustering_funcs.dimension_clustering",
        "cluster": {
            "visit": {
                "pipetasks": ",".join(labels),
                "dimensions": "visit",
                "equalDimensions": "visit:exposure",
            }
        },
        "wmsServiceClass": "lsst.ctrl.bps.parsl.ParslService",
        "computeSite": "slurm",
        "site": {
            "slurm": {
                "class": "lsst.ctrl.bps.parsl.sites.Slurm",
                "nodes": 1,
                "cores_per_node": CORES,
                "walltime": "04:00:00",
                "run_dir": str(folder / "runinfo"),
            }
        },
        "finalJob": {"requestCpus": CORES},
    }
    (folder / "bps.yaml").write_text(yaml.safe_dump(bps, sort_keys=False))
    wall, _ = run(f"source {activate} && bps submit bps.yaml", folder, shell=True)
    scripts = (folder / "runinfo").glob("*/submit_scripts/parsl.slurm.*")
    blocks = len([path for path in scripts if path.suffix not in (".stdout", ".stderr")])
    # bps submit ends well even if jobs failed: each visit's summary must be in the output RUN
    count = (
        "import sys; from lsst.daf.butler import Butler; butler = Butler(sys.argv[1]);"
        " print(len(butler.query_datasets('visit_summary', collections=sys.argv[2], explain=False)))"
    )
    _, out = run(
        f"source {activate} && python -c {shlex.quote(count)} {bps['payload']['butlerConfig']} "
        f"{bps['payload']['outputRun']}",
        folder,
        shell=True,
    )
    if int(out.split()[-1]) != n:
        raise RuntimeError(f"bps processed {out.split()[-1]} of {n} visits: see {folder}")
    return {"bps_s": round(wall, 1), "bps_sbatch_calls": blocks}


def measure(n: int, root: Path, legs: list[str], batch: int, unbatched_up_to: int, done) -> dict:
    """N visits on each leg, in turn; ``done(result)`` after each leg, with what ran so far."""
    work, prep_s = prepare(n, root)
    result = {"visits": n, "batch": batch, "prep_s": round(prep_s, 1)}
    if n > unbatched_up_to:
        legs = [
            leg
            for leg in legs
            if leg_batch(leg, batch)[0].endswith("-batch") or leg in ("pipetask", "pipetask-per-core", "bps")
        ]
    for leg in legs:
        if leg == "pipetask":
            result["pipetask_s"] = round(pipetask_leg(work, n), 1)
        elif leg == "pipetask-per-core":
            result["pipetask-per-core_s"] = round(pipetask_per_core_leg(work, n), 1)
        elif leg == "bps":
            result |= bps_leg(work, n)
        else:
            result |= workflow_leg(work, n, leg, batch)
        if "pipetask_s" in result:
            for ran in legs:
                if ran != "pipetask" and f"{ran}_s" in result:
                    result[f"{ran}_over_pipetask"] = round(result[f"{ran}_s"] / result["pipetask_s"], 2)
        done(result)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--visits", type=int, nargs="+", default=[1, 50, 500])
    parser.add_argument("--batch", type=int, default=25, help="visits per job of the -batch legs")
    parser.add_argument(
        "--legs",
        nargs="+",
        default=LEGS,
        help=f"of {', '.join(LEGS)}; a -batch leg with :B has B visits a job (slurm-batch:250)",
    )
    parser.add_argument(
        "--unbatched-up-to",
        type=int,
        default=50,
        help="run the one-visit-per-job legs only up to this many visits (500 under Slurm take about 2 h)",
    )
    parser.add_argument("--workdir", type=Path, help="keep the workflow copies here and reuse them")
    parser.add_argument("--prep-only", action="store_true", help="only simulate and ingest the visits")
    parser.add_argument("--output", type=Path)
    args = parser.parse_args()
    for leg in args.legs:
        try:
            leg_batch(leg, args.batch)
        except ValueError as exc:
            parser.error(str(exc))
    if not args.prep_only and args.output is None:
        parser.error("--output is needed unless --prep-only")
    with tempfile.TemporaryDirectory() as tmp:
        root = args.workdir or Path(tmp)
        root.mkdir(parents=True, exist_ok=True)
        if args.prep_only:
            for n in args.visits:
                print(json.dumps({"visits": n, "prep_s": round(prepare(n, root)[1], 1)}), flush=True)
            return
        results: list[dict] = []

        def done(result: dict) -> None:  # written after each leg: a run that stops keeps its part
            write_record(args.output, [*results, result], args.legs)

        for n in args.visits:
            results.append(measure(n, root, args.legs, args.batch, args.unbatched_up_to, done))


def summarise(results: list[dict], legs: list[str]) -> dict:
    """The pure work a visit (the single pipetask's marginal cost between the smallest and largest
    N) and, for each leg at each N it ran, its core-seconds a visit beyond that.
    """
    summary = {"cores": CORES}
    with_pipetask = [r for r in results if "pipetask_s" in r]
    lo = min(with_pipetask, key=lambda r: r["visits"], default=None)
    hi = max(with_pipetask, key=lambda r: r["visits"], default=None)
    if lo and hi["visits"] > lo["visits"]:
        pure = (hi["pipetask_s"] - lo["pipetask_s"]) / (hi["visits"] - lo["visits"])
        summary["pure_work_per_visit_s"] = round(pure, 2)
        fixed = {}
        for leg in legs:
            for r in results:
                if leg != "pipetask" and f"{leg}_s" in r:
                    per_visit = r[f"{leg}_s"] * CORES / r["visits"]
                    fixed[f"{leg} ({r['visits']} visits)"] = round(per_visit - pure, 2)
        summary["fixed_core_s_per_visit"] = fixed
    # beside the same work on every core at once (pipetask-per-core): what is left is the executor's
    beside = {}
    for r in results:
        if "pipetask-per-core_s" not in r:
            continue
        baseline = r["pipetask-per-core_s"] * CORES / r["visits"]
        for leg in legs:
            if leg not in ("pipetask", "pipetask-per-core") and f"{leg}_s" in r:
                per_visit = r[f"{leg}_s"] * CORES / r["visits"]
                beside[f"{leg} ({r['visits']} visits)"] = round(per_visit - baseline, 2)
    if beside:
        summary["core_s_per_visit_beyond_pipetask_per_core"] = beside
    return summary


def write_record(output: Path, results: list[dict], legs: list[str]) -> None:
    record = {
        "benchmark": "visit_throughput",
        "date": time.strftime("%Y-%m-%d"),
        "machine": f"{platform.node()} {CORES} cores, Python {platform.python_version()}",
        "results": results,
        "summary": summarise(results, legs),
    }
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(json.dumps(record, indent=2) + "\n")
    print(json.dumps(results[-1]), flush=True)


if __name__ == "__main__":
    main()
