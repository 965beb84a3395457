# The pre-flight estimate and budget check (lsst_on_aws.accounting.budget): the configured
# visits priced on the configured cluster before anything runs or is created.
# Both planes make it: the control plane before it creates a cluster, the data
# plane as part of every run's costs.


rule estimate_cost:
    input:
        measured=config["budget"]["measured_timings"] or [],
        prices=PRICE_TABLE,
    output:
        json="results/costs/estimate.json",
    log:
        "logs/costs/estimate_cost.log",
    benchmark:
        "results/benchmarks/costs/estimate_cost.tsv"
    localrule: True
    conda:
        "../envs/workflow.yaml"
    params:
        ccds=len(PROCESS_VISITS) * ccds_per_visit(),
        detectors=ccds_per_visit(),
        # only what the price depends on: renaming the cluster reprices nothing
        cluster=cluster_settings(
            "compute_instance_type", "region", "market", "max_nodes"
        ),
        costs=config["costs"],
        budget=config["budget"],
        requested=requested_resources,
        price_cache=PRICE_CACHE,
        # the data plane's processing rule, whose jobs a measured timing table is read for
        processing_rule="process_batch",
    script:
        "../scripts/estimate_cost.py"
