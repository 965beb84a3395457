"""The nodes' bootstrap script (ParallelCluster OnNodeConfigured, every node type).

The script is run for real by bash here, with stand-ins for the two files a
node provides: pcluster's ``/etc/parallelcluster/cfnconfig`` and
``/etc/os-release``, and with this machine's Python as the one "already on the
shared storage". Where the emulation stops: installing packages needs root on
the cluster's own OS (Amazon Linux, Ubuntu, RHEL, Rocky) and ``uv python
install`` needs the internet, so those steps run only on a real cluster and,
against a local stand-in of the download, on the test cluster of several hosts
(``tests/services/cluster.sh`` runs this script on each of its nodes;
test_multihost.py). Its upload and pcluster's check that it is there are in
test_cluster_validation.
"""

from __future__ import annotations

import copy
import subprocess
import sys

import pytest
import yaml
from conftest import REPO_ROOT

from lsst_on_aws.cloud import bootstrap, checks, cluster

DEFAULT = yaml.safe_load((REPO_ROOT / "config/config.yaml").read_text())


def run_script(
    tmp_path, node_type: str, os_id: str = "amzn", *, python: bool = True, path: str = "/usr/bin:/bin"
) -> subprocess.CompletedProcess:
    """The script on a node of ``node_type``; with ``python``, the shared Python is already there."""
    script = tmp_path / "bootstrap.sh"
    script.write_text(bootstrap.SCRIPT)
    (tmp_path / "cfnconfig").write_text(f"cfn_node_type={node_type}\ncfn_cluster_user=root\n")
    (tmp_path / "os-release").write_text(f"ID={os_id}\n")
    python_dir = tmp_path / "shared" / "python"
    if python:
        python_dir.mkdir(parents=True)
        (python_dir / bootstrap.PYTHON_VERSION).symlink_to(sys.base_prefix)
    env = {
        "PATH": path,
        "LSST_ON_AWS_CFNCONFIG": str(tmp_path / "cfnconfig"),
        "LSST_ON_AWS_OS_RELEASE": str(tmp_path / "os-release"),
        "LSST_ON_AWS_PYTHON_WAIT": "0",
    }
    folder = tmp_path / "shared" / "lsst-on-aws"
    args = ["--python-dir", str(python_dir), str(folder)]
    return subprocess.run(["/bin/bash", str(script), *args], capture_output=True, text=True, env=env)


def test_script_is_valid_bash():
    subprocess.run(["bash", "-n"], input=bootstrap.SCRIPT, text=True, check=True)


def test_compute_node_checks_that_the_shared_python_runs_there(tmp_path):
    result = run_script(tmp_path, "ComputeFleet")
    assert result.returncode == 0, result.stderr
    assert f"Python {sys.version.split()[0]} from the shared storage runs here" in result.stdout
    assert not (tmp_path / "shared" / "lsst-on-aws").exists()  # the head node's business


def test_compute_node_without_the_shared_python_fails_to_configure(tmp_path):
    result = run_script(tmp_path, "ComputeFleet", python=False)
    assert result.returncode == 1
    assert "the head node's bootstrap did not install it" in result.stderr


def test_head_node_with_python_there_gives_the_user_its_folders(tmp_path):
    result = run_script(tmp_path, "HeadNode")
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "shared" / "lsst-on-aws").is_dir()
    assert f"bin/python{bootstrap.PYTHON_VERSION}, make, rsync, git" in result.stdout


def test_unknown_os_stops_with_a_message(tmp_path):
    # a PATH with bash alone: make, rsync, git and python3 are all missing
    tools = tmp_path / "bin"
    tools.mkdir()
    (tools / "bash").symlink_to("/bin/bash")
    result = run_script(tmp_path, "HeadNode", "plan9", path=str(tools))
    assert result.returncode == 1
    assert "no package recipe for OS 'plan9' (missing: make rsync git python3-venv)" in result.stderr
    assert "cluster.custom_ami" in result.stderr


def test_uv_version_is_the_makefiles():
    makefile = (REPO_ROOT / "Makefile").read_text()
    assert f"UV_VERSION := {bootstrap.UV_VERSION}\n" in makefile
    assert f"PYTHON_VERSION ?= {bootstrap.PYTHON_VERSION}\n" in makefile


def config(**cluster_keys) -> dict:
    settings = copy.deepcopy(DEFAULT)
    settings["cluster"] |= {"subnet_id": "subnet-0123456789abcdef0"} | cluster_keys
    return settings


def test_action_reads_the_script_from_the_data_bucket_and_is_valid():
    settings = config(data_bucket="rubin-raws", name="run7")
    settings["stack"]["prefix"] = "/shared/lsst-stack"
    uri = bootstrap.script_uri(settings)
    assert uri == "s3://rubin-raws/lsst-on-aws/run7/bootstrap.sh"
    action = {"Script": uri, "Args": bootstrap.arguments(settings)}
    assert action["Args"] == [
        "--python-dir",
        "/shared/lsst-on-aws-python",
        "--registry",
        "/shared/lsst-on-aws-registry",
        "/shared/lsst-on-aws",
        "/shared/lsst-stack",
    ]
    doc = cluster.render(settings, allowed_ips="10.0.0.1/32", bootstrap=action)
    # the same action on the head node and on every queue's compute nodes
    assert doc["HeadNode"]["CustomActions"] == {"OnNodeConfigured": action}
    queues = doc["Scheduling"]["SlurmQueues"]
    assert [q["CustomActions"] for q in queues] == [{"OnNodeConfigured": action}] * 2
    assert checks.schema_errors(doc, "run7") == []


def test_bootstrap_needs_a_bucket_unless_turned_off():
    with pytest.raises(
        cluster.ClusterConfigError, match=r"cluster\.data_bucket is empty.*cluster\.bootstrap: false"
    ):
        bootstrap.script_uri(config())
    assert bootstrap.script_uri(config(bootstrap=False)) is None


@pytest.mark.parametrize(
    ("provider", "choice", "butler_registry", "url"),
    [
        ("pcluster", "auto", "sqlite", "postgresql://ec2-user@lsst-on-aws-registry:5432/lsst_on_aws"),
        ("existing", "auto", "sqlite", "sqlite"),
        ("existing", "postgresql", "sqlite", "postgresql://ec2-user@lsst-on-aws-registry:5432/lsst_on_aws"),
        ("pcluster", "sqlite", "sqlite", "sqlite"),
        ("pcluster", "auto", "postgresql://db.example.org/rubin", "postgresql://db.example.org/rubin"),
    ],
)
def test_the_registry_a_run_on_the_cluster_uses(provider, choice, butler_registry, url):
    """The head node's PostgreSQL on a cluster the workflow makes (or when asked), unless
    butler.registry names a database; its bootstrap is asked to serve it exactly then.
    """
    settings = config(registry=choice)
    settings["remote"]["provider"] = provider
    settings["butler"]["registry"] = butler_registry
    assert bootstrap.registry_url(settings) == url
    serves = choice == "postgresql" or (choice, provider) == ("auto", "pcluster")
    assert bootstrap.serves_registry(settings) == serves
    assert ("--registry" in bootstrap.arguments(settings)) == serves
