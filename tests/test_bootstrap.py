"""The head node's bootstrap script (ParallelCluster OnNodeConfigured).

The script is run for real by bash here, with stand-ins for the two files a
head node provides: pcluster's ``/etc/parallelcluster/cfnconfig`` and
``/etc/os-release``. Where the emulation stops: installing packages needs
root on the cluster's own OS (Amazon Linux, Ubuntu, RHEL, Rocky), so the
package step runs only on a real head node; here the tests cover what comes
before it (compute nodes skip it all; an unknown OS stops with a message).
Its upload and pcluster's check that it is there are in test_cluster_validation.
"""

from __future__ import annotations

import copy
import subprocess

import pytest
import yaml
from conftest import REPO_ROOT

from lsst_on_aws.cloud import bootstrap, checks, cluster

DEFAULT = yaml.safe_load((REPO_ROOT / "config/config.yaml").read_text())


def run_script(tmp_path, node_type: str, os_id: str) -> subprocess.CompletedProcess:
    script = tmp_path / "bootstrap.sh"
    script.write_text(bootstrap.SCRIPT)
    (tmp_path / "cfnconfig").write_text(f"cfn_node_type={node_type}\ncfn_cluster_user=ec2-user\n")
    (tmp_path / "os-release").write_text(f"ID={os_id}\n")
    env = {
        "PATH": "/usr/bin:/bin",
        "LSST_ON_AWS_CFNCONFIG": str(tmp_path / "cfnconfig"),
        "LSST_ON_AWS_OS_RELEASE": str(tmp_path / "os-release"),
    }
    folder = tmp_path / "shared" / "lsst-on-aws"
    return subprocess.run(["bash", str(script), str(folder)], capture_output=True, text=True, env=env)


def test_script_is_valid_bash():
    subprocess.run(["bash", "-n"], input=bootstrap.SCRIPT, text=True, check=True)


def test_compute_nodes_do_nothing(tmp_path):
    result = run_script(tmp_path, "ComputeFleet", "amzn")
    assert result.returncode == 0, result.stderr
    assert not (tmp_path / "shared").exists()


def test_unknown_os_stops_with_a_message(tmp_path):
    result = run_script(tmp_path, "HeadNode", "plan9")
    assert result.returncode == 1
    assert "no package recipe for OS 'plan9'" in result.stderr
    assert "cluster.custom_ami" in result.stderr


def config(**cluster_keys) -> dict:
    settings = copy.deepcopy(DEFAULT)
    settings["cluster"] |= {"subnet_id": "subnet-0123456789abcdef0"} | cluster_keys
    return settings


def test_action_reads_the_script_from_the_data_bucket_and_is_valid():
    settings = config(data_bucket="rubin-raws", name="run7")
    settings["stack"]["prefix"] = "/shared/lsst-stack"
    uri = bootstrap.script_uri(settings)
    assert uri == "s3://rubin-raws/lsst-on-aws/run7/bootstrap.sh"
    action = {"Script": uri, "Args": bootstrap.folders(settings)}
    assert action["Args"] == ["/shared/lsst-on-aws", "/shared/lsst-stack"]
    doc = cluster.render(settings, allowed_ips="10.0.0.1/32", bootstrap=action)
    assert doc["HeadNode"]["CustomActions"] == {"OnNodeConfigured": action}
    assert checks.schema_errors(doc, "run7") == []


def test_bootstrap_needs_a_bucket_unless_turned_off():
    with pytest.raises(
        cluster.ClusterConfigError, match=r"cluster\.data_bucket is empty.*cluster\.bootstrap: false"
    ):
        bootstrap.script_uri(config())
    assert bootstrap.script_uri(config(bootstrap=False)) is None
