# Input data. From S3 (data.source: s3): the calibrations and each visit's
# raws staged from data.path into resources/data/, the folder every later
# step reads (a folder appears only once all its files have arrived). DECam
# InstCal files (instrument: DECam): an index of the directory's image files
# by exposure and CCD, from their headers, which each visit's ingest reads.


rule stage_calibs:
    output:
        calib=directory("resources/data/calib"),
    log:
        "logs/data/stage_calibs.log",
    benchmark:
        "results/benchmarks/data/stage_calibs.tsv"
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
    conda:
        "../envs/workflow.yaml"
    params:
        uri=lambda wildcards: f"{config['data']['path'].rstrip('/')}/raw/{wildcards.visit}",
    script:
        "../scripts/stage_data.py"


rule index_instcal:
    output:
        index="results/data/instcal-index.csv",
    log:
        "logs/data/index_instcal.log",
    benchmark:
        "results/benchmarks/data/index_instcal.tsv"
    conda:
        "../envs/workflow.yaml"
    params:
        path=config["data"]["path"],
    script:
        "../scripts/index_instcal.py"
