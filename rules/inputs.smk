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
    derived from the input files; and not the constant, which ``snakemake --lint`` takes for a
    hard-coded prefix of the pipeline file (an input).
    """
    return PIPELINE


def stack_activate(wildcards=None):
    """The activation prefix every LSST step sources."""
    return f"{STACK}/activate.sh"


# visit -> its row of the visit table, as the simulator takes it (made once: a lookup per job)
VISIT_ROWS = {
    int(row["visit"]): row
    for row in VISITS[
        ["visit", "band", "seeing_arcsec", "ra_offset_arcsec", "dec_offset_arcsec"]
    ].to_dict("records")
}


def batch_visit_rows(wildcards):
    """The rows of a batch's visits in the visit table, as the simulator takes them."""
    return [VISIT_ROWS[visit] for visit in batch_visits(wildcards)]


def batch_minutes(base, per_visit):
    """A batch job's runtime (minutes), as a rule's resource: ``base`` plus ``per_visit`` for each of
    its visits (a profile's set-resources replaces it).
    """
    return lambda wildcards: base + per_visit * len(BATCHES[wildcards.batch])


def calib_dir(wildcards=None):
    """Folder of the master bias and flat frames, for the configured data source."""
    return f"{DATA_DIR}/calib"


def batch_raws(wildcards):
    """What a batch's ingest reads: the record of its simulation (simulated data), each visit's
    raw/<visit>/ folder (a folder of SimCam raws, or staged from S3), or DECam's index of InstCal files.
    """
    if INSTRUMENT == "DECam":
        return "results/data/instcal-index.csv"
    if config["data"]["source"] == "simulated":
        return f"results/simulated/batches/{wildcards.batch}.json"
    return [f"{DATA_DIR}/raw/{visit}" for visit in batch_visits(wildcards)]


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


def batch_records(wildcards=None):
    """The record of every processing batch: once they all exist, so do the files of every
    processed visit (:func:`visit_outputs`), which the batches' jobs write beside no declared output.
    """
    return [f"results/batches/{batch}/batch.json" for batch in BATCHES]


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
    """One per-visit file of every processed visit, as the batches' jobs write them: a parameter of
    the steps that read them, whose input is :func:`batch_records` (the visit summary's) or the
    visit summary made from them (one output per batch, and one edge a batch in the whole job
    graph, keep every plan small at survey scale). Formatted, not expand()ed: 0.01 s, not 0.4 s,
    at 100,000 visits.
    """
    return [f"results/visits/{visit}/{name}" for visit in PROCESS_VISITS]


def truth_tables(wildcards=None):
    """Truth catalogues of the processed visits (simulated data only), as the simulation's batches
    write them: a parameter, like :func:`visit_outputs`, whose input is the visit summary (made
    from every processing batch, each made from its simulated batch).
    """
    return [f"results/simulated/truth/{visit}.parquet" for visit in PROCESS_VISITS]


def synced_source(wildcards=None):
    """The control plane's record of the workflow's commit, sent with a copy it synced to a
    head node (which has no .git); none in a checkout.
    """
    return SOURCE_RECORD if Path(SOURCE_RECORD).exists() else []
