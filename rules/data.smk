# Input data. From S3 (data.source: s3): the calibrations and each visit's
# raws staged from data.path into resources/data/, the folder every later
# step reads (a folder appears only once all its files have arrived). DECam
# InstCal files (instrument: DECam): an index of the directory's image files
# by exposure and CCD, from their headers, which each visit's ingest reads;
# from S3, the InstCal files and the Gaia catalogue are staged first.


rule stage_calibs:
    output:
        calib=directory("resources/data/calib"),
    log:
        "logs/data/stage_calibs.log",
    benchmark:
        "results/benchmarks/data/stage_calibs.tsv"
    localrule: True
    conda:
        "../envs/workflow.yaml"
    params:
        uri=f"{config['data']['path'].rstrip('/')}/calib",
    script:
        "../scripts/stage_data.py"


rule stage_raws:
    output:
        raws=directory("resources/data/raw/{visit}"),
    log:
        "logs/data/raw/{visit}/stage_raws.log",
    benchmark:
        "results/benchmarks/data/raw/{visit}/stage_raws.tsv"
    localrule: True
    conda:
        "../envs/workflow.yaml"
    params:
        uri=lambda wildcards: f"{config['data']['path'].rstrip('/')}/raw/{wildcards.visit}",
    script:
        "../scripts/stage_data.py"


rule stage_instcal:
    output:
        instcal=directory("resources/data/instcal"),
    log:
        "logs/data/stage_instcal.log",
    benchmark:
        "results/benchmarks/data/stage_instcal.tsv"
    localrule: True
    conda:
        "../envs/workflow.yaml"
    params:
        uri=config["data"]["path"],
        patterns=INSTCAL_PATTERNS,
    script:
        "../scripts/stage_data.py"


rule stage_refcat:
    output:
        refcat=directory("resources/data/refcat"),
    log:
        "logs/data/stage_refcat.log",
    benchmark:
        "results/benchmarks/data/stage_refcat.tsv"
    localrule: True
    conda:
        "../envs/workflow.yaml"
    params:
        uri=config["data"]["refcat"],
        patterns=["*.fits"],
        key="data.refcat",
    script:
        "../scripts/stage_data.py"


rule index_instcal:
    input:
        staged=INSTCAL_DIR if config["data"]["source"] == "s3" else [],
    output:
        index="results/data/instcal-index.csv",
    log:
        "logs/data/index_instcal.log",
    benchmark:
        "results/benchmarks/data/index_instcal.tsv"
    localrule: True
    conda:
        "../envs/workflow.yaml"
    params:
        path=INSTCAL_DIR,
    script:
        "../scripts/index_instcal.py"
