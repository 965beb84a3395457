"""Run a batch's visits through the pipeline in this process: one Butler and one pipeline graph for
the whole batch, and for each visit its own quantum graph, RUN and quanta.

``pipetask run`` pays, for every visit, its command-line set-up, a new Butler, and reading,
configuring and resolving the pipeline again: about 2-3 s a visit here, more than the work of a
small visit. :class:`BatchExecutor` pays them once per batch. Each visit's quanta then run one after
another with the middleware's own :class:`~lsst.pipe.base.single_quantum_executor.SingleQuantumExecutor`,
as ``pipetask`` does, with the same outputs in the same RUN.

A quantum that fails for a reason in its data (a ``RepeatableQuantumError``, e.g. an
``AlgorithmError``) does not stop the others: the quanta that need its outputs are skipped, and the
visit's report lists it. Any other exception fails the visit at once (:class:`ProcessingError`).
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import networkx
from lsst.daf.butler import Butler, CollectionType
from lsst.pipe.base import Pipeline, RepeatableQuantumError, TaskFactory
from lsst.pipe.base.all_dimensions_quantum_graph_builder import AllDimensionsQuantumGraphBuilder
from lsst.pipe.base.single_quantum_executor import SingleQuantumExecutor
from lsst.utils.packages import Packages

log = logging.getLogger(__name__)


class ProcessingError(RuntimeError):
    """A visit failed for a reason that is not its data; a retry may succeed."""


def parse_override(override: str) -> tuple[str, str, str]:
    """``LABEL:KEY=VALUE`` (``pipetask -c``'s form) as (label, key, value)."""
    label, _, assignment = override.partition(":")
    key, equals, value = assignment.partition("=")
    if not (label and key and equals):
        raise ValueError(f"a config override is LABEL:KEY=VALUE, not {override!r}")
    return label, key, value


def class_name(exc: BaseException) -> str:
    return f"{type(exc).__module__}.{type(exc).__qualname__}"


class BatchExecutor:
    """The batch's Butler and resolved pipeline graph, and :meth:`run` for each of its visits.

    ``overrides`` are ``LABEL:KEY=VALUE`` config overrides (``pipetask -c``), ``inputs`` the
    collection the visits' inputs are found in.
    """

    def __init__(self, repo: str, *, pipeline: str, overrides: list[str], inputs: str, instrument: str):
        self.inputs, self.instrument = inputs, instrument
        self.butler = Butler.from_config(repo, writeable=True)
        loaded = Pipeline.from_uri(pipeline)
        for override in overrides:
            loaded.addConfigOverride(*parse_override(override))
        self.graph = loaded.to_graph(registry=self.butler.registry)
        # the software versions, which every RUN records: read once (0.7 s), not once a visit
        self.packages = Packages.fromSystem()

    def run(self, visit: int, run: str, report_path: Path) -> list[dict]:
        """Build ``visit``'s quantum graph and run its quanta into RUN ``run``; write the report of
        each quantum to ``report_path``. Returns the quanta that failed for a reason in their data
        (task, data id, exception class, message); [] when every quantum succeeded.

        Raises
        ------
        ProcessingError
            A quantum failed for another reason, or the graph could not be built.
        """
        self.butler.registry.registerCollection(run, CollectionType.RUN)
        butler = self.butler.clone(run=run, collections=[run, self.inputs])
        where = f"instrument='{self.instrument}' AND visit={visit}"
        try:
            builder = AllDimensionsQuantumGraphBuilder(
                self.graph, butler, where=where, input_collections=[self.inputs], output_run=run
            )
            predicted = builder.finish(output=None, metadata={"data_query": where}).assemble()
        except Exception as exc:
            raise ProcessingError(f"visit {visit}: no quantum graph: {class_name(exc)}: {exc}") from exc
        if not len(predicted):
            raise ProcessingError(f"visit {visit}: the quantum graph is empty (no data for {where})")
        predicted.write_configs(butler, compare_existing=False)
        predicted.write_init_outputs(butler, skip_existing=True)
        (packages_ref,) = predicted.get_init_outputs("").values()
        butler.put(self.packages, packages_ref)
        predicted.build_execution_quanta()
        executor = SingleQuantumExecutor(butler=butler, task_factory=TaskFactory())
        xgraph = predicted.quantum_only_xgraph
        reports, failures, blocked = [], [], set()
        for quantum_id in predicted:  # topological order
            node = xgraph.nodes[quantum_id]
            task, data_id = node["pipeline_node"].label, dict(node["quantum"].dataId.required)
            entry = {"taskLabel": task, "dataId": data_id}
            if quantum_id in blocked:
                reports.append(entry | {"status": "blocked", "reason": "an upstream quantum failed"})
                continue
            try:
                executor.execute(node["pipeline_node"], node["quantum"], quantum_id)
            except Exception as exc:
                info = {"className": class_name(exc), "message": str(exc)}
                reports.append(entry | {"status": "failure", "exceptionInfo": info})
                self._write(report_path, visit, run, reports)
                if not isinstance(exc, RepeatableQuantumError):
                    raise ProcessingError(
                        f"visit {visit}: {task} ({data_id}) failed: {info['className']}: {exc}"
                    ) from exc
                log.warning("visit %s: %s %s failed for a reason in its data: %s", visit, task, data_id, exc)
                failures.append(
                    {"task": task, "data_id": data_id, "exception": info["className"], "message": str(exc)}
                )
                blocked |= networkx.descendants(xgraph, quantum_id)
                continue
            reports.append(entry | {"status": "success"})
        self._write(report_path, visit, run, reports)
        return sorted(failures, key=lambda f: (f["task"], sorted(f["data_id"].items())))

    @staticmethod
    def _write(path: Path, visit: int, run: str, reports: list[dict]) -> None:
        status = "failure" if any(r["status"] != "success" for r in reports) else "success"
        record = {"visit": visit, "run": run, "status": status, "quantaReports": reports}
        path.write_text(json.dumps(record, indent=1, default=str) + "\n")
