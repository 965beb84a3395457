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
        # what runs: the visits, their detectors, and the processing jobs' shape
        visits=len(PROCESS_VISITS),
        detectors=ccds_per_visit(),
        visits_per_job=config["visits_per_job"],
        cpus=visit_job_shape()["cpus"],
        mem_mb=visit_job_memory(None, visit_job_shape()["cpus"]),
        # the per-detector figures the jobs' runtime also comes from
        cost=lambda wildcards: vars(detector_cost()),
        # only what the price depends on: renaming the cluster reprices nothing
        cluster=cluster_settings(
            "compute_instance_type",
            "head_node_instance_type",
            "region",
            "market",
            "max_nodes",
            "scaledown_idle_minutes",
            "shared_storage_gb",
        ),
        # the subnet whose zone the spot prices are compared with (costs.prices: aws only)
        subnet_id=zone_subnet(),
        costs=config["costs"],
        budget=config["budget"],
        price_cache=PRICE_CACHE,
    script:
        "../scripts/estimate_cost.py"
