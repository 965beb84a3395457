"""The control plane end to end on loopback: ``snakemake --profile aws`` driving a head node.

The "cluster" is this machine: ``remote.provider: existing`` (a provider that
only records the head node's address) pointing at the stand-in head node,
sshd on 127.0.0.1:2222 (``tests/services/sshd.sh``), with the local Slurm
(``tests/services/slurm.sh``) behind it. Everything after creation is real:
the budget check, rsync of the workflow and the resolved config, a detached
``snakemake --profile slurm`` started over ssh that runs its jobs through
Slurm, following its progress, fetching the results, and the teardown
decision. Where the emulation stops: no AWS resource is created or deleted
here (``existing`` never deletes; pcluster's create is exercised up to its dry
run in test_cluster_validation.py, its describe and delete in
test_lifecycle.py).
"""

from __future__ import annotations

import json
import subprocess
import tarfile
from pathlib import Path

import pandas as pd
import pytest
from conftest import BIN, SSHD_DIR, SSHD_PORT, UV_CACHE, copy_workflow, planned_jobs, snakemake

pytestmark = [pytest.mark.slurm, pytest.mark.sshd]


def control_plane_config(tmp_path: Path, port: int = SSHD_PORT) -> Path:
    """A config file: one visit, the stand-in head node, a head-node directory under ``tmp_path``."""
    # remote.command's default, `make env && .venv/bin/snakemake --profile slurm --configfile
    # {config}`, but for the venv: the stand-in head node shares this machine's, and has a home
    # of its own, where `make profiles` links the synced copy's profiles
    head_home = tmp_path / "head-node/home"
    command = (
        f"export PATH={BIN}:$PATH HOME={head_home} UV_CACHE_DIR={UV_CACHE}"
        " UV_NATIVE_TLS=1 UV_PYTHON_DOWNLOADS=never"
        " && make --no-print-directory profiles && snakemake --profile slurm --configfile {config}"
    )
    settings = {
        "process_visits": [1],
        "remote": {
            "provider": "existing",
            "head_node": {
                "host": "127.0.0.1",
                "user": "root",
                "port": port,
                "ssh_key_file": str(SSHD_DIR / "id_ed25519"),
                "known_hosts": str(SSHD_DIR / "known_hosts"),
            },
            "directory": str(tmp_path / "head-node/lsst-on-aws"),
            "command": command,
            "poll_seconds": 2,
        },
    }
    path = tmp_path / "control-plane.yaml"
    path.write_text(json.dumps(settings))
    return path


@pytest.fixture(scope="module")
def driven_run(tmp_path_factory):
    """``snakemake --profile aws`` run to its end against the stand-in head node."""
    tmp_path = tmp_path_factory.mktemp("control-plane")
    local = copy_workflow(tmp_path / "laptop")
    git = ["git", "-C", str(local), "-c", "user.name=t", "-c", "user.email=t@example.org"]
    for args in (["init", "-q"], ["add", "-A"], ["commit", "-q", "-m", "the user's checkout"]):
        subprocess.run([*git, *args], check=True, capture_output=True)
    config = control_plane_config(tmp_path)
    result = snakemake(local, "--profile", "aws", "--configfile", str(config), timeout=1800)
    return tmp_path, local, result, config


def test_the_run_happens_on_the_head_node_and_comes_back(driven_run):
    tmp_path, local, result, config = driven_run
    assert result.returncode == 0, result.stderr[-4000:]
    far = tmp_path / "head-node/lsst-on-aws"
    # the head node ran the data plane through Slurm, with the resolved config
    assert (far / "results/butler/repo/butler.yaml").exists()
    assert list((far / "logs/slurm").rglob("*.log")), "no job ran under Slurm"
    sent = (far / ".lsst-on-aws/config.yaml").read_text()
    assert "process_visits:\n- 1\n" in sent
    # the results came back; the laptop ran none of the data plane
    table = pd.read_csv(local / "results/summary/visits.csv")
    assert table["visit"].tolist() == [1] and table["status"].tolist() == ["ok"]
    # the bundle made on the head node (no .git there) names the laptop's commit
    head = subprocess.run(["git", "-C", str(local), "rev-parse", "HEAD"], capture_output=True, text=True)
    with tarfile.open(local / "results/provenance/lsst-on-aws-bundle.tar.gz") as bundle:
        manifest = json.load(bundle.extractfile("MANIFEST.json"))
    assert (manifest["workflow"]["commit"], manifest["workflow"]["dirty"]) == (head.stdout.strip(), False)
    assert (local / "results/costs/estimate.json").exists()  # the budget check ran here first
    assert not (local / "results/butler").exists()
    assert "Finished jobid" in (local / ".lsst-on-aws/run.log").read_text()
    # progress was reported while it ran, and the record says how it ended
    assert "remote run: " in result.stderr and "steps (100%) done" in result.stderr
    records = local / "results/clusters/lsst-on-aws"
    run = json.loads((records / "run.json").read_text())
    assert run["rc"] == 0 and run["head_node"] == f"root@127.0.0.1:{SSHD_PORT}"
    teardown = json.loads((records / "teardown.json").read_text())
    assert teardown["action"] == "left running" and teardown["run_ok"] is True
    # an existing head node has no lifetime of ours to pay: the run's own breakdown
    fetched = pd.read_csv(local / "results/costs/breakdown.csv")
    pd.testing.assert_frame_equal(pd.read_csv(records / "costs.csv"), fetched)
    # the records of a live cluster are gone with it; nothing is left to do
    assert not (records / "created.json").exists()
    again = snakemake(local, "--profile", "aws", "--configfile", str(config), "--dry-run")
    assert planned_jobs(again) == {}


def test_unreachable_head_node_is_a_clear_error(tmp_path):
    local = copy_workflow(tmp_path / "laptop")
    config = control_plane_config(tmp_path, port=1)
    result = snakemake(local, "--profile", "aws", "--configfile", str(config), timeout=600)
    assert result.returncode != 0
    assert "Sync to the head node failed: cannot reach the head node root@127.0.0.1:1" in result.stderr
    assert not (tmp_path / "head-node").exists()
    assert not (local / "results/clusters/lsst-on-aws/run.json").exists()


def test_failed_remote_run_is_reported_and_its_log_fetched(tmp_path):
    """The command on the head node fails: the control plane says so, with its exit status and log."""
    local = copy_workflow(tmp_path / "laptop")
    config = control_plane_config(tmp_path)
    settings = json.loads(config.read_text())
    settings["remote"]["command"] = "echo 'error: the data plane broke' >&2; exit 3"
    config.write_text(json.dumps(settings))
    result = snakemake(local, "--profile", "aws", "--configfile", str(config), timeout=600)
    assert result.returncode != 0
    assert "The run on the cluster failed (exit status 3)" in result.stderr
    assert "error: the data plane broke" in (local / ".lsst-on-aws/run.log").read_text()
    run = json.loads((local / "results/clusters/lsst-on-aws/run.json").read_text())
    assert run["rc"] == 3
