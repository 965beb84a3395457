# The LSST stack: installed once per tag, activated by every LSST step.


rule install_stack:
    input:
        lock=stack_lock,
        tasks_project="tasks/pyproject.toml",
        tasks=TASK_SOURCES,
    output:
        manifest="resources/stack/{tag}/manifest.json",
        activate="resources/stack/{tag}/activate.sh",
        venv=directory("resources/stack/{tag}/venv"),
    log:
        "logs/stack/{tag}/install_stack.log",
    benchmark:
        "results/benchmarks/stack/{tag}/install_stack.tsv"
    conda:
        "../envs/workflow.yaml"
    params:
        method=config["stack"]["method"],
        python=config["stack"]["python"],
    script:
        "../scripts/install_stack.py"
