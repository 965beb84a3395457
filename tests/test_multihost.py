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
import shutil
import signal
import subprocess
import tarfile
import time
import uuid
from pathlib import Path
from types import SimpleNamespace

import pandas as pd
import pytest
import yaml
from conftest import (
    BIN,
    PLANTED_ENV,
    REPO_ROOT,
    STACK_TAG,
    UV_CACHE,
    copy_workflow,
    find_secrets,
    planned_jobs,
    plant_ssh_key,
    planted_secrets,
    snakemake,
    snakemake_env,
)

CLUSTER_DIR = Path(os.environ.get("LOCAL_CLUSTER_DIR", "/var/tmp/lsst-on-aws/cluster"))
CLUSTER_SH = REPO_ROOT / "tests/services/cluster.sh"
HEAD = "10.213.1.2"
SPOT_NODES = {"spot-st-compute-1", "spot-st-compute-2"}
ONDEMAND_NODE = "ondemand-st-compute-1"
DEFAULTS = yaml.safe_load((REPO_ROOT / "config/config.yaml").read_text())
VISITS = [1, 2]

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


# folders of earlier test runs kept on the cluster's shared folder, for their logs (as pytest keeps
# its last temporary folders): each holds a venv and a stack, about 2 GB
KEEP_RUNS = 4


def prune_earlier_runs() -> None:
    """Remove all but the newest ``KEEP_RUNS`` run folders (and their homes) under /shared/tests."""
    tests = CLUSTER_DIR / "shared/tests"
    if not tests.is_dir():
        return
    runs = [p for p in tests.iterdir() if not p.name.endswith("-home")]
    runs.sort(key=lambda p: p.stat().st_mtime)
    for old in runs[:-KEEP_RUNS]:
        shutil.rmtree(old, ignore_errors=True)
        shutil.rmtree(tests / f"{old.name}-home", ignore_errors=True)


@pytest.fixture(scope="module", autouse=True)
def cluster_up():
    prune_earlier_runs()
    if cluster("status", check=False).returncode != 0:
        # a node lost by an earlier test boots again
        started = cluster("start", check=False, timeout=600)
        if started.returncode != 0:
            pytest.fail(f"the test cluster is not up (tests/services/cluster.sh start): {started.stderr}")


def multihost_config(
    tmp_path: Path,
    name: str,
    visits: list[int] = VISITS,
    key: Path = CLUSTER_DIR / "ssh/id_ed25519",
    **remote,
) -> Path:
    """A config file: ``visits``, the emulated head node (reached with ``key``), a directory of its
    own on /shared.
    """
    directory = f"/shared/tests/{name}"
    # the default command, after what stands in for the head node's internet: the package
    # caches, offline, and the uv wheel make env pip-installs
    internet = (
        f"export HOME={directory}-home UV_CACHE_DIR={UV_CACHE} UV_OFFLINE=1"
        f" PIP_NO_INDEX=1 PIP_FIND_LINKS={CLUSTER_DIR}/mirror/wheels"
    )
    settings = {
        "process_visits": visits,
        # the head node's PostgreSQL (auto would choose it only for a cluster made by pcluster),
        # a schema of this run's own in its database
        "cluster": {"registry": "postgresql"},
        "butler": {"namespace": name.replace("-", "_")},
        "remote": {
            "provider": "existing",
            "head_node": {
                "host": HEAD,
                "user": "root",
                "port": 22,
                "ssh_key_file": str(key),
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
    git = ["git", "-C", str(local), "-c", "user.name=t", "-c", "user.email=t@example.org"]
    for args in (["init", "-q"], ["add", "-A"], ["commit", "-q", "-m", "the user's checkout"]):
        subprocess.run([*git, *args], check=True, capture_output=True)
    name = f"run-{uuid.uuid4().hex[:8]}"
    # the user's key to the head node, at a path as recognisable as its content, and AWS
    # credentials in their shell: test_no_planted_secret_... looks for them in every output
    key, body = plant_ssh_key(tmp_path, CLUSTER_DIR / "ssh/id_ed25519")
    # a dead man's switch of 36 s, which the drive's own teardown must stand down
    config = multihost_config(tmp_path, name, key=key, abandon_hours=0.01)
    result = snakemake(local, "--profile", "aws", "--configfile", str(config), timeout=2400, env=PLANTED_ENV)
    return SimpleNamespace(
        local=local,
        result=result,
        config=config,
        directory=f"/shared/tests/{name}",
        secrets=planted_secrets(key, body),
    )


def test_the_run_spreads_over_compute_nodes_and_comes_back(driven_run):
    local, result, directory = driven_run.local, driven_run.result, driven_run.directory
    assert result.returncode == 0, result.stderr[-4000:]
    # the workflow's venv and the stack's run on the interpreter the bootstrap put on /shared
    venv = (shared(directory) / ".venv/pyvenv.cfg").read_text()
    assert "home = /shared/lsst-on-aws-python/3.12/bin" in venv
    # the Butler's registry is the head node's PostgreSQL, which every node reaches by one name
    repo = yaml.safe_load((shared(directory) / "results/butler/repo/butler.yaml").read_text())
    assert repo["registry"]["db"] == "postgresql://root@lsst-on-aws-registry:5432/lsst_on_aws"
    jobs = sacct_nodes(directory)
    assert set(jobs["state"]) == {"COMPLETED"}, jobs
    # the jobs ran on the compute nodes, on both spot ones (preferred); none on the head node
    assert set(jobs["node"]) >= SPOT_NODES, jobs
    assert set(jobs["partition"]) <= {"spot", "ondemand"}
    # the head node ran the data plane with the resolved config
    sent = (shared(directory) / ".lsst-on-aws/config.yaml").read_text()
    assert "process_visits:\n- 1\n- 2\n" in sent
    # the results came back; the laptop ran none of the data plane
    table = pd.read_csv(local / "results/summary/visits.csv")
    assert table["visit"].tolist() == VISITS and set(table["status"]) == {"ok"}
    assert (local / "results/provenance/report.zip").exists()  # the Snakemake report made there
    assert (local / "results/costs/estimate.json").exists()  # the budget check ran here first
    assert not (local / "results/butler").exists()
    assert "Finished jobid" in (local / ".lsst-on-aws/run.log").read_text()
    # the bundle made on the head node (no .git there) names the laptop's commit
    head = subprocess.run(["git", "-C", str(local), "rev-parse", "HEAD"], capture_output=True, text=True)
    with tarfile.open(local / "results/provenance/lsst-on-aws-bundle.tar.gz") as bundle:
        manifest = json.load(bundle.extractfile("MANIFEST.json"))
    assert (manifest["workflow"]["commit"], manifest["workflow"]["dirty"]) == (head.stdout.strip(), False)
    # progress was reported while it ran, and the records say how it ended
    assert "remote run: " in result.stderr and "steps (100%) done" in result.stderr
    records = local / "results/clusters/lsst-on-aws"
    run = json.loads((records / "run.json").read_text())
    assert run["rc"] == 0 and run["head_node"] == f"root@{HEAD}:22"
    teardown = json.loads((records / "teardown.json").read_text())
    assert teardown["action"] == "left running" and teardown["run_ok"] is True
    # an existing head node has no lifetime of ours to pay: the run's own breakdown
    fetched = pd.read_csv(local / "results/costs/breakdown.csv")
    pd.testing.assert_frame_equal(pd.read_csv(records / "costs.csv"), fetched)
    # the records of a live cluster are gone with it
    assert not (records / "created.json").exists()
    # the control plane settled the cluster: its dead man's switch stood down
    state = shared(directory) / ".lsst-on-aws"
    wait_for(lambda: "settled" in (state / "watchdog.log").read_text(), 60, "watchdog standing down")
    assert "the control plane settled the cluster: nothing to do" in (state / "watchdog.log").read_text()
    assert not (state / "abandoned.json").exists()


def assert_each_dataset_once(directory: str, visits: list[int]) -> None:
    """The Butler of the run in ``directory`` (read on the head node) holds each dataset of ``visits``
    once, and every detector's (SimCam's 4) sources.
    """
    python = f"{directory}/resources/stack/{STACK_TAG}/venv/bin/python"
    out = on_head(f"cd {directory} && {python} -c '{DATASET_QUERY}'")
    datasets = json.loads(out.strip().splitlines()[-1])
    for name, rows in datasets.items():
        keys = [(visit, detector) for visit, detector, _ in rows]
        assert len(keys) == len(set(keys)), f"{name} has a dataset twice"
    assert {visit for visit, _, _ in datasets["single_visit_source"]} == set(visits)
    assert len(datasets["single_visit_source"]) == 4 * len(visits)


def test_the_butler_holds_each_dataset_once(driven_run):
    assert_each_dataset_once(driven_run.directory, VISITS)


# each host, from the same moment on, registers 20 RUN collections and prepends each to one chain:
# the registry writes that a batch of visits makes, and the one most prone to lost updates
RACE = """
import socket, sys, time
from lsst.daf.butler import Butler, CollectionType
butler = Butler.from_config("results/butler/repo", writeable=True)
if sys.argv[1] == "chain":
    butler.collections.register("race/chain", CollectionType.CHAINED)
    sys.exit()
if sys.argv[1] == "children":
    print(*butler.collections.get_info("race/chain").children)
    sys.exit()
host = socket.gethostname()
time.sleep(max(0.0, float(sys.argv[1]) - time.time()))
for i in range(20):
    run = f"race/{host}/{i}"
    butler.collections.register(run)
    butler.collections.prepend_chain("race/chain", run)
print("done", host)
"""


def test_two_hosts_write_the_registry_at_the_same_moment(driven_run):
    """A job on each spot node writes the registry (the head node's PostgreSQL) at the same moment,
    as two visits' jobs do: every RUN and every chain update of both is there, none lost.
    """
    directory = driven_run.directory
    python = f"{directory}/resources/stack/{STACK_TAG}/venv/bin/python"
    (shared(directory) / "race.py").write_text(RACE)
    on_head(f"cd {directory} && {python} race.py chain")
    start = time.time() + 15  # both jobs started and their Butlers open by then
    for node in sorted(SPOT_NODES):
        on_head(
            f"cd {directory} && sbatch -p spot -w {node} -o race-{node}.out --wrap '{python} race.py {start}'"
        )
    outputs = [shared(directory) / f"race-{node}.out" for node in sorted(SPOT_NODES)]
    wait_for(lambda: all(p.exists() and "done" in p.read_text() for p in outputs), 180, "both writers done")
    children = on_head(f"cd {directory} && {python} race.py children").split()
    expected = {f"race/{node}/{i}" for node in SPOT_NODES for i in range(20)}
    assert len(children) == len(expected) and set(children) == expected


def test_no_planted_secret_reaches_the_laptop_or_the_head_node(driven_run):
    """The control plane ran with fake AWS credentials in its environment and its SSH key at a
    recognisable path (the key's content is the test cluster's key). Nothing it wrote on the laptop
    (records, logs, fetched results, the bundle and report made on the head node) nor anything the
    run wrote on the head node's shared storage holds them; only the user's own config file names
    the key. Not searched: the laptop's ``.snakemake/metadata``, Snakemake's own record of each
    job's parameters (the control plane's jobs are given the key's path to reach the head node),
    kept on the laptop and never published; the head node's environments and package caches
    (``.venv``, the stack). Its system logs are the test cluster's, not AWS's.
    """
    local, secrets = driven_run.local, driven_run.secrets
    places = [local / name for name in ("results", "logs", ".snakemake/log", ".lsst-on-aws")]
    count, found = find_secrets(places, secrets, skip=("/venv/", "/.venv/", "/.cache/"))
    assert count > 200 and found == {}
    remote = shared(driven_run.directory)
    places = [remote / name for name in ("results", "logs", ".snakemake", ".lsst-on-aws")]
    places.append(Path(f"{remote}-home"))
    count, found = find_secrets(places, secrets, skip=("/venv/", "/.venv/", "/.cache/", "/stack/"))
    assert count > 200 and found == {}
    assert str(secrets[3]) in driven_run.config.read_text()  # it was planted


def test_rerun_has_nothing_to_do(driven_run):
    config = str(driven_run.config)
    again = snakemake(driven_run.local, "--profile", "aws", "--configfile", config, "--dry-run")
    assert planned_jobs(again) == {}


def test_an_abandoned_cluster_tears_itself_down(driven_run, tmp_path):
    """The control plane dies once a run has started and never comes back: when the run has ended
    and ``remote.abandon_hours`` (here 20 s) have passed, the head node's dead man's switch runs
    the teardown itself, by ``remote.teardown``, with the run's config and the workflow's
    environment there. The run is a short command in the folder of the drive above, whose
    environment is there already, for speed.

    With ``remote.provider: existing`` that teardown's decision is "left running" (nothing of
    ours to delete); the same module deleting a pcluster cluster from the head node, and the head
    node's IAM policy for it, are test_abandon.py's, against moto.
    """
    local = copy_workflow(tmp_path / "laptop")
    name = driven_run.directory.rsplit("/", 1)[1]
    config = multihost_config(tmp_path, name, command="sleep 10", abandon_hours=20 / 3600)
    state = shared(driven_run.directory) / ".lsst-on-aws"
    before = (state / "run.id").read_text()
    control = start_control_plane(local, config, tmp_path / "control-plane.log")
    wait_for(lambda: (state / "run.id").read_text() != before, 300, "run started on the head node")
    os.killpg(control.pid, signal.SIGKILL)
    control.wait(timeout=60)
    wait_for(lambda: (state / "abandoned.json").exists(), 300, "teardown by the dead man's switch")
    log = (state / "watchdog.log").read_text()
    assert "no control plane settled the cluster within 20 s: tearing it down" in log, log
    record = json.loads((state / "abandoned.json").read_text())
    assert (record["abandoned"], record["action"], record["run_ok"]) == (True, "left running", True)


def start_control_plane(local: Path, config: Path, log: Path) -> subprocess.Popen:
    """``snakemake --profile aws`` started in the background, in a process group of its own (as in a
    terminal, where Ctrl-C and a closed lid reach every process of the command); output to ``log``.

    Ctrl-C acts as in a terminal even when the tests themselves run in the background of a
    non-interactive shell (``nohup make test &``), which starts them with SIGINT ignored: an ignored
    signal stays ignored across exec, and Python then never raises KeyboardInterrupt.
    """
    with log.open("w") as out:
        return subprocess.Popen(
            [str(BIN / "snakemake"), "--profile", "aws", "--configfile", str(config)],
            cwd=local,
            env=snakemake_env(),
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
        )


def wait_for(condition, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"no {what} after {timeout:.0f} s"
        time.sleep(1)


def running_jobs() -> list[dict]:
    """The cluster's running jobs: id (with the array task), comment (rule_<name>...), node, partition."""
    out = on_head("squeue -h -t RUNNING -o '%i|%k|%N|%P'")
    fields = ("id", "comment", "node", "partition")
    return [dict(zip(fields, line.split("|"), strict=True)) for line in out.splitlines()]


def test_lost_nodes_and_a_laptop_that_goes_away_lose_nothing(tmp_path):
    """Everything that can go away while a run goes on, in one run:

    1. both spot nodes are lost while a visit is processed on one of them (their PID 1 killed,
       every process on them with it, as a spot reclaim ends an instance): Slurm requeues the
       visit's job, which runs again on the on-demand node, the only one left, as do all the jobs
       after it (the jobs go to "spot,ondemand", spot preferred);
    2. the control plane is killed (SIGKILL, a laptop that dies), then, rerun, interrupted
       (Ctrl-C), then, rerun, loses the head node for longer than its reconnect budget (the
       laptop's link down): each time the cluster is kept while its run goes on. Meanwhile the
       on-demand node is drained (its running jobs go on, no other starts), so that the run
       surely outlasts the laptop's three ends, whatever their length; it is resumed after them;
    3. the same command, rerun once more, follows the same run to its end and applies the
       teardown policy (the default, always).

    Nothing is lost or duplicated: the run ends well, once, and the Butler holds each visit's
    datasets once. With ``remote.provider: existing`` nothing would be deleted anyway: what is
    asserted is the decision, the same code path as for pcluster (whose deletion is
    test_lifecycle's). The lost nodes boot again afterwards.
    """
    local = copy_workflow(tmp_path / "laptop")
    name = f"away-{uuid.uuid4().hex[:8]}"
    # the run is held on its way (the node left drained) while the laptop's three ends take
    # 1-2 min: with four visits and no hold it once ended first; a reconnect budget of 15 s
    # instead of 10 min
    visits = [1, 2, 3, 4]
    config = multihost_config(tmp_path, name, visits=visits, reconnect_minutes=0.25)
    directory = f"/shared/tests/{name}"
    state = shared(directory) / ".lsst-on-aws"
    records = local / "results/clusters/lsst-on-aws"

    def run_alive() -> bool:
        return on_head(f"kill -0 $(cat {directory}/.lsst-on-aws/run.pid)", check=False) == ""

    def visit_on_spot() -> bool:
        victim[:] = [
            job
            for job in running_jobs()
            if job["comment"].startswith("rule_process_batch") and job["node"] in SPOT_NODES
        ][:1]
        return bool(victim)

    victim: list[dict] = []
    first = start_control_plane(local, config, tmp_path / "first.log")
    try:
        # 1. a visit on a spot node, then both spot nodes lost
        wait_for(visit_on_spot, 600, "visit processed on a spot node")
        for node in sorted(SPOT_NODES):
            cluster("crash", node)
        on_head(f"scontrol update nodename={ONDEMAND_NODE} state=drain reason=held-by-the-test")
        # 2a. the laptop dies while the run goes on
        run_id = (state / "run.id").read_text().strip()
        os.killpg(first.pid, signal.SIGKILL)
        first.wait(timeout=60)
        assert run_alive() and not (state / "run.rc").exists()

        # 2b. rerun, then Ctrl-C
        second_log = tmp_path / "second.log"
        second = start_control_plane(local, config, second_log)
        wait_for(lambda: "following the run already going on" in second_log.read_text(), 180, "re-attachment")
        os.killpg(second.pid, signal.SIGINT)
        second.wait(timeout=120)
        text = second_log.read_text()
        assert "is kept: the run on it goes on" in text, text[-3000:]
        assert run_alive() and not (records / "teardown.json").exists()

        # 2c. rerun, then the laptop loses its network for longer than the reconnect budget
        third_log = tmp_path / "third.log"
        third = start_control_plane(local, config, third_log)
        wait_for(lambda: "following the run already going on" in third_log.read_text(), 180, "re-attachment")
        cluster("unplug")
        try:
            third.wait(timeout=300)
        finally:
            cluster("plug")
        text = third_log.read_text()
        assert third.returncode != 0
        assert "is kept: its head node cannot be reached to see whether the run goes on" in text, text[-3000:]
        assert not (records / "teardown.json").exists()

        # 3. the same command once more follows the same run to its end
        assert run_alive(), "the run ended while held"
        on_head(f"scontrol update nodename={ONDEMAND_NODE} state=resume")
        final = snakemake(local, "--profile", "aws", "--configfile", str(config), timeout=1800)
    finally:
        if first.poll() is None:
            os.killpg(first.pid, signal.SIGKILL)
        on_head(f"scontrol update nodename={ONDEMAND_NODE} state=resume", check=False)
        cluster("start", timeout=600)
    assert final.returncode == 0, final.stderr[-4000:]
    assert json.loads((records / "run.json").read_text())["id"] == run_id  # never started twice
    teardown = json.loads((records / "teardown.json").read_text())
    assert teardown["run_ok"] is True and teardown["policy"] == "always"
    table = pd.read_csv(local / "results/summary/visits.csv")
    assert table["visit"].tolist() == visits and set(table["status"]) == {"ok"}
    assert_each_dataset_once(directory, visits)
    # the lost visit's job: its attempt on the spot node failed with the node, and ran again on demand
    job = victim[0]
    history = on_head(f"sacct -a -D -X -n -P -j {job['id']} -o JobID,NodeList,Partition,State")
    attempts = [line.split("|") for line in history.splitlines() if line]
    assert attempts[0][1] == job["node"] and attempts[0][3] == "NODE_FAIL", attempts
    assert attempts[-1][1:] == [ONDEMAND_NODE, "ondemand", "COMPLETED"], attempts
    # and no job failed for another's sake: every job's last attempt completed (the plugin's job
    # arrays, which the profile does not use, failed every other task of the lost one's array)
    jobs = sacct_nodes(directory)
    assert set(jobs["state"]) == {"COMPLETED"}, jobs
