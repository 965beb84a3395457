# The control plane (control-plane.smk, what `--profile aws` runs): this
# machine drives a cluster through rules with file targets in
# results/clusters/<name>/, so that a rerun goes on from where it stopped and
# never makes a second cluster (lsst_on_aws.cloud.lifecycle, .remote):
# create or adopt the cluster and wait for it; sync the workflow and the
# resolved config to its head node; run remote.command there detached and
# follow it; fetch the results; tear the cluster down as remote.teardown says.
# created.json and synced.json describe a live cluster: they are temporary,
# gone once the teardown has used them. After a failure, onerror tears down
# by the same policy, unless a run started on the cluster goes on (or its head
# node cannot be reached to tell): an interrupted laptop never deletes a
# healthy run, and rerunning the same command follows it again. A cluster it
# deleted is noted (DELETED_MARKER), an input of create_cluster, so that a
# rerun creates a new one. When the run ends, a dead man's switch starts on the
# head node: a cluster that no control plane settles (fetches and keeps or
# deletes) within remote.abandon_hours tears itself down
# (lsst_on_aws.cloud.abandon).


rule create_cluster:
    input:
        unpack(creation_inputs),
    output:
        record=temp(f"{CLUSTER_DIR}/created.json"),
    log:
        f"logs/clusters/{CLUSTER_NAME}/create_cluster.log",
    benchmark:
        f"results/benchmarks/clusters/{CLUSTER_NAME}/create_cluster.tsv"
    localrule: True
    conda:
        "../envs/workflow.yaml"
    params:
        config=control_plane_config(),
        provider=config["remote"]["provider"],
        ledger=REQUESTED_LEDGER,
    script:
        "../scripts/create_cluster.py"


rule sync_workflow:
    input:
        created=f"{CLUSTER_DIR}/created.json",
        files=workflow_files(),
    output:
        record=temp(f"{CLUSTER_DIR}/synced.json"),
        config=f"{CLUSTER_DIR}/config.yaml",
        source=f"{CLUSTER_DIR}/source.json",
    log:
        f"logs/clusters/{CLUSTER_NAME}/sync_workflow.log",
    benchmark:
        f"results/benchmarks/clusters/{CLUSTER_NAME}/sync_workflow.tsv"
    localrule: True
    conda:
        "../envs/workflow.yaml"
    params:
        config=control_plane_config(),
        data_plane=data_plane_config(),
        source_record=SOURCE_RECORD,
        known_hosts=KNOWN_HOSTS,
        excludes=SYNC_EXCLUDES,
    script:
        "../scripts/sync_workflow.py"


rule remote_run:
    input:
        created=f"{CLUSTER_DIR}/created.json",
        synced=f"{CLUSTER_DIR}/synced.json",
    output:
        record=f"{CLUSTER_DIR}/run.json",
    log:
        f"logs/clusters/{CLUSTER_NAME}/remote_run.log",
    benchmark:
        f"results/benchmarks/clusters/{CLUSTER_NAME}/remote_run.tsv"
    localrule: True
    conda:
        "../envs/workflow.yaml"
    params:
        config=control_plane_config(),
        known_hosts=KNOWN_HOSTS,
        started=STARTED_LEDGER,
        # the dead man's switch on the head node: the workflow's interpreter there (make env's),
        # and where it records a teardown of its own
        python=".venv/bin/python",
        abandoned=".lsst-on-aws/abandoned.json",
        targets=DELETE_TARGETS,
    script:
        "../scripts/remote_run.py"


rule fetch_results:
    input:
        created=f"{CLUSTER_DIR}/created.json",
        run=f"{CLUSTER_DIR}/run.json",
    output:
        record=f"{CLUSTER_DIR}/fetched.json",
    log:
        f"logs/clusters/{CLUSTER_NAME}/fetch_results.log",
    benchmark:
        f"results/benchmarks/clusters/{CLUSTER_NAME}/fetch_results.tsv"
    localrule: True
    conda:
        "../envs/workflow.yaml"
    params:
        config=control_plane_config(),
        known_hosts=KNOWN_HOSTS,
    script:
        "../scripts/fetch_results.py"


rule teardown:
    input:
        created=f"{CLUSTER_DIR}/created.json",
        run=f"{CLUSTER_DIR}/run.json",
        fetched=f"{CLUSTER_DIR}/fetched.json",
    output:
        record=f"{CLUSTER_DIR}/teardown.json",
    log:
        f"logs/clusters/{CLUSTER_NAME}/teardown.log",
    benchmark:
        f"results/benchmarks/clusters/{CLUSTER_NAME}/teardown.tsv"
    localrule: True
    conda:
        "../envs/workflow.yaml"
    params:
        config=control_plane_config(),
        after_run=True,
        ledger=REQUESTED_LEDGER,
        targets=DELETE_TARGETS,
        known_hosts=KNOWN_HOSTS,
    script:
        "../scripts/teardown.py"


# Deletes the cluster whatever remote.teardown says: the explicit way out for
# a cluster that was kept.
rule delete_cluster:
    output:
        record=f"{CLUSTER_DIR}/deleted.json",
    log:
        f"logs/clusters/{CLUSTER_NAME}/delete_cluster.log",
    benchmark:
        f"results/benchmarks/clusters/{CLUSTER_NAME}/delete_cluster.tsv"
    localrule: True
    conda:
        "../envs/workflow.yaml"
    params:
        config=control_plane_config(always=True),
        after_run=False,
        ledger=REQUESTED_LEDGER,
        targets=DELETE_TARGETS,
        known_hosts=KNOWN_HOSTS,
    script:
        "../scripts/teardown.py"


# The run's cost breakdown (fetched from the cluster) with the head node and
# the shared storage paid over the cluster's real lifetime, from its creation
# to its deletion (teardown.json).
rule cluster_costs:
    input:
        teardown=f"{CLUSTER_DIR}/teardown.json",
        fetched=f"{CLUSTER_DIR}/fetched.json",
        prices=PRICE_TABLE,
    output:
        table=f"{CLUSTER_DIR}/costs.csv",
    log:
        f"logs/clusters/{CLUSTER_NAME}/cluster_costs.log",
    benchmark:
        f"results/benchmarks/clusters/{CLUSTER_NAME}/cluster_costs.tsv"
    localrule: True
    conda:
        "../envs/workflow.yaml"
    params:
        # fetched from the cluster (remote.fetch), not made here
        breakdown="results/costs/breakdown.csv",
        cluster={
            key: config["cluster"][key]
            for key in ("region", "head_node_instance_type", "shared_storage_gb")
        },
        costs={
            key: config["costs"][key]
            for key in (
                "prices",
                "spot_fraction",
                "price_cache_days",
                "storage_usd_per_gb_month",
            )
        },
        price_cache=PRICE_CACHE,
    script:
        "../scripts/cluster_costs.py"


# The actual bill, from Cost Explorer, by the cluster's cost-allocation tag
# (needs AWS credentials; not part of a run: ask for it a day or more after
# the run, `snakemake --profile aws results/costs/bill.csv`). It reads the
# fetched timing table for the run's first day; nothing of the run reruns.
rule actual_bill:
    input:
        timings="results/costs/timings.parquet",
    output:
        csv=report(
            "results/costs/bill.csv",
            caption="../report/bill.rst",
            category="Costs",
            labels={"table": "the actual bill (Cost Explorer)"},
        ),
    log:
        "logs/costs/actual_bill.log",
    benchmark:
        "results/benchmarks/costs/actual_bill.tsv"
    localrule: True
    conda:
        "../envs/workflow.yaml"
    params:
        tag_key=config["costs"]["tag_key"],
        tag_value=config["cluster"]["name"],
    script:
        "../scripts/actual_bill.py"
