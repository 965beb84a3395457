# Simulated SimCam data: reference catalogue, master calibrations, raws per visit.


rule simulate_reference_catalog:
    input:
        code=SIMULATOR_SOURCES,
    output:
        refcat="results/simulated/refcat.parquet",
    log:
        "logs/simulated/simulate_reference_catalog.log",
    benchmark:
        "results/benchmarks/simulated/simulate_reference_catalog.tsv"
    conda:
        "../envs/workflow.yaml"
    params:
        seed=config["simulation"]["seed"],
        n_stars=config["simulation"]["n_stars"],
        n_galaxies=config["simulation"]["n_galaxies"],
        detectors=config["simulation"]["detectors"],
        detector_pixels=config["simulation"]["detector_pixels"],
    script:
        "../scripts/simulate_reference_catalog.py"


rule simulate_calibs:
    input:
        code=SIMULATOR_SOURCES,
    output:
        calib=directory("results/simulated/calib"),
    log:
        "logs/simulated/simulate_calibs.log",
    benchmark:
        "results/benchmarks/simulated/simulate_calibs.tsv"
    conda:
        "../envs/workflow.yaml"
    params:
        seed=config["simulation"]["seed"],
        detectors=config["simulation"]["detectors"],
        detector_pixels=config["simulation"]["detector_pixels"],
    script:
        "../scripts/simulate_calibs.py"


# A batch's visits, simulated in one job (the batches of processing, so that a changed or
# added visit re-simulates and reprocesses its own batch only): raw/<visit>/ and
# truth/<visit>.parquet for each, then the record listing them, written last.
rule simulate_raws:
    input:
        refcat="results/simulated/refcat.parquet",
        code=SIMULATOR_SOURCES,
    output:
        record="results/simulated/batches/{batch}.json",
    log:
        "logs/simulated/batches/{batch}/simulate_raws.log",
    benchmark:
        "results/benchmarks/simulated/batches/{batch}/simulate_raws.tsv"
    conda:
        "../envs/workflow.yaml"
    resources:
        runtime=batch_minutes(5, 1),
    params:
        seed=config["simulation"]["seed"],
        visits=batch_visit_rows,
        raw_dir="results/simulated/raw",
        truth_dir="results/simulated/truth",
        detectors=config["simulation"]["detectors"],
        detector_pixels=config["simulation"]["detector_pixels"],
    script:
        "../scripts/simulate_raws.py"
