# Simulated SimCam data: reference catalogue, master calibrations, raws per visit.


rule simulate_reference_catalog:
    output:
        refcat="results/simulated/refcat.parquet",
    params:
        seed=config["simulation"]["seed"],
        n_stars=config["simulation"]["n_stars"],
        n_galaxies=config["simulation"]["n_galaxies"],
    log:
        "logs/simulated/simulate_reference_catalog.log",
    benchmark:
        "results/benchmarks/simulated/simulate_reference_catalog.tsv"
    script:
        "../scripts/simulate_reference_catalog.py"


rule simulate_calibs:
    output:
        calib=directory("results/simulated/calib"),
    params:
        seed=config["simulation"]["seed"],
    log:
        "logs/simulated/simulate_calibs.log",
    benchmark:
        "results/benchmarks/simulated/simulate_calibs.tsv"
    script:
        "../scripts/simulate_calibs.py"


rule simulate_raws:
    input:
        refcat="results/simulated/refcat.parquet",
    output:
        raws=directory("results/simulated/raw/{visit}"),
        truth="results/simulated/truth/{visit}.parquet",
    params:
        seed=config["simulation"]["seed"],
        visit=visit_row,
    log:
        "logs/simulated/raw/{visit}/simulate_raws.log",
    benchmark:
        "results/benchmarks/simulated/raw/{visit}/simulate_raws.tsv"
    script:
        "../scripts/simulate_raws.py"
