# Timings and dollars of a run: the tidy timing table, the cost tables, and
# their figures (lsst_on_aws.accounting: timing, prices, model). Prices come
# from the committed, dated table (PRICE_TABLE) unless costs.prices is "aws";
# every dollar figure carries its price's source and date.


rule timing_table:
    input:
        benchmarks=run_benchmarks,
        # made from every batch's record: once it exists, so do the batches' and their
        # visits' files, read as parameters (one input, not an edge a visit in every plan)
        visits="results/summary/visits.parquet",
    output:
        parquet="results/costs/timings.parquet",
        csv=report(
            "results/costs/timings.csv",
            caption="../report/timings.rst",
            category="Costs",
            labels={"table": "timings of every job and quantum"},
        ),
    log:
        "logs/costs/timing_table.log",
    benchmark:
        "results/benchmarks/costs/timing_table.tsv"
    localrule: True
    conda:
        "../envs/workflow.yaml"
    params:
        # each benchmark file's rule, visit or batch; the visits, with their job and quanta records
        jobs=benchmark_jobs,
        visits=PROCESS_VISITS,
        job_records=visit_outputs("job.json"),
        quanta=visit_outputs("quanta.json"),
        runs={v: f"{config['butler']['output']}/{v}" for v in PROCESS_VISITS},
        instance_type=config["cluster"]["compute_instance_type"],
        processing_rule=rules.process_batch.rule.name,
    script:
        "../scripts/timing_table.py"


rule cost_tables:
    input:
        timings="results/costs/timings.parquet",
        prices=PRICE_TABLE,
    output:
        jobs="results/costs/jobs.csv",
        tasks="results/costs/tasks.csv",
        detectors="results/costs/detectors.csv",
        visits=report(
            "results/costs/visits.csv",
            caption="../report/cost_visits.rst",
            category="Costs",
            labels={"table": "cost per visit"},
        ),
        breakdown=report(
            "results/costs/breakdown.csv",
            caption="../report/cost_breakdown.rst",
            category="Costs",
            labels={"table": "cost by category"},
        ),
        instance_types=report(
            "results/costs/instance_types.csv",
            caption="../report/instance_types.rst",
            category="Costs",
            labels={"table": "cost on other instance types"},
        ),
        # the cheapest type that fits the largest job, beside the configured one
        recommendation="results/costs/recommendation.json",
    log:
        "logs/costs/cost_tables.log",
    benchmark:
        "results/benchmarks/costs/cost_tables.tsv"
    localrule: True
    conda:
        "../envs/workflow.yaml"
    params:
        cluster=cluster_settings(
            "compute_instance_type",
            "head_node_instance_type",
            "region",
            "market",
            "shared_storage_gb",
            "scaledown_idle_minutes",
        ),
        # the subnet whose zone the spot prices are compared with (costs.prices: aws only)
        subnet_id=zone_subnet(),
        costs=config["costs"],
        requested=requested_resources,
        price_cache=PRICE_CACHE,
        processing_rule=rules.process_batch.rule.name,
    script:
        "../scripts/cost_tables.py"


rule plot_costs:
    input:
        timings="results/costs/timings.parquet",
        jobs="results/costs/jobs.csv",
        breakdown="results/costs/breakdown.csv",
    output:
        gantt=report(
            "results/costs/gantt.png",
            caption="../report/gantt.rst",
            category="Costs",
            labels={"figure": "jobs per node over time"},
        ),
        costs=report(
            "results/costs/costs.png",
            caption="../report/costs_figure.rst",
            category="Costs",
            labels={"figure": "cost by category and per visit"},
        ),
        efficiency=report(
            "results/costs/efficiency.png",
            caption="../report/efficiency.rst",
            category="Costs",
            labels={"figure": "time and CPU efficiency"},
        ),
    log:
        "logs/costs/plot_costs.log",
    benchmark:
        "results/benchmarks/costs/plot_costs.tsv"
    localrule: True
    conda:
        "../envs/workflow.yaml"
    params:
        market=config["cluster"]["market"],
        processing_rule=rules.process_batch.rule.name,
    script:
        "../scripts/plot_costs.py"
