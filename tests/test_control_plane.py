"""The control plane's failures on loopback: ``snakemake --profile aws`` against a head node that
cannot be reached, or whose run fails.

The "cluster" is this machine: ``remote.provider: existing`` (a provider that
only records the head node's address) pointing at the stand-in head node,
sshd on 127.0.0.1:2222 (``tests/services/sshd.sh``). The whole drive, from the
budget check to the teardown record, across a head node and compute nodes
that share only /shared, is test_multihost.py's; no AWS resource is created or
deleted here (pcluster's create is exercised up to its dry run in
test_cluster_validation.py, its describe and delete in test_lifecycle.py).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from conftest import BIN, SSHD_DIR, SSHD_PORT, UV_CACHE, copy_workflow, snakemake

pytestmark = [pytest.mark.slurm, pytest.mark.sshd]


def control_plane_config(tmp_path: Path, port: int = SSHD_PORT) -> Path:
    """A config file: one visit, the stand-in head node, a head-node directory under ``tmp_path``."""
    # remote.command's default but for the venv: the stand-in head node shares this machine's,
    # and has a home of its own, where `make profiles` links the synced copy's profiles
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
