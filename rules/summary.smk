# Aggregates: the per-visit summary table, the truth check and the report figures.


rule summarise_visits:
    input:
        batches=batch_records(),
    output:
        csv=report(
            "results/summary/visits.csv",
            caption="../report/visits.rst",
            category="Summary",
            labels={"table": "per-visit summary"},
        ),
        parquet="results/summary/visits.parquet",
    log:
        "logs/summary/summarise_visits.log",
    benchmark:
        "results/benchmarks/summary/summarise_visits.tsv"
    localrule: True
    conda:
        "../envs/workflow.yaml"
    params:
        bands=VISITS["band"].to_dict(),
        summaries=visit_outputs("summary.json"),
        jobs=visit_outputs("job.json"),
    script:
        "../scripts/summarise_visits.py"


rule check_truth:
    input:
        # made from every batch's record, each made from its simulated batch: the visits' files
        # and truth tables, parameters, exist once it does
        visits="results/summary/visits.parquet",
    output:
        csv=report(
            "results/summary/truth_check.csv",
            caption="../report/truth_check.rst",
            category="Summary",
            labels={"table": "measurements vs simulation truth"},
        ),
    log:
        "logs/summary/check_truth.log",
    benchmark:
        "results/benchmarks/summary/check_truth.tsv"
    localrule: True
    conda:
        "../envs/workflow.yaml"
    params:
        sources=visit_outputs("sources.parquet"),
        truth=truth_tables(),
    script:
        "../scripts/check_truth.py"


rule plot_visits:
    input:
        visits="results/summary/visits.parquet",
    output:
        png=report(
            "results/summary/visits.png",
            caption="../report/visits_figure.rst",
            category="Figures",
            labels={"figure": "PSF, sources, sky and time per visit"},
        ),
    log:
        "logs/summary/plot_visits.log",
    benchmark:
        "results/benchmarks/summary/plot_visits.tsv"
    localrule: True
    conda:
        "../envs/workflow.yaml"
    script:
        "../scripts/plot_visits.py"


rule plot_cutouts:
    input:
        # the visits' previews and catalogues, parameters, exist once it does
        visits="results/summary/visits.parquet",
    output:
        png=report(
            "results/summary/cutouts.png",
            caption="../report/cutouts.rst",
            category="Figures",
            labels={"figure": "each visit's image, detections and PSF stars"},
        ),
    log:
        "logs/summary/plot_cutouts.log",
    benchmark:
        "results/benchmarks/summary/plot_cutouts.tsv"
    localrule: True
    conda:
        "../envs/workflow.yaml"
    params:
        previews=visit_outputs("preview.fits"),
        sources=visit_outputs("sources.parquet"),
    script:
        "../scripts/plot_cutouts.py"
