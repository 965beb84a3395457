"""The pcluster provider's describe, adopt, wait and delete, with the real ``pcluster`` CLI against moto.

Where the emulation stops: a real ``pcluster create-cluster`` cannot complete
on moto (pcluster's CloudFormation template uses resources moto lacks; its
dry run is tested in test_cluster_validation.py). So each test registers, on
moto's server (127.0.0.1), a cluster shaped the way pcluster 3.16 reads one:
a CloudFormation stack named after the cluster with pcluster's parameters and
version tag, its configuration in a versioned S3 bucket, and a head node
(an EC2 instance the stack owns, tagged as pcluster tags it). ``pcluster
describe-cluster`` and ``delete-cluster`` then run for real against it. moto
creates and deletes a stack at once, so CREATE_IN_PROGRESS and
DELETE_IN_PROGRESS are never seen here.
"""

from __future__ import annotations

import json

import boto3
import pytest
import yaml
from conftest import REPO_ROOT, moto_recording

from lsst_on_aws.cloud import lifecycle, providers
from lsst_on_aws.cloud.budgets import budget_name

VERSION = "3.16.1"
NAME = "lsst-test"
# the workflow's targets that delete what a teardown leaves, as the rules pass them
TARGETS = {
    "delete_cluster": f"results/clusters/{NAME}/deleted.json",
    "delete_storage": "results/storage/{id}/deleted.json",
}


def pcluster_shaped_cluster(name: str = NAME, shared_volume: bool = False) -> str:
    """A cluster as pcluster finds one, registered on moto: the head node's instance id.

    ``shared_volume``: with an EBS volume for /shared, retained as pcluster makes it (DeletionPolicy Retain).
    """
    session = boto3.Session(region_name="us-east-1")
    ec2, s3, cfn = session.client("ec2"), session.client("s3"), session.client("cloudformation")
    bucket = f"{name}-artifacts"
    s3.create_bucket(Bucket=bucket)
    s3.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})
    root = f"parallelcluster/{VERSION}/clusters/{name}-a1b2c3"
    body = yaml.safe_dump({"Region": "us-east-1", "Scheduler": "slurm"}).encode()
    version = s3.put_object(Bucket=bucket, Key=f"{root}/configs/cluster-config.yaml", Body=body)["VersionId"]
    parameters = {
        "ResourcesS3Bucket": bucket,
        "ArtifactS3RootDirectory": root,
        "ClusterUser": "ec2-user",
        "Scheduler": "slurm",
        "ConfigVersion": version,
    }
    image = ec2.describe_images(Owners=["amazon"])["Images"][0]["ImageId"]
    tags = [
        {"Key": "parallelcluster:cluster-name", "Value": name},
        {"Key": "parallelcluster:version", "Value": VERSION},
        {"Key": "parallelcluster:node-type", "Value": "HeadNode"},
    ]
    template = {
        "Parameters": {key: {"Type": "String"} for key in parameters},
        "Resources": {
            "HeadNode": {
                "Type": "AWS::EC2::Instance",
                "Properties": {"ImageId": image, "InstanceType": "t3.medium", "Tags": tags},
            }
        },
    }
    if shared_volume:
        template["Resources"]["EBS0"] = {
            "Type": "AWS::EC2::Volume",
            "DeletionPolicy": "Retain",
            "Properties": {"AvailabilityZone": "us-east-1a", "Size": 100, "VolumeType": "gp3"},
        }
    cfn.create_stack(
        StackName=name,
        TemplateBody=json.dumps(template),
        Parameters=[{"ParameterKey": k, "ParameterValue": v} for k, v in parameters.items()],
        Tags=[{"Key": "parallelcluster:version", "Value": VERSION}],
    )
    resources = cfn.describe_stack_resources(StackName=name)["StackResources"]
    return next(r["PhysicalResourceId"] for r in resources if r["LogicalResourceId"] == "HeadNode")


def config(teardown: str = "always") -> dict:
    settings = yaml.safe_load((REPO_ROOT / "config/config.yaml").read_text())
    settings["cluster"]["name"] = NAME
    settings["remote"] |= {"teardown": teardown, "poll_seconds": 0.2, "delete_timeout_minutes": 1}
    return settings


def instance_state(instance: str) -> str:
    ec2 = boto3.Session(region_name="us-east-1").client("ec2")
    return ec2.describe_instances(InstanceIds=[instance])["Reservations"][0]["Instances"][0]["State"]["Name"]


@pytest.fixture
def pcluster_home(tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path))  # pcluster writes its log under ~/.parallelcluster


def test_existing_cluster_is_adopted_never_duplicated(moto, pcluster_home):
    head = pcluster_shaped_cluster()
    provider = providers.Pcluster("us-east-1")
    budgets = boto3.Session(region_name="us-east-1").client("budgets")
    with moto_recording(moto) as requests:
        record = lifecycle.create(
            config(), "unused-because-adopted.yaml", lambda _: None, budgets=budgets, account="123456789012"
        )
    assert record["adopted"] is True and record["status"] == "CREATE_COMPLETE"
    # the budget alarm over the cluster's tag, at budget.max_usd a month
    assert record["budget_alarm"] == "created"
    budget = budgets.describe_budget(AccountId="123456789012", BudgetName=budget_name(NAME))["Budget"]
    assert budget["BudgetLimit"]["Amount"] in ("25.00", "25.0", "25")
    assert record["head_node_instance"] == head
    public = boto3.Session(region_name="us-east-1").client("ec2").describe_instances(InstanceIds=[head])
    assert record["head_node"] == public["Reservations"][0]["Instances"][0]["PublicIpAddress"]
    assert not [r for r in requests if "CreateStack" in r], "a second cluster was asked for"
    assert provider.describe("no-such-cluster") is None


def test_delete_waits_until_gone_and_is_idempotent(moto, pcluster_home):
    head = pcluster_shaped_cluster()
    seen = []
    record = lifecycle.teardown(config("always"), run_ok=True, on_progress=seen.append, targets=TARGETS)
    assert record["action"] == "deleted" and seen[-1] == f"cluster {NAME}: gone"
    assert providers.Pcluster("us-east-1").describe(NAME) is None
    assert instance_state(head) == "terminated"
    # a rerun of an interrupted teardown finds nothing left to delete
    assert (
        lifecycle.teardown(config("always"), run_ok=True, on_progress=seen.append, targets=TARGETS)["action"]
        == "absent"
    )


def test_teardown_names_the_retained_storage_and_leaves_it(moto, pcluster_home):
    pcluster_shaped_cluster(shared_volume=True)
    ec2 = boto3.Session(region_name="us-east-1").client("ec2")
    [volume] = ec2.describe_volumes()["Volumes"]
    seen = []

    record = lifecycle.teardown(config("always"), run_ok=True, on_progress=seen.append, targets=TARGETS)

    assert record["action"] == "deleted"
    assert record["retained_storage"] == [{"id": volume["VolumeId"], "kind": "ebs"}]
    assert ec2.describe_volumes(VolumeIds=[volume["VolumeId"]])["Volumes"][0]["State"] == "available"
    assert any(
        f"cluster.storage_id={volume['VolumeId']}" in line
        and f"results/storage/{volume['VolumeId']}/deleted.json" in line
        for line in seen
    )


@pytest.mark.parametrize(
    ("policy", "run_ok", "after_failure", "action"),
    [
        ("always", False, True, "deleted"),
        ("on-success", True, False, "deleted"),
        ("on-success", False, False, "kept"),
        ("on-success", True, True, "kept"),
        ("never", True, False, "kept"),
    ],
)
def test_teardown_policy(moto, pcluster_home, policy, run_ok, after_failure, action):
    head = pcluster_shaped_cluster()
    seen = []
    record = lifecycle.teardown(
        config(policy), run_ok, on_progress=seen.append, targets=TARGETS, after_failure=after_failure
    )
    assert record["action"] == action
    if action == "kept":
        assert instance_state(head) == "running"
        assert (
            f"it bills until you delete it: snakemake --profile aws results/clusters/{NAME}/deleted.json"
            in seen[-1]
        )
    else:
        assert instance_state(head) == "terminated"


def test_existing_provider_never_deletes():
    settings = config("always")
    settings["remote"] |= {
        "provider": "existing",
        "head_node": {**settings["remote"]["head_node"], "host": "login1"},
    }
    seen = []
    assert (
        lifecycle.teardown(settings, run_ok=True, on_progress=seen.append, targets=TARGETS)["action"]
        == "left running"
    )
    assert "existing one" in seen[-1]
    settings["remote"]["head_node"]["host"] = ""
    with pytest.raises(providers.ClusterError, match=r"remote\.head_node\.host is empty"):
        providers.provider_of(settings)


def test_lifetime_from_pclusters_and_our_own_times():
    assert lifecycle.lifetime_hours("2026-11-26T07:00:00.000Z", "2026-11-26T09:30:00+00:00") == 2.5


def test_the_ledger_says_whether_a_cluster_may_be_live(tmp_path):
    """Marked before creation; cleared only once a teardown found the cluster gone."""
    ledger = str(tmp_path / "records/.requested")
    assert not lifecycle.was_requested(ledger)
    lifecycle.mark_requested(ledger)
    assert lifecycle.was_requested(ledger)
    assert not lifecycle.record_gone({"action": "kept"}, ledger)
    assert lifecycle.was_requested(ledger)
    assert lifecycle.record_gone({"action": "deleted"}, ledger)
    assert not lifecycle.was_requested(ledger)
