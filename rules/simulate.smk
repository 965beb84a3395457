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
    script:
        "../scripts/simulate_calibs.py"


rule simulate_raws:
    input:
        refcat="results/simulated/refcat.parquet",
        code=SIMULATOR_SOURCES,
    output:
        raws=directory("results/simulated/raw/{visit}"),
        truth="results/simulated/truth/{visit}.parquet",
    log:
        "logs/simulated/raw/{visit}/simulate_raws.log",
    benchmark:
        "results/benchmarks/simulated/raw/{visit}/simulate_raws.tsv"
    conda:
        "../envs/workflow.yaml"
    params:
        seed=config["simulation"]["seed"],
        visit=visit_row,
    script:
        "../scripts/simulate_raws.py"
