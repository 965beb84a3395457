"""The cluster's dead man's switch (lsst_on_aws.cloud.abandon).

The watchdog script runs for real in bash here, with a stand-in teardown
command; its teardown runs for real with the ``pcluster`` CLI against a
pcluster-shaped cluster on moto's server (see test_lifecycle.py for where
that emulation stops), recording what it calls against
``config/head-node-iam-policy.json``. On the test cluster of several hosts,
test_multihost.py starts the switch from a real run and abandons it.
"""

from __future__ import annotations

import json
import shlex
import subprocess
import time

import boto3
import pytest
import yaml
from conftest import REPO_ROOT, moto_recording
from test_lifecycle import NAME, TARGETS, config, pcluster_home, pcluster_shaped_cluster  # noqa: F401

from lsst_on_aws.cloud import abandon, iam

# what CloudFormation deletes with the caller's rights, which moto does without asking
NOT_RECORDED = {
    "cloudwatch:DeleteAlarms",
    "cloudwatch:DeleteDashboards",
    "dynamodb:DeleteTable",
    "ec2:DeleteLaunchTemplate",
    "ec2:DeleteSecurityGroup",
    "ec2:TerminateInstances",
    "iam:DeleteInstanceProfile",
    "iam:DeleteRole",
    "iam:DeleteRolePolicy",
    "iam:DetachRolePolicy",
    "iam:RemoveRoleFromInstanceProfile",
    "lambda:DeleteFunction",
    "logs:DeleteLogGroup",
    "route53:ChangeResourceRecordSets",
    "route53:DeleteHostedZone",
}


def run_watchdog(tmp_path, *, settled: bool) -> subprocess.CompletedProcess:
    """The watchdog after a run that ended, 2 s to wait; settled by a control plane or not."""
    state = tmp_path / ".lsst-on-aws"
    state.mkdir()
    (state / "run.rc").write_text("0\n")
    if settled:
        time.sleep(0.01)
        (state / "settled").touch()
    script = abandon.watchdog_script(
        str(tmp_path), 2 / 3600, ".lsst-on-aws/settled", "echo TEARDOWN", poll_s=1
    )
    return subprocess.run(["bash", "-c", script], capture_output=True, text=True, timeout=60)


def test_watchdog_stands_down_when_the_control_plane_settled(tmp_path):
    result = run_watchdog(tmp_path, settled=True)
    assert result.returncode == 0
    assert "the control plane settled the cluster: nothing to do" in result.stdout
    assert "TEARDOWN" not in result.stdout


def test_watchdog_tears_down_an_abandoned_cluster(tmp_path):
    result = run_watchdog(tmp_path, settled=False)
    assert "no control plane settled the cluster within 2 s: tearing it down" in result.stdout
    assert result.stdout.strip().endswith("TEARDOWN")


def write_run(tmp_path, policy: str, rc: int) -> tuple:
    """The files the head node holds after a run: its config and exit status."""
    state = tmp_path / ".lsst-on-aws"
    state.mkdir()
    settings = config(policy)
    settings["remote"]["provider"] = "pcluster"
    (state / "config.yaml").write_text(yaml.safe_dump(settings))
    (state / "run.rc").write_text(f"{rc}\n")
    return state / "config.yaml", state / "abandoned.json"


@pytest.mark.parametrize(
    ("policy", "rc", "action"),
    [("always", 0, "deleted"), ("on-success", 1, "deleted"), ("never", 0, "kept")],
)
@pytest.mark.usefixtures("pcluster_home")
def test_abandoned_cluster_is_deleted_unless_teardown_is_never(moto, tmp_path, policy, rc, action):
    pcluster_shaped_cluster()
    config_path, record_path = write_run(tmp_path, policy, rc)
    command = shlex.split(abandon.teardown_command("python", str(config_path), str(record_path), TARGETS))
    assert command[:3] == ["python", "-m", "lsst_on_aws.cloud.abandon"]
    assert abandon.main(command[3:]) == 0
    record = json.loads(record_path.read_text())
    assert (record["action"], record["abandoned"], record["run_ok"]) == (action, True, rc == 0)
    stacks = boto3.Session(region_name="us-east-1").client("cloudformation").describe_stacks()["Stacks"]
    assert (NAME in {s["StackName"] for s in stacks if s["StackStatus"] != "DELETE_COMPLETE"}) == (
        action == "kept"
    )


@pytest.mark.usefixtures("pcluster_home")
def test_head_node_policy_allows_what_the_switch_calls(moto, tmp_path):
    pcluster_shaped_cluster()
    config_path, record_path = write_run(tmp_path, "always", 0)
    args = ["--config", str(config_path), "--record", str(record_path), "--targets", json.dumps(TARGETS)]
    with moto_recording(moto) as requests:
        abandon.main(args)
    assert json.loads(record_path.read_text())["action"] == "deleted"
    called = iam.recorded_actions(requests)
    allowed = iam.policy_actions(REPO_ROOT / "config/head-node-iam-policy.json")
    assert called <= allowed, f"the head node's policy lacks {sorted(called - allowed)}"
    assert allowed - called == NOT_RECORDED
