# The LSST stack: installed once per tag (in <stack.prefix>/<tag>/, by the
# configured method), activated by every LSST step through activate.sh. It is
# installed where Snakemake runs (on a cluster, the head node, onto the shared
# storage), not as a Slurm job: an lsstinstall takes hours, past any job's
# time limit, and needs the internet, which compute nodes may not have.


rule install_stack:
    input:
        lock=stack_lock,
        tasks_project="tasks/pyproject.toml",
        tasks=TASK_SOURCES,
    output:
        manifest=f"{STACK_PREFIX}/{{tag}}/manifest.json",
        activate=f"{STACK_PREFIX}/{{tag}}/activate.sh",
    log:
        "logs/stack/{tag}/install_stack.log",
    benchmark:
        "results/benchmarks/stack/{tag}/install_stack.tsv"
    localrule: True
    conda:
        "../envs/workflow.yaml"
    params:
        method=config["stack"]["method"],
        python=config["stack"]["python"],
        load_script=config["stack"]["load_script"],
        products=config["stack"]["products"],
        lsstinstall_url=config["stack"]["lsstinstall_url"],
    script:
        "../scripts/install_stack.py"
