# Input functions of the data plane: what each rule reads, for the configured
# instrument, data source, stack and batches.

import shlex


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


def synced_source(wildcards=None):
    """The control plane's record of the workflow's commit, sent with a copy it synced to a
    head node (which has no .git); none in a checkout.
    """
    return SOURCE_RECORD if Path(SOURCE_RECORD).exists() else []
