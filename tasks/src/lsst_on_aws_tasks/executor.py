"""Run a batch's visits through the pipeline in this process: one Butler and one pipeline graph for
the whole batch, and for each visit its own quantum graph, RUN and quanta.

``pipetask run`` pays, for every visit, its command-line set-up, a new Butler, and reading,
configuring and resolving the pipeline again: about 2-3 s a visit here, more than the work of a
small visit. :class:`BatchExecutor` pays them once per batch. Each visit's quanta then run with the
middleware's own :class:`~lsst.pipe.base.single_quantum_executor.SingleQuantumExecutor`, as
``pipetask`` does, with the same outputs in the same RUN.

**Detectors in parallel.** With ``processes`` > 1 a visit's quanta are split into units: the chain
of quanta of each detector (e.g. its ISR, then its measurement), and each quantum of the whole visit
(e.g. the visit summary) on its own. Up to ``processes`` units run at once: in this process and in
``processes`` - 1 workers forked from it once the graph is built, so a worker pays neither the
imports nor the set-up (from a batch's second visit on, nor the tasks' first-call costs either); a
unit starts once the units it needs have finished.
(``pipetask -j`` instead starts a process for every quantum.)

**Registry writes grouped.** A visit's quanta read and write their files through a quantum-backed
Butler (the middleware's ``QuantumBackedButler``, as BPS's ``pipetask run-qbb`` jobs do), which
never touches the registry database; the datasets they wrote are then registered in one go, when the
visit ends (:meth:`BatchExecutor.register`), whether it succeeded or not. Through the full Butler, as
``pipetask run`` does, a visit's reads and writes came to hundreds of registry statements, most in
transactions of their own; with SQLite, every transaction of a writeable Butler takes the database's
write lock, so two batches at once spent a seventh of their time asleep waiting for it.

**Resume, not redo.** A visit's RUN is documented with a fingerprint of what its quanta read (the
ids of the graph's input datasets: raws, calibrations, reference catalogues), the task configs and
the software versions. A RUN with the same fingerprint is an earlier attempt at the same work that
was interrupted (a lost node, a time limit, a kill): the files it wrote but had not registered yet
(a killed process) are registered first, then its quanta run through the full Butler: complete
quanta are kept and skipped, and a quantum that left partial outputs has them removed before it runs
again, so no dataset is ever duplicated. A RUN with another fingerprint (changed raws, configs or
software), or none, is removed first, with everything in it.

A quantum that fails for a reason in its data (a ``RepeatableQuantumError``, e.g. an
``AlgorithmError``) does not stop the others: the quanta that need its outputs are skipped, and the
visit's report lists it. Any other exception fails the visit (:class:`ProcessingError`) once the
units already running have finished.
"""

from __future__ import annotations

import hashlib
import json
import logging
import multiprocessing
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from dataclasses import dataclass, field
from pathlib import Path

import networkx
from lsst.daf.butler import (
    Butler,
    ButlerConfig,
    CollectionType,
    DatasetRef,
    MissingCollectionError,
    Quantum,
    QuantumBackedButler,
)
from lsst.pipe.base import Pipeline, RepeatableQuantumError, TaskFactory
from lsst.pipe.base.all_dimensions_quantum_graph_builder import AllDimensionsQuantumGraphBuilder
from lsst.pipe.base.single_quantum_executor import SingleQuantumExecutor
from lsst.utils.packages import Packages

from .repo import remove_run

log = logging.getLogger(__name__)

FINGERPRINT = "lsst-on-aws fingerprint "


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


def units_of(xgraph: networkx.DiGraph) -> tuple[list[list], list[set[int]]]:
    """A visit's quanta in units that run in one process each, in an order that runs every unit
    after the units it needs: each detector's connected quanta, and each other quantum alone. Each
    unit lists its quanta in topological order. Also, for each unit, the indices of the units it
    needs.
    """
    order = list(networkx.topological_sort(xgraph))
    per_detector = [q for q in order if "detector" in xgraph.nodes[q]["quantum"].dataId.required]
    unit_of = {}
    for i, component in enumerate(networkx.weakly_connected_components(xgraph.subgraph(per_detector))):
        unit_of.update(dict.fromkeys(component, ("detector", i)))
    for q in order:
        unit_of.setdefault(q, ("visit", q))
    units: dict = {}
    for q in order:
        units.setdefault(unit_of[q], []).append(q)
    condensed = networkx.DiGraph()
    condensed.add_nodes_from(units)
    condensed.add_edges_from((unit_of[a], unit_of[b]) for a, b in xgraph.edges if unit_of[a] != unit_of[b])
    keys = list(networkx.topological_sort(condensed))
    index = {key: i for i, key in enumerate(keys)}
    needs = [{index[before] for before in condensed.predecessors(key)} for key in keys]
    return [units[key] for key in keys], needs


@dataclass
class UnitResult:
    """What running a unit of quanta gave: a report entry for each quantum, the quanta that failed
    for a reason in their data (and their ids), and the error that stopped it, if any.
    """

    reports: list[dict] = field(default_factory=list)
    failures: list[dict] = field(default_factory=list)
    failed_ids: list = field(default_factory=list)
    error: str = ""


# the visit being run, for the forked workers, which inherit it (set before the pool forks)
_VISIT: dict = {}


def _run_unit(quantum_ids: list, blocked: set) -> UnitResult:
    """Run a unit's quanta in order, in this process (a worker forked for the visit, or the visit's
    own process): skip those ``blocked`` by an upstream failure and those complete from an earlier
    attempt. Stops at the first failure that is not the data's.
    """
    executor, xgraph = _VISIT["executor"], _VISIT["xgraph"]
    result, blocked = UnitResult(), set(blocked)
    for quantum_id in quantum_ids:
        node = xgraph.nodes[quantum_id]
        task, data_id = node["pipeline_node"].label, dict(node["quantum"].dataId.required)
        entry = {"taskLabel": task, "dataId": data_id}
        if quantum_id in blocked:
            result.reports.append(entry | {"status": "blocked", "reason": "an upstream quantum failed"})
            continue
        try:
            outcome = executor.execute(node["pipeline_node"], node["quantum"], quantum_id)
        except Exception as exc:
            info = {"className": class_name(exc), "message": str(exc)}
            result.reports.append(entry | {"status": "failure", "exceptionInfo": info})
            if not isinstance(exc, RepeatableQuantumError):
                result.error = f"{task} ({data_id}) failed: {info['className']}: {exc}"
                return result
            log.warning("%s %s failed for a reason in its data: %s", task, data_id, exc)
            result.failures.append(
                {"task": task, "data_id": data_id, "exception": info["className"], "message": str(exc)}
            )
            result.failed_ids.append(quantum_id)
            blocked |= networkx.descendants(xgraph, quantum_id)
            continue
        if outcome.skipped_existing:
            result.reports.append(entry | {"status": "skipped", "reason": "complete in an earlier attempt"})
        else:
            result.reports.append(entry | {"status": "success"})
    return result


class BatchExecutor:
    """The batch's Butler and resolved pipeline graph, and :meth:`run` for each of its visits.

    ``overrides`` are ``LABEL:KEY=VALUE`` config overrides (``pipetask -c``), ``inputs`` the
    collection the visits' inputs are found in, ``processes`` how many units of a visit's quanta
    run at once.
    """

    def __init__(
        self,
        repo: str,
        *,
        pipeline: str,
        overrides: list[str],
        inputs: str,
        instrument: str,
        processes: int = 1,
    ):
        self.inputs, self.instrument, self.processes = inputs, instrument, max(1, processes)
        # read once: a quantum-backed Butler made from the path reads it again (25 ms a quantum)
        self.config = ButlerConfig(repo)
        self.butler = Butler.from_config(self.config, writeable=True)
        loaded = Pipeline.from_uri(pipeline)
        for override in overrides:
            loaded.addConfigOverride(*parse_override(override))
        self.graph = loaded.to_graph(registry=self.butler.registry)
        # the software versions, which every RUN records: read once (0.7 s), not once a visit
        self.packages = Packages.fromSystem()
        settings = hashlib.sha256()
        for label, task in sorted(self.graph.tasks.items()):
            settings.update(f"{label}\0{task.task_class_name}\0{task.config.saveToString()}\0".encode())
        settings.update(json.dumps(sorted(self.packages.items())).encode())
        self._settings = settings.hexdigest()
        self._overall_inputs = sorted(name for name, _ in self.graph.iter_overall_inputs())
        # the repository's definitions (a task may read or write a dataset as another storage class)
        self._dataset_types = {node.name: node.dataset_type for node in self.graph.dataset_types.values()}

    def _quantum_butler(self, quantum: Quantum) -> QuantumBackedButler:
        """A Butler for one quantum that reads and writes its files without the registry."""
        return QuantumBackedButler.initialize(
            config=self.config,
            quantum=quantum,
            dimensions=self.butler.dimensions,
            dataset_types=self._dataset_types,
        )

    def register(self, refs: list[DatasetRef]) -> None:
        """Register, in one go, those of ``refs`` (outputs of a visit's quanta) whose files a
        quantum-backed Butler wrote; those already registered, and those not written (a quantum that
        failed or did not run), are passed over.
        """
        refs = [
            ref.replace(storage_class=self._dataset_types[ref.datasetType.name].storageClass_name)
            for ref in refs
        ]
        with QuantumBackedButler.from_predicted(
            config=self.config,
            predicted_inputs=[ref.id for ref in refs],
            predicted_outputs=[],
            dimensions=self.butler.dimensions,
            datastore_records={},
            dataset_types=self._dataset_types,
        ) as written:
            # "auto": the files are already where the repository keeps them; they stay there
            self.butler.transfer_from(
                written, refs, transfer="auto", skip_missing=True, register_dataset_types=False,
                transfer_dimensions=False,
            )  # fmt: skip

    def fingerprint(self, predicted) -> str:
        """What the visit's quanta read and how they are configured: the ids of the graph's input
        datasets, the task configs and the software versions.
        """
        digest = hashlib.sha256(self._settings.encode())
        for name in self._overall_inputs:
            ids = sorted(str(i) for i in predicted.datasets_by_type.get(name, {}).values())
            digest.update(f"{name}\0{','.join(ids)}\0".encode())
        return FINGERPRINT + digest.hexdigest()

    def _prepare_run(self, run: str, fingerprint: str) -> bool:
        """Keep ``run`` when an earlier attempt at the same work left it (True: resume); otherwise
        remove whatever it holds and register it anew, documented with ``fingerprint`` (False).
        """
        registry = self.butler.registry
        try:
            if registry.getCollectionDocumentation(run) == fingerprint:
                return True
        except MissingCollectionError:
            pass
        removed = remove_run(self.butler, run)
        log.info("%s run %s", "removed an earlier, different attempt of" if removed else "new", run)
        registry.registerCollection(run, CollectionType.RUN)
        registry.setCollectionDocumentation(run, fingerprint)
        return False

    def run(self, visit: int, run: str, report_path: Path) -> list[dict]:
        """Build ``visit``'s quantum graph and run its quanta into RUN ``run``; write the report of
        each quantum to ``report_path``. Returns the quanta that failed for a reason in their data
        (task, data id, exception class, message); [] when every quantum succeeded.

        Raises
        ------
        ProcessingError
            A quantum failed for another reason, or the graph could not be built.
        """
        where = f"instrument='{self.instrument}' AND visit={visit}"
        try:
            # clobber: outputs an earlier attempt left in the RUN keep their ids in the graph, so
            # the quantum executor can tell complete quanta (skipped) from partial ones (redone)
            builder = AllDimensionsQuantumGraphBuilder(
                self.graph, self.butler, where=where, input_collections=[self.inputs], output_run=run,
                clobber=True,
            )  # fmt: skip
            predicted = builder.finish(output=None, metadata={"data_query": where}).assemble()
        except Exception as exc:
            raise ProcessingError(f"visit {visit}: no quantum graph: {class_name(exc)}: {exc}") from exc
        if not len(predicted):
            raise ProcessingError(f"visit {visit}: the quantum graph is empty (no data for {where})")
        resumed = self._prepare_run(run, self.fingerprint(predicted))
        if resumed:
            log.info("visit %s: resuming the earlier attempt left in run %s", visit, run)
        butler = self.butler.clone(run=run, collections=[run, self.inputs])
        predicted.write_configs(butler, compare_existing=resumed)
        predicted.write_init_outputs(butler, skip_existing=True)
        (packages_ref,) = predicted.get_init_outputs("").values()
        if not (resumed and butler.stored(packages_ref)):
            butler.put(self.packages, packages_ref)
        predicted.build_execution_quanta()
        xgraph = predicted.quantum_only_xgraph
        outputs = [
            ref for node in xgraph.nodes.values() for refs in node["quantum"].outputs.values() for ref in refs
        ]
        if resumed:
            # what a killed attempt wrote is registered, so that its complete quanta are seen as such
            self.register(outputs)
            quantum_executor = SingleQuantumExecutor(
                butler=butler, task_factory=TaskFactory(), skip_existing=True, clobber_outputs=True
            )
        else:
            quantum_executor = SingleQuantumExecutor(
                task_factory=TaskFactory(), limited_butler_factory=self._quantum_butler,
                assume_no_existing_outputs=True,
            )  # fmt: skip
        _VISIT["executor"], _VISIT["xgraph"] = quantum_executor, xgraph
        try:
            result = self._execute(xgraph)
        finally:
            _VISIT.clear()
            if not resumed:
                self.register(outputs)
        self._write(report_path, visit, run, result.reports, resumed)
        if result.error:
            raise ProcessingError(f"visit {visit}: {result.error}")
        return sorted(result.failures, key=lambda f: (f["task"], sorted(f["data_id"].items())))

    def _execute(self, xgraph: networkx.DiGraph) -> UnitResult:
        """Run the visit's quanta: one after another, or in units (:func:`units_of`), ``processes``
        at a time: here, and in ``processes`` - 1 forked workers.
        """
        if self.processes == 1:
            return _run_unit(list(networkx.topological_sort(xgraph)), set())
        units, needs = units_of(xgraph)
        if len(units) == 1:
            return _run_unit(units[0], set())
        total, blocked, done = UnitResult(), set(), set()
        pending, running = list(range(len(units))), {}

        def merge(i: int, result: UnitResult) -> None:
            done.add(i)
            total.reports += result.reports
            total.failures += result.failures
            for failed in result.failed_ids:
                blocked.update(networkx.descendants(xgraph, failed))
            total.error = total.error or result.error

        workers = self.processes - 1
        # the workers must not share this process's database connections
        self.butler.registry.resetConnectionPool()
        context = multiprocessing.get_context("fork")
        with ProcessPoolExecutor(max_workers=workers, mp_context=context) as pool:
            while (pending and not total.error) or running:
                ready = [i for i in pending if needs[i] <= done] if not total.error else []
                # the workers get up to two units each, so that none waits for this process to
                # hand it the next; this process runs one of the rest itself
                while ready and len(running) < 2 * workers:
                    i = ready.pop(0)
                    pending.remove(i)
                    running[pool.submit(_run_unit, units[i], blocked & set(units[i]))] = i
                if ready:
                    i = ready.pop(0)
                    pending.remove(i)
                    merge(i, _run_unit(units[i], blocked & set(units[i])))
                    finished = [future for future in running if future.done()]
                else:
                    finished, _ = wait(running, return_when=FIRST_COMPLETED)
                for future in finished:
                    i = running.pop(future)
                    try:
                        result = future.result()
                    except Exception as exc:  # a worker that died (killed, out of memory)
                        result = UnitResult(error=f"a worker process failed: {class_name(exc)}: {exc}")
                    merge(i, result)
        for i in pending:  # not started: an earlier unit's error stopped the visit
            total.reports += [
                {"taskLabel": xgraph.nodes[q]["pipeline_node"].label,
                 "dataId": dict(xgraph.nodes[q]["quantum"].dataId.required),
                 "status": "not run", "reason": "the visit stopped at another quantum's error"}
                for q in units[i]
            ]  # fmt: skip
        return total

    @staticmethod
    def _write(path: Path, visit: int, run: str, reports: list[dict], resumed: bool) -> None:
        status = "failure" if any(r["status"] not in ("success", "skipped") for r in reports) else "success"
        record = {"visit": visit, "run": run, "status": status, "resumed": resumed, "quantaReports": reports}
        path.write_text(json.dumps(record, indent=1, default=str) + "\n")
