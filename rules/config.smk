# Configuration: the schema check, and the constants and parameter helpers that
# both the data plane (Snakefile) and the control plane (control-plane.smk) use.

import functools
import sys
from pathlib import Path

import pandas as pd
from snakemake.utils import validate

from lsst_on_aws import config as checks
from lsst_on_aws.accounting import budget as budgets
from lsst_on_aws.accounting import prices as ec2_prices


wildcard_constraints:
    visit=r"\d+",
    batch=r"\d+-\d+",
    tag=r"[A-Za-z0-9._-]+",
    storage_id=r"(vol|fs)-[0-9a-f]{8,17}",


def instrument_module(name):
    """The camera's module (its bands, detectors): imported for the configured camera only, since
    DECam's imports astropy, most of a second that every plan of a SimCam run would pay.
    """
    if name == "DECam":
        from lsst_on_aws_tasks import decam

        return decam
    from lsst_on_aws_tasks import simcam

    return simcam


try:
    VISITS, PROCESS_VISITS = checks.check_workflow_config(
        config,
        Path(workflow.basedir) / "config/schemas/config.schema.yaml",
        validate,
        instrument_module(config.get("instrument")).BANDS,
    )
except checks.ConfigError as err:
    # one sentence, no traceback: the message names the key and the reason
    sys.exit(f"Configuration error: {err}")

# processing batch name ("<first>-<last>" visit of its run of the table) -> its visits
BATCHES = checks.batches(VISITS["visit"], PROCESS_VISITS, config["visits_per_job"])
BATCH_OF = {visit: name for name, members in BATCHES.items() for visit in members}
CLUSTER_NAME = config["cluster"]["name"]
# the control plane's records of the cluster it drives
CLUSTER_DIR = f"results/clusters/{CLUSTER_NAME}"
# the workflow's git commit and state, which the control plane sends with the workflow
# it syncs to a head node (the copy there has no .git), and the bundle records
SOURCE_RECORD = ".lsst-on-aws/source.json"
# EC2 prices: the committed, dated fallback table, and where prices asked of AWS are kept
PRICE_TABLE = "config/prices/ec2-on-demand-2024-06.csv"
PRICE_CACHE = "resources/prices/cache.json"
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
# the processing job's raw sources: SimCam's folder of raw/<visit>/, or DECam's index of InstCal files
RAW_SOURCES = (
    "--index results/data/instcal-index.csv"
    if INSTRUMENT == "DECam"
    else f"--raw-dir {DATA_DIR}/raw"
)
TASK_SOURCES = sorted(str(p) for p in Path("tasks/src").rglob("*.py"))
# the simulator's code: a change to it re-simulates (Snakemake's own code
# trigger sees only the scripts/ adapter, not the package behind it)
SIMULATOR_SOURCES = [
    "src/lsst_on_aws/simulate.py",
    "tasks/src/lsst_on_aws_tasks/simcam.py",
]


def zone_subnet():
    """cluster.subnet_id where the spot prices of its zone are compared with the others' (costs.prices:
    aws), else "": a subnet changes no figure from the price table.
    """
    return config["cluster"]["subnet_id"] if config["costs"]["prices"] == "aws" else ""


def cluster_settings(*keys):
    """The named cluster.* settings only, as a rule parameter (a change to another reruns nothing)."""
    return {key: config["cluster"][key] for key in keys}


def ccds_per_visit():
    """Detectors in one visit of the configured instrument."""
    if INSTRUMENT == "DECam":
        return len(instrument_module(INSTRUMENT).CCD_NAMES)
    return config["simulation"]["detectors"]


def requested_resources(wildcards=None):
    """CPUs and memory (MB) that each rule asks for, a job's hold on a node.

    Rules get their resources from the profiles (set-resources, set-threads), never in their
    own bodies, so the settings name every data-plane rule, including in the control plane,
    which does not define those rules but prices them in its estimate.
    """

    def value(resource, default):
        raw = getattr(resource, "raw", resource)
        return raw if isinstance(raw, (int, float)) else default

    settings = workflow.resource_settings
    out = {}
    for name, resources in settings.overwrite_resources.items():
        cores = value(settings.overwrite_threads.get(name), 1)
        out[name] = {
            "cpus": value(resources.get("cpus_per_task"), cores),
            "mem_mb": value(resources.get("mem_mb"), 0),
        }
    cpus = visit_job_shape()["cpus"]
    out["process_batch"] = {"cpus": cpus, "mem_mb": visit_job_memory(None, cpus)}
    return out


@functools.cache
def visit_job_shape():
    """A processing job's CPUs, and its memory (MB) with one CPU and for each further CPU:
    visit_jobs, where auto takes the instrument's figures (budgets.visit_cpus,
    budgets.detector_memory); the CPUs fit one node of cluster.compute_instance_type when the
    committed price table knows its size.
    """
    jobs, cluster = config["visit_jobs"], config["cluster"]
    first, per_cpu = budgets.detector_memory(INSTRUMENT)
    first = first if jobs["mem_mb"] == "auto" else jobs["mem_mb"]
    per_cpu = per_cpu if jobs["mem_mb_per_cpu"] == "auto" else jobs["mem_mb_per_cpu"]
    cpus = jobs["cpus"]
    if cpus == "auto":
        table = ec2_prices.load_price_table(PRICE_TABLE)
        try:
            node = ec2_prices.table_price(
                cluster["compute_instance_type"], cluster["region"], table
            )
        except ec2_prices.PriceError:
            node = None
        high = configured_detector_cost().high
        cpus = budgets.visit_cpus(ccds_per_visit(), high, first, per_cpu, node)
    return {"cpus": cpus, "mem_mb": first, "mem_mb_per_cpu": per_cpu}


def configured_detector_cost():
    """The per-detector figures of budget.core_s_per_ccd (auto: the instrument's), not measured."""
    pixels = config["simulation"]["detector_pixels"]
    return budgets.detector_cost(config["budget"]["core_s_per_ccd"], INSTRUMENT, pixels)


@functools.cache
def detector_cost():
    """Core-seconds a detector takes, low and high, with their basis: what the processing jobs'
    runtime and the pre-flight estimate come from. budget.core_s_per_ccd (auto: the instrument's
    figures), or what an earlier run's visit jobs took (budget.measured_timings).
    """
    settings = config["budget"]
    measured = settings["measured_timings"]
    if not measured:
        return configured_detector_cost()
    if not Path(measured).is_file():
        sys.exit(
            f"Configuration error: budget.measured_timings: {measured} is not a file"
            " (an earlier run's results/costs/timings.parquet)"
        )
    low, high = budgets.measured_core_s_per_ccd(
        pd.read_parquet(measured),
        requested_resources(),
        ccds_per_visit(),
        "process_batch",
    )
    basis = f"{low:.1f}-{high:.1f} core-s per CCD measured in {measured}"
    return budgets.DetectorCost(low, high, basis)


def visit_job_runtime(wildcards, threads, attempt=1):
    """A processing job's runtime (minutes): its batch's visits' detectors, threads at a time, at
    the high per-detector figure, with a margin; doubled at each retry (budgets.job_minutes).
    """
    visits = len(BATCHES[wildcards.batch])
    cost = detector_cost().high
    return budgets.job_minutes(visits, ccds_per_visit(), threads, cost, attempt)


def visit_job_memory(wildcards, threads, attempt=1):
    """A processing job's memory (MB): the first attempt's request for its CPUs, the last one times
    visit_jobs.mem_multiplier for each retry, at most visit_jobs.max_mem_mb.
    """
    jobs, shape = config["visit_jobs"], visit_job_shape()
    first = budgets.job_memory(shape["mem_mb"], shape["mem_mb_per_cpu"], threads)
    grown = round(first * jobs["mem_multiplier"] ** (attempt - 1))
    return min(grown, max(jobs["max_mem_mb"], first))


def workflow_files():
    """The workflow's own files: what the control plane syncs to a head node (a change to one syncs
    and reruns) and what the provenance bundle carries as the source of its run.
    """
    names = ["Snakefile", "control-plane.smk", "Makefile", "pyproject.toml"]
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
