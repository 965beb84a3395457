# The LSST stack: installed once per tag, activated by every LSST step.


rule install_stack:
    input:
        lock=stack_lock,
        tasks=TASK_SOURCES,
    output:
        manifest="resources/stack/{tag}/manifest.json",
        activate="resources/stack/{tag}/activate.sh",
        venv=directory("resources/stack/{tag}/venv"),
    params:
        method=config["stack"]["method"],
        python=config["stack"]["python"],
        tasks_dir="tasks",
    log:
        "logs/stack/{tag}/install_stack.log",
    benchmark:
        "results/benchmarks/stack/{tag}/install_stack.tsv"
    script:
        "../scripts/install_stack.py"
