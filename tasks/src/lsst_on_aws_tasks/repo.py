"""A Butler repository's own life: create (or adopt) it, register a pipeline's dataset types,
clear a RUN, and chain the visits' RUNs into the output collection (one writer).
"""

from __future__ import annotations

import os
from pathlib import Path

from lsst.daf.butler import Butler, CollectionType, Config, MissingCollectionError


class RepositoryError(RuntimeError):
    """The repository cannot be used as asked; the message says why."""


def open_butler(repo: str | Butler, writeable: bool = False) -> Butler:
    """``repo`` itself when it is a Butler already (one a process: a batch's visits share it), else a
    Butler for that path.
    """
    return repo if isinstance(repo, Butler) else Butler.from_config(repo, writeable=writeable)


def create_repo(repo: str, seed_config: str, registry: str = "sqlite", namespace: str = "") -> dict:
    """Create a repository, or adopt the one already at ``repo``.

    ``registry`` is "sqlite" (a file in the repository) or a PostgreSQL URL,
    whose tables go in schema ``namespace``. An existing repository is never
    overwritten: it holds every earlier run's outputs. It is opened to prove
    it is usable and reused, provided it uses the registry asked for.
    """
    root = Path(repo)
    if (root / "butler.yaml").exists():
        butler = Butler.from_config(repo)
        action = "reused"
        db = str(butler._config["registry", "db"])
        if (registry == "sqlite") != db.startswith("sqlite") or (registry != "sqlite" and db != registry):
            raise RepositoryError(
                f"the repository {repo} uses the registry {db}, but the config asks for {registry};"
                " registries are not switched under an existing repository: use a new butler.repo"
            )
    else:
        config = Config(seed_config)
        if registry != "sqlite":
            config["registry", "db"] = registry
            config["registry", "namespace"] = namespace
        Butler.makeRepo(repo, config=config)
        butler = Butler.from_config(repo)
        action = "created"
    return {
        "repo": str(root.absolute()),
        "action": action,
        "registry": str(butler._config["registry", "db"]),
        "namespace": str(butler._config.get(("registry", "namespace"), "") or ""),
        "dimension_universe": f"{butler.dimensions.namespace}:{butler.dimensions.version}",
    }


def register_dataset_types(repo: str, pipeline_file: str) -> dict:
    """Register the dataset types a pipeline reads and writes, once, before any run.

    Registering them here, in one job, keeps concurrent ``pipetask`` runs
    from racing to insert the same definitions. A pipeline that does not
    write what the per-visit export reads is refused here, before any visit
    runs (raises `RepositoryError`).
    """
    from lsst.pipe.base import Pipeline

    from .export import EXPORTED_DATASETS

    butler = Butler.from_config(repo, writeable=True)
    graph = Pipeline.from_uri(pipeline_file).to_graph(registry=butler.registry)
    missing = [name for name in EXPORTED_DATASETS if name not in graph.dataset_types]
    if missing:
        raise RepositoryError(
            f"pipeline {os.path.expandvars(pipeline_file)} does not write {', '.join(missing)}, which the"
            " per-visit export reads (config key pipeline.file; see README, A stack's own pipeline)"
        )
    graph.register_dataset_types(butler, include_packages=True)
    return {
        "pipeline": os.path.expandvars(pipeline_file),  # a stack's, as resolved in it
        "tasks": sorted(graph.tasks.keys()),
        "dataset_types": sorted(graph.dataset_types.keys()),
    }


def remove_run(repo: str | Butler, run: str) -> bool:
    """Remove a RUN collection and its datasets, if it exists (from any chain too); ``repo`` a path
    or a writeable Butler.
    """
    butler = repo if isinstance(repo, Butler) else Butler.from_config(repo, writeable=True)
    try:
        butler.registry.getCollectionType(run)
    except MissingCollectionError:
        return False
    for parent in butler.registry.getCollectionParentChains(run):
        chain = [c for c in butler.registry.getCollectionChain(parent) if c != run]
        butler.registry.setCollectionChain(parent, chain)
    butler.removeRuns([run])
    return True


def set_chain(repo: str, chain: str, runs: list[str], inputs: str) -> list[str]:
    """Define ``chain`` as ``runs`` (newest first) followed by the inputs."""
    butler = Butler.from_config(repo, writeable=True)
    butler.registry.registerCollection(chain, CollectionType.CHAINED)
    children = [*runs, inputs]
    butler.registry.setCollectionChain(chain, children)
    return list(butler.registry.getCollectionChain(chain))


def chain_visits(repo: str, chain: str, visits_table: Path, inputs: str) -> dict:
    """Chain the RUNs of the visits whose processing succeeded, in the visit table's order.

    ``visits_table`` is the workflow's summary table (parquet: ``run``,
    ``status``, ``reason`` a visit). A failed visit's RUN (whatever its
    attempt left) stays out of the chain, so the chain holds only complete
    results; the record lists what was left out and why.
    """
    import pandas as pd

    table = pd.read_parquet(visits_table, columns=["run", "status", "reason"])
    ok = table["status"] == "ok"
    runs = list(table.loc[ok, "run"])
    failed = dict(zip(table.loc[~ok, "run"], table.loc[~ok, "reason"].fillna(""), strict=True))
    return {"chain": chain, "children": set_chain(repo, chain, runs, inputs), "left_out": failed}
