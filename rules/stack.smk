# The LSST stack: installed once per tag (in <stack.prefix>/<tag>/, by the
# configured method), activated by every LSST step through activate.sh.


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
