# Validation, the visit table and input functions. Nothing else.

import shlex
import sys
from pathlib import Path

from snakemake.logging import logger
from snakemake.utils import validate

from lsst_on_aws import config as checks
from lsst_on_aws import lifecycle
from lsst_on_aws.slurm import cancel_orphaned_jobs
from lsst_on_aws.summary import failed_visit_reasons
from lsst_on_aws_tasks import decam, simcam


wildcard_constraints:
    visit=r"\d+",
    batch=r"\d+-\d+",
    tag=r"[A-Za-z0-9._-]+",
    storage_id=r"(vol|fs)-[0-9a-f]{8,17}",


try:
    VISITS, PROCESS_VISITS = checks.check_workflow_config(
        config,
        Path(workflow.basedir) / "config/schemas/config.schema.yaml",
        validate,
        decam.BANDS if config.get("instrument") == "DECam" else simcam.BANDS,
    )
except checks.ConfigError as err:
    # one sentence, no traceback: the message names the key and the reason
    sys.exit(f"Configuration error: {err}")

# processing batch name ("<first>-<last>" visit of its run of the table) -> its visits
BATCHES = checks.batches(VISITS["visit"], PROCESS_VISITS, config["visits_per_job"])
BATCH_OF = {visit: name for name, members in BATCHES.items() for visit in members}
CLUSTER_NAME = config["cluster"]["name"]
CLUSTER_DIR = lifecycle.cluster_dir(config)
# raw/<visit>/ and calib/: simulated, an existing folder, or staged from S3
DATA_DIR = {
    "simulated": "results/simulated",
    "directory": config["data"]["path"].rstrip("/"),
    "s3": "resources/data",
}[config["data"]["source"]]
# DECam: the folder of InstCal files, and of the Gaia catalogue, as read or staged from S3
INSTCAL_DIR = DATA_DIR if config["data"]["source"] != "s3" else "resources/data/instcal"
INSTCAL_PATTERNS = ["*_ooi_*.fits*", "*_oow_*.fits*", "*_ood_*.fits*"]
REFCAT_FROM_S3 = config["data"]["refcat"].startswith("s3://")
REFCAT_DIR = "resources/data/refcat" if REFCAT_FROM_S3 else config["data"]["refcat"]
# The pipeline pipetask runs: a file of the workflow, or one the stack
# provides ($DRP_PIPE_DIR/...), either with an optional #subset of labels
PIPELINE = config["pipeline"]["file"]
STACK_PREFIX = config["stack"]["prefix"].rstrip("/")
STACK = f"{STACK_PREFIX}/{config['stack']['tag']}"
REPO = config["butler"]["repo"]
INSTRUMENT = config["instrument"]
DEFAULT_INPUTS = f"{INSTRUMENT}/defaults"
TASK_SOURCES = sorted(str(p) for p in Path("tasks/src").rglob("*.py"))
# the simulator's code: a change to it re-simulates (Snakemake's own code
# trigger sees only the scripts/ adapter, not the package behind it)
SIMULATOR_SOURCES = [
    "src/lsst_on_aws/simulate.py",
    "tasks/src/lsst_on_aws_tasks/simcam.py",
]


def stack_lock(wildcards):
    """The pinned package list of a pip-mode stack tag (other methods have none)."""
    if config["stack"]["method"] != "pip":
        return []
    return f"envs/stack-pip/{wildcards.tag}.lock"


def pipeline_input(wildcards=None):
    """The workflow's pipeline file, an input of the steps that read it; none for a stack's pipeline,
    which exists only once the stack is set up (the pipeline's name, a parameter, still reruns them).
    """
    return [] if "$" in PIPELINE else PIPELINE.split("#")[0]


def pipeline_spec(wildcards):
    """The pipeline as config names it and pipetask takes it, #subset included: a parameter of the
    steps that read it, so that a change to it (a stack's pipeline, another subset) reruns them.
    A function of the wildcards only: Snakemake records and compares such parameters, not those
    derived from the input files.
    """
    return PIPELINE


def cluster_settings(*keys):
    """The named cluster.* settings only, as a rule parameter (a change to another reruns nothing)."""
    return {key: config["cluster"][key] for key in keys}


def stack_activate(wildcards=None):
    """The activation prefix every LSST step sources."""
    return f"{STACK}/activate.sh"


def visit_row(wildcards):
    """A visit's row of the visit table, as the simulator takes it."""
    row = VISITS.loc[int(wildcards.visit)]
    return {
        "visit": int(row["visit"]),
        "band": str(row["band"]),
        "seeing_arcsec": float(row["seeing_arcsec"]),
        "ra_offset_arcsec": float(row["ra_offset_arcsec"]),
        "dec_offset_arcsec": float(row["dec_offset_arcsec"]),
    }


def raw_dir(wildcards):
    """Folder of a visit's raw frames, for the configured data source."""
    return f"{DATA_DIR}/raw/{wildcards.visit}"


def calib_dir(wildcards=None):
    """Folder of the master bias and flat frames, for the configured data source."""
    return f"{DATA_DIR}/calib"


def raw_inputs(wildcards):
    """What a visit's ingest reads: SimCam's raw/<visit>/ folder, or the index of DECam's InstCal files."""
    if INSTRUMENT == "DECam":
        return "results/data/instcal-index.csv"
    return raw_dir(wildcards)


def raw_sources(wildcards, input):
    """The ingest command's sources: SimCam's files, or DECam's index and the visit's EXPNUM."""
    if INSTRUMENT == "DECam":
        return f"--instrument DECam --index {input.raws} --visit {wildcards.visit}"
    return f"{input.raws}/*.fits"


def refcat_input(wildcards=None):
    """The Gaia catalogue's files in its local folder, or the folder it is staged into from S3."""
    if REFCAT_FROM_S3:
        return REFCAT_DIR
    return sorted(Path(REFCAT_DIR).glob("*.fits")) if REFCAT_DIR else []


def refcat_files(wildcards, input):
    """The catalogue files the refcat ingest reads (a staged folder's, by the shell's glob)."""
    if REFCAT_FROM_S3:
        return f"{input.refcat}/*.fits"
    return " ".join(input.refcat)


def calib_record(wildcards=None):
    """What processing calibrates against: SimCam's bias and flats; DECam's InstCal files are
    calibrated already, but their zero point and astrometry come from the Gaia catalogue.
    """
    if INSTRUMENT == "DECam":
        return "results/butler/refcat.json"
    return "results/butler/calibs.json"


def batch_visits(wildcards):
    """The visits a processing batch runs, in order."""
    return BATCHES[wildcards.batch]


def batch_raw_records(wildcards):
    """The ingest records of a batch's visits."""
    return expand("results/butler/raws/{visit}.json", visit=batch_visits(wildcards))


def visit_batch(wildcards):
    """The record of the batch that processes a visit (its results are in folders beside it)."""
    return f"results/batches/{BATCH_OF[int(wildcards.visit)]}/batch.json"


def pipetask_overrides(wildcards=None):
    """The processing settings (for the project's measure task, if the pipeline has it) and the
    pipeline's own overrides, as pipetask -c arguments.
    """
    label = config["pipeline"]["measure_label"]
    settings = [
        f"{label}:{key}={value}" for key, value in sorted(config["processing"].items())
    ]
    settings = (settings if label else []) + config["pipeline"]["overrides"]
    return " ".join(f"-c {shlex.quote(setting)}" for setting in settings)


def visit_outputs(name):
    """One per-visit output path for every processed visit."""
    return expand("results/visits/{visit}/{name}", visit=PROCESS_VISITS, name=name)


def truth_tables(wildcards=None):
    """Truth catalogues of the processed visits (simulated data only)."""
    return expand("results/simulated/truth/{visit}.parquet", visit=PROCESS_VISITS)


def all_targets(bundle=True):
    """Everything a complete run produces (the provenance bundle, made last, included).

    On the control plane: the cluster's teardown record, the last step of
    driving the run on the cluster, and the run's costs over the cluster's life.
    """
    if config["control_plane"]:
        return [f"{CLUSTER_DIR}/teardown.json", f"{CLUSTER_DIR}/costs.csv"]
    targets = [
        "results/summary/visits.csv",
        "results/summary/visits.png",
        "results/summary/cutouts.png",
        "results/butler/chain.json",
        "results/costs/estimate.json",
        "results/costs/breakdown.csv",
        "results/costs/gantt.png",
    ]
    if config["data"]["source"] == "simulated":
        targets.append("results/summary/truth_check.csv")
    if bundle:
        targets.append("results/provenance/lsst-on-aws-bundle.tar.gz")
        if config["publish"]["uri"]:
            targets.append("results/provenance/published.json")
    return targets


def bundle_inputs():
    """What the run read, to checksum in the bundle: config, tables, pipeline, prices, lock, data.

    (A stack not installed from a lock file is described by its manifest, a bundle member.)
    """
    paths = [
        "config/config.yaml",
        "config/butler-seed.yaml",
        config["visits"],
        "config/prices",
    ]
    paths += [pipeline_input()] if pipeline_input() else []
    if config["stack"]["method"] == "pip":
        paths.append(f"envs/stack-pip/{config['stack']['tag']}.lock")
    paths.append(DATA_DIR)
    return paths


def bundle_members():
    """Bundle name -> file copied into the bundle."""
    members = {
        "visits-table.tsv": config["visits"],
        "stack-manifest.json": f"{STACK}/manifest.json",
        "summary/visits.csv": "results/summary/visits.csv",
        "butler/chain.json": "results/butler/chain.json",
    }
    if config["data"]["source"] == "simulated":
        members["summary/truth_check.csv"] = "results/summary/truth_check.csv"
    tables = [
        "timings.parquet",
        "timings.csv",
        "estimate.json",
        "jobs.csv",
        "tasks.csv",
    ]
    tables += ["visits.csv", "detectors.csv", "breakdown.csv", "instance_types.csv"]
    for name in tables:
        members[f"costs/{name}"] = f"results/costs/{name}"
    return members


def warn_failed_visits():
    """At the end of a run, name the visits whose data could not be processed."""
    failed = failed_visit_reasons(visit_outputs("summary.json"))
    if failed:
        lines = [
            f"  visit {visit}: {reason}" for visit, reason in sorted(failed.items())
        ]
        logger.warning(
            f"{len(failed)} of {len(PROCESS_VISITS)} visits could not be processed"
            " (results/summary/visits.csv lists them; fix the data, then rerun each"
            " with --forcerun results/butler/raws/<visit>.json):\n" + "\n".join(lines)
        )


def cancel_orphaned_slurm_jobs():
    """Before submitting anything, cancel Slurm jobs an interrupted run left running here."""
    cancelled = cancel_orphaned_jobs(Path.cwd())
    if cancelled:
        logger.warning(
            f"Cancelled Slurm jobs {', '.join(cancelled)}: an earlier, interrupted run of"
            " this workflow left them running in this directory. Their work is redone"
            " by this run."
        )


def job_benchmarks(wildcards=None):
    """The benchmark file of every job up to the visit summary, for the timing table."""
    per_run = ["create_repo", "register_instrument", "register_dataset_types"]
    per_run += ["chain_visits", "summarise_visits"]
    per_run += (
        ["index_instcal", "ingest_refcat"]
        if INSTRUMENT == "DECam"
        else ["ingest_calibs"]
    )
    per_visit = ["ingest_raws", "visit_results"]
    if config["data"]["source"] == "simulated":
        per_run += ["simulate_reference_catalog", "simulate_calibs"]
        per_visit.append("simulate_raws")
    if config["data"]["source"] == "s3" and INSTRUMENT == "DECam":
        per_run.append("stage_instcal")
    elif config["data"]["source"] == "s3":
        per_run.append("stage_calibs")
        per_visit.append("stage_raws")
    if INSTRUMENT == "DECam" and REFCAT_FROM_S3:
        per_run.append("stage_refcat")
    paths = [getattr(rules, name).benchmark for name in per_run]
    paths += expand(rules.install_stack.benchmark, tag=config["stack"]["tag"])
    paths += expand(rules.process_batch.benchmark, batch=BATCHES)
    for name in per_visit:
        paths += expand(getattr(rules, name).benchmark, visit=PROCESS_VISITS)
    return paths


def requested_resources():
    """CPUs and memory (MB) that each rule asks for (as the profiles set them), a job's hold on a node."""

    def value(resource, default):
        raw = getattr(resource, "raw", resource)
        return raw if isinstance(raw, (int, float)) else default

    out = {}
    for each in workflow.rules:
        cores = value(each.resources.get("_cores"), 1)
        out[each.name] = {
            "cpus": value(each.resources.get("cpus_per_task"), cores),
            "mem_mb": value(each.resources.get("mem_mb"), 0),
        }
    return out


def ccds_per_visit():
    """Detectors in one visit of the configured instrument."""
    if INSTRUMENT == "DECam":
        return len(decam.CCD_NAMES)
    return len(simcam.detectors())


def creation_inputs(wildcards=None):
    """What must pass before a cluster is created: the budget check and, for pcluster, the validation."""
    if config["remote"]["provider"] == "existing":
        return {"estimate": "results/costs/estimate.json"}
    return {
        "yaml": "results/cluster/cluster-config.yaml",
        "validation": "results/cluster/validation.json",
    }


def control_plane_config(always=False):
    """The config sections the control plane's steps use (teardown "always" when asked)."""
    remote = dict(config["remote"])
    if always:
        remote["teardown"] = "always"
    budget = {key: config["budget"][key] for key in ("max_usd", "alarm_emails")}
    costs = {"tag_key": config["costs"]["tag_key"]}
    return {
        "cluster": config["cluster"],
        "remote": remote,
        "budget": budget,
        "costs": costs,
    }


def data_plane_config():
    """The resolved config the run on the head node uses: this one, run there rather than driven."""
    return {**config, "control_plane": False}


def workflow_files():
    """The workflow's own files, which the head node must have: a change to one syncs and reruns."""
    names = ["Snakefile", "Makefile", "pyproject.toml"]
    for folder in (
        "rules",
        "scripts",
        "src",
        "tasks",
        "config",
        "envs",
        "pipelines",
        "profiles",
        "report",
    ):
        names += [
            str(path)
            for path in sorted(Path(folder).rglob("*"))
            if path.is_file()
            and "__pycache__" not in path.parts
            and ".egg-info" not in str(path)
        ]
    return [name for name in names if Path(name).exists()]


def teardown_after_failure():
    """After a failed control-plane run, delete (or keep) the cluster as remote.teardown says, and say so."""
    if not config["control_plane"]:
        return
    requested = Path(CLUSTER_DIR) / lifecycle.REQUESTED
    if not requested.exists():
        return  # nothing was created
    record = lifecycle.teardown(
        config, run_ok=False, on_progress=logger.warning, after_failure=True
    )
    lifecycle.forget_cluster(config, record)
    if record["action"] in ("deleted", "absent"):
        logger.warning(
            f"The run failed: cluster {CLUSTER_NAME} was deleted (remote.teardown:"
            f" {record['policy']}). Rerun to start again on a new cluster."
        )
