# Targets of the data plane: what a complete run produces, what the bundle
# checksums and copies, and the benchmark files the timing table reads.


def all_targets(bundle=True):
    """Everything a complete run produces (the provenance bundle, made last, included)."""
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
    tables += ["recommendation.json"]
    for name in tables:
        members[f"costs/{name}"] = f"results/costs/{name}"
    return members


def science_outputs():
    """The outputs a rerun reproduces byte for byte (science.sha256 in the bundle): each processed
    visit's catalogue, summary and preview, and what is made from them alone.
    """
    files = []
    for name in ("sources.parquet", "summary.json", "preview.fits"):
        files += visit_outputs(name)
    files.append("results/summary/cutouts.png")
    if config["data"]["source"] == "simulated":
        files.append("results/summary/truth_check.csv")
    return files


# Every other output under results/, by glob (first match wins), and why a rerun does not
# reproduce it byte for byte: the bundle's records.tsv. An output that matches none is listed as
# unclassified (a test keeps the embedded default's list free of them).
RUN_RECORDS = {
    "results/butler/*": (
        "the Butler repository: dataset ids, run times and provenance in its catalogues,"
        " metadata and logs (its science, exported, is in science.sha256)"
    ),
    "results/visits/*/ingest.json": "what the ingest found already in the repository",
    "results/visits/*/job.json": "the visit's job: host, start and end times, CPU time, memory",
    "results/visits/*/quanta.json": "the middleware's record of each task run: dataset ids and times",
    "results/visits/*/report.json": "the status of each task run, with dataset ids",
    "results/summary/visits.*": (
        "each visit's science (from its summary.json, in science.sha256)"
        " beside its job's times, host and memory"
    ),
    "results/batches/*": "the batch's job record: host and times",
    "results/benchmarks/*": "Snakemake's measurement of each job: times, memory, I/O",
    "results/costs/*": "the times and dollars of this run",
    "results/simulated/*": "the simulated data: inputs of the processing, in inputs.sha256",
    "results/data/*": (
        "the index of the input files, where this run found them"
        " (their checksums are in inputs.sha256)"
    ),
    "results/provenance/*": "the run's report and resolved config: made with its times and costs",
}


def benchmark_jobs(wildcards=None):
    """The benchmark file of every job up to the visit summary, for the timing table, and whose it
    is: its rule, and its visit or processing batch. A function of the timing table, made when its
    job is planned, not as every Snakemake process parses the rules (a Slurm job's too).
    """
    return _benchmark_jobs()


@functools.cache
def _benchmark_jobs():
    """:func:`benchmark_jobs`, made once a plan (0.25 s at 20,000 visits): the timing table's
    parameter and, through :func:`run_benchmarks`, its inputs.
    """
    per_run = ["create_repo", "register_instrument", "register_dataset_types"]
    per_run += ["chain_visits", "summarise_visits"]
    per_run += (
        ["index_instcal", "ingest_refcat"]
        if INSTRUMENT == "DECam"
        else ["ingest_calibs"]
    )
    per_visit, per_batch = [], ["process_batch"]
    if config["data"]["source"] == "simulated":
        per_run += ["simulate_reference_catalog", "simulate_calibs"]
        per_batch.append("simulate_raws")
    if config["data"]["source"] == "s3" and INSTRUMENT == "DECam":
        per_run.append("stage_instcal")
    elif config["data"]["source"] == "s3":
        per_run.append("stage_calibs")
        per_visit.append("stage_raws")
    if INSTRUMENT == "DECam" and REFCAT_FROM_S3:
        per_run.append("stage_refcat")
    # plain strings: a rule's benchmark attribute carries the rule with it, which a script's
    # parameters cannot
    jobs = {str(getattr(rules, name).benchmark): {"rule": name} for name in per_run}
    # one expand a rule: its files in the order of the values it is given
    stack, tag = rules.install_stack, config["stack"]["tag"]
    jobs[expand(stack.benchmark, tag=tag)[0]] = {"rule": stack.rule.name}
    batches = list(BATCHES)
    for name in per_batch:
        paths = expand(getattr(rules, name).benchmark, batch=batches)
        for batch, path in zip(batches, paths, strict=True):
            jobs[path] = {"rule": name, "batch": batch}
    for name in per_visit:
        paths = expand(getattr(rules, name).benchmark, visit=PROCESS_VISITS)
        for visit, path in zip(PROCESS_VISITS, paths, strict=True):
            jobs[path] = {"rule": name, "visit": visit}
    return jobs


def run_benchmarks(wildcards=None):
    """The benchmark files of the jobs of :func:`benchmark_jobs` that run once a run, inputs of the
    timing table. Those of the jobs a batch or a visit are not: the visit summary, made from every
    processing batch's record, is the timing table's input instead (a job's benchmark file is
    written before Snakemake counts the job done). Thousands of inputs that one input stands for
    would cost every plan an edge a visit.
    """
    return [
        path
        for path, job in benchmark_jobs().items()
        if "batch" not in job and "visit" not in job
    ]
