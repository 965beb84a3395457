"""``snakemake --profile aws`` against a cluster of several hosts, and the faults only they show.

The cluster is ``tests/services/cluster.sh`` (started by ``make test``): a head
node and three compute nodes, each its own network namespace on a private
network (10.213.0.0/24), the compute nodes each on its own Debian 12 root
filesystem with no Python 3.12, sharing only ``/shared`` (a bind mount: NFS
cannot run on this kernel). Every node ran the workflow's bootstrap as it came
up: the head node's put Python 3.12 on ``/shared``, each compute node's checked
that it runs there. The laptop is this machine's own namespace, which reaches
the head node by ssh at 10.213.1.2 only.

Where the emulation stops: the cluster exists already (``remote.provider:
existing``: nothing is created or deleted; pcluster's own create is exercised up
to its dry run in test_cluster_validation.py); the head node has no internet,
so the remote command is given the package caches (the environment's
``UV_CACHE_DIR``, offline) and the local uv wheel where a real head node would
download; nodes are not scaled from zero. The script's docstring lists the rest.
"""

from __future__ import annotations

import json
import os
import subprocess
import uuid
from pathlib import Path
from types import SimpleNamespace

import pandas as pd
import pytest
import yaml
from conftest import REPO_ROOT, STACK_TAG, UV_CACHE, copy_workflow, planned_jobs, snakemake

CLUSTER_DIR = Path(os.environ.get("LOCAL_CLUSTER_DIR", "/var/tmp/lsst-on-aws/cluster"))
CLUSTER_SH = REPO_ROOT / "tests/services/cluster.sh"
HEAD = "10.213.1.2"
SPOT_NODES = {"spot-st-compute-1", "spot-st-compute-2"}
DEFAULTS = yaml.safe_load((REPO_ROOT / "config/config.yaml").read_text())
VISITS = [1, 2, 3, 4]

pytestmark = pytest.mark.multihost

# per dataset type, (visit or exposure, detector, RUN) of each dataset in the output chain
DATASET_QUERY = """
import json
from lsst.daf.butler import Butler
b = Butler.from_config("results/butler/repo")
chain = "SimCam/runs/single-visit"
out = {}
for name in ("raw", "post_isr_image", "single_visit_source", "detector_summary", "visit_summary"):
    refs = b.query_datasets(name, collections=chain, limit=None, explain=False)
    out[name] = sorted([r.dataId.get("visit", r.dataId.get("exposure")), r.dataId.get("detector"), r.run]
                       for r in refs)
print(json.dumps(out))
"""


def cluster(*args: str, check: bool = True, timeout: float = 300) -> subprocess.CompletedProcess:
    """``tests/services/cluster.sh`` with ``args``; its output as text."""
    return subprocess.run(
        [str(CLUSTER_SH), *args], capture_output=True, text=True, check=check, timeout=timeout
    )


def on_head(command: str, check: bool = True) -> str:
    """A shell command on the head node; what it printed."""
    return cluster("exec", "head", "bash", "-c", f"cd / && {command}", check=check).stdout


def shared(path: str) -> Path:
    """Where this machine sees ``path`` under /shared: the cluster's shared folder."""
    return CLUSTER_DIR / "shared" / Path(path).relative_to("/shared")


@pytest.fixture(scope="module", autouse=True)
def cluster_up():
    if cluster("status", check=False).returncode != 0:
        # a node lost by an earlier test boots again
        started = cluster("start", check=False, timeout=600)
        if started.returncode != 0:
            pytest.fail(f"the test cluster is not up (tests/services/cluster.sh start): {started.stderr}")


def multihost_config(tmp_path: Path, name: str, **remote) -> Path:
    """A config file: ``VISITS``, the emulated head node, a directory of its own on /shared."""
    directory = f"/shared/tests/{name}"
    # the default command, after what stands in for the head node's internet: the package
    # caches, offline, and the uv wheel make env pip-installs
    internet = (
        f"export HOME={directory}-home UV_CACHE_DIR={UV_CACHE} UV_OFFLINE=1"
        f" PIP_NO_INDEX=1 PIP_FIND_LINKS={CLUSTER_DIR}/mirror/wheels"
    )
    settings = {
        "process_visits": VISITS,
        "remote": {
            "provider": "existing",
            "head_node": {
                "host": HEAD,
                "user": "root",
                "port": 22,
                "ssh_key_file": str(CLUSTER_DIR / "ssh/id_ed25519"),
                "known_hosts": str(CLUSTER_DIR / "ssh/known_hosts"),
            },
            "directory": directory,
            "command": f"{internet} && {DEFAULTS['remote']['command']}",
            "poll_seconds": 2,
        }
        | remote,
    }
    path = tmp_path / "multihost.yaml"
    path.write_text(json.dumps(settings))
    return path


def sacct_nodes(directory: str) -> pd.DataFrame:
    """The Slurm jobs of the workflow in ``directory``: job id, name, partition, node, state, folder."""
    out = on_head("sacct -a -X -n -P -S now-3hours -o JobID,JobName,Partition,NodeList,State,WorkDir%200")
    rows = [line.split("|") for line in out.splitlines() if line]
    table = pd.DataFrame(rows, columns=["job", "name", "partition", "node", "state", "workdir"])
    return table[table["workdir"] == directory]


@pytest.fixture(scope="module")
def driven_run(tmp_path_factory):
    """``snakemake --profile aws`` run to its end against the emulated cluster's head node."""
    tmp_path = tmp_path_factory.mktemp("multihost")
    local = copy_workflow(tmp_path / "laptop")
    name = f"run-{uuid.uuid4().hex[:8]}"
    config = multihost_config(tmp_path, name)
    result = snakemake(local, "--profile", "aws", "--configfile", str(config), timeout=2400)
    return SimpleNamespace(local=local, result=result, config=config, directory=f"/shared/tests/{name}")


def test_the_run_spreads_over_compute_nodes_and_comes_back(driven_run):
    local, result, directory = driven_run.local, driven_run.result, driven_run.directory
    assert result.returncode == 0, result.stderr[-4000:]
    # the workflow's venv and the stack's run on the interpreter the bootstrap put on /shared
    venv = (shared(directory) / ".venv/pyvenv.cfg").read_text()
    assert "home = /shared/lsst-on-aws-python/3.12/bin" in venv
    jobs = sacct_nodes(directory)
    assert set(jobs["state"]) == {"COMPLETED"}, jobs
    # the jobs ran on the compute nodes, on both spot ones (the default queue); none on the head
    assert set(jobs["node"]) >= SPOT_NODES, jobs
    assert set(jobs["partition"]) == {"spot"}
    # the results came back; the laptop ran none of the data plane
    table = pd.read_csv(local / "results/summary/visits.csv")
    assert table["visit"].tolist() == VISITS and set(table["status"]) == {"ok"}
    assert (local / "results/provenance/lsst-on-aws-bundle.tar.gz").exists()
    assert not (local / "results/butler").exists()
    teardown = json.loads((local / "results/clusters/lsst-on-aws/teardown.json").read_text())
    assert teardown["action"] == "left running" and teardown["run_ok"] is True


def test_the_butler_holds_each_dataset_once(driven_run):
    directory = driven_run.directory
    python = f"{directory}/resources/stack/{STACK_TAG}/venv/bin/python"
    out = on_head(f"cd {directory} && {python} -c '{DATASET_QUERY}'")
    datasets = json.loads(out.strip().splitlines()[-1])
    for name, rows in datasets.items():
        keys = [(visit, detector) for visit, detector, _ in rows]
        assert len(keys) == len(set(keys)), f"{name} has a dataset twice"
    assert {visit for visit, _, _ in datasets["single_visit_source"]} == set(VISITS)
    assert len(datasets["single_visit_source"]) == 4 * len(VISITS)


def test_rerun_has_nothing_to_do(driven_run):
    config = str(driven_run.config)
    again = snakemake(driven_run.local, "--profile", "aws", "--configfile", config, "--dry-run")
    assert planned_jobs(again) == {}
