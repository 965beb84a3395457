# The AWS ParallelCluster (lsst_on_aws.cloud.cluster, .checks): its configuration rendered
# from this workflow's config and checked offline by pcluster's own schema,
# then validated against AWS (credentials, instance types offered in the
# region, `pcluster create-cluster --dryrun true`) once the budget check has
# passed. Nothing here creates anything; these are the aws profile's first
# targets, and `snakemake results/cluster/validation.json` runs them alone.


rule cluster_config:
    output:
        yaml="results/cluster/cluster-config.yaml",
        bootstrap="results/cluster/bootstrap.sh",
    log:
        "logs/cluster/cluster_config.log",
    benchmark:
        "results/benchmarks/cluster/cluster_config.tsv"
    localrule: True
    conda:
        "../envs/workflow.yaml"
    params:
        config={
            key: config[key]
            for key in ("cluster", "costs", "stack", "data", "publish", "remote")
        },
    script:
        "../scripts/cluster_config.py"


rule validate_cluster:
    input:
        yaml="results/cluster/cluster-config.yaml",
        bootstrap="results/cluster/bootstrap.sh",
        estimate="results/costs/estimate.json",
    output:
        json="results/cluster/validation.json",
    log:
        "logs/cluster/validate_cluster.log",
    benchmark:
        "results/benchmarks/cluster/validate_cluster.tsv"
    localrule: True
    conda:
        "../envs/workflow.yaml"
    params:
        name=config["cluster"]["name"],
        region=config["cluster"]["region"],
        suppress=config["cluster"]["suppress_validators"],
        storage={key: config["cluster"][key] for key in ("storage_id", "storage_type")},
    script:
        "../scripts/validate_cluster.py"


# Retained shared storage, deleted only when asked by its id (teardown.json
# names it): `snakemake --profile aws results/storage/<id>/deleted.json`.
# Only storage a cluster of this workflow made or used, and nothing mounts.
rule delete_storage:
    output:
        record="results/storage/{storage_id}/deleted.json",
    log:
        "logs/storage/{storage_id}/delete_storage.log",
    benchmark:
        "results/benchmarks/storage/{storage_id}/delete_storage.tsv"
    localrule: True
    conda:
        "../envs/workflow.yaml"
    params:
        region=config["cluster"]["region"],
        tag_key=config["costs"]["tag_key"],
        timeout_minutes=config["remote"]["delete_timeout_minutes"],
        poll_seconds=config["remote"]["poll_seconds"],
    script:
        "../scripts/delete_storage.py"
