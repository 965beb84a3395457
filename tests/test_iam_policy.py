"""config/iam-policy.json against the AWS calls the workflow really makes.

Every request to moto's server is recorded (moto's own recorder) while the
workflow's AWS code runs: the credentials check, the instance-type check,
pcluster's dry run (a subprocess: its calls are recorded too), spot prices,
the bill, the budget alarm, and the lifecycle's describe, adoption and
delete of a pcluster-shaped cluster (see test_lifecycle), the buckets and
retained storage checked before a cluster is created, and the deletion of
retained storage of each kind. Each request becomes the IAM action it needs.
The policy must allow each of them and nothing else, but for the Pricing API,
which moto does not emulate (its call is tested with botocore's Stubber in
test_costs). Lifecycle actions join the policy with the code that calls them.
"""

from __future__ import annotations

import contextlib
import json

import boto3
import pytest
import yaml
from conftest import REPO_ROOT, moto_recording
from test_lifecycle import NAME, TARGETS, pcluster_shaped_cluster

from lsst_on_aws.accounting import bill, prices
from lsst_on_aws.cloud import (
    bootstrap,
    budgets,
    checks,
    cluster,
    iam,
    lifecycle,
    pcluster,
    s3data,
    storage,
)

NOT_EMULATED = {"pricing:GetProducts"}


def retained_storage(session) -> list[str]:
    """An EBS volume, an EFS and an FSx file system that a cluster of the workflow retained."""
    tags = [{"Key": "lsst-on-aws:cluster", "Value": "lsst-on-aws"}]
    ec2 = session.client("ec2")
    spec = [{"ResourceType": "volume", "Tags": tags}]
    volume = ec2.create_volume(AvailabilityZone="us-east-1a", Size=100, TagSpecifications=spec)["VolumeId"]
    efs = session.client("efs").create_file_system(Tags=tags)["FileSystemId"]
    subnet = ec2.describe_subnets()["Subnets"][0]["SubnetId"]
    fsx = session.client("fsx").create_file_system(
        FileSystemType="LUSTRE", StorageCapacity=1200, SubnetIds=[subnet], Tags=tags
    )["FileSystem"]["FileSystemId"]
    return [volume, efs, fsx]


def test_policy_allows_exactly_what_the_workflow_calls(moto, moto_account, tmp_path, monkeypatch):
    config = yaml.safe_load((REPO_ROOT / "config/config.yaml").read_text())
    config["cluster"] |= moto_account
    action = {"Script": bootstrap.script_uri(config), "Args": bootstrap.folders(config)}
    doc = cluster.render(config, allowed_ips=moto_account["allowed_ips"], bootstrap=action)
    path = tmp_path / "cluster-config.yaml"
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    script = tmp_path / "bootstrap.sh"
    script.write_text(bootstrap.SCRIPT)
    monkeypatch.setenv("HOME", str(tmp_path))  # pcluster's log
    session = boto3.Session(region_name="us-east-1")
    # set up, not the workflow's calls: a cluster to adopt and delete (its storage retained), and
    # retained storage of each kind to delete
    pcluster_shaped_cluster(shared_volume=True)
    retained = retained_storage(session)
    lifecycle_config = config | {"cluster": config["cluster"] | {"name": NAME}}
    with moto_recording(moto) as requests:
        identity = checks.caller_identity(session.client("sts"))
        checks.check(doc, "lsst-on-aws", ec2=session.client("ec2"))
        checks.check_buckets(doc, session.client("s3"))
        storage.check_reusable(storage.describe(session, retained[0]), "ebs", "us-east-1a")
        s3data.publish(session.client("s3"), {"bootstrap.sh": script}, action["Script"].rsplit("/", 1)[0])
        pcluster.dry_run(str(path), "lsst-on-aws", moto_account["suppress_validators"])
        with contextlib.suppress(prices.PriceError):  # moto may have no history: the call is what counts
            table = prices.load_price_table(REPO_ROOT / "config/prices/ec2-on-demand-2024-06.csv")
            prices.spot_price(session.client("ec2"), prices.table_price("c6i.2xlarge", "us-east-1", table))
        tag = ("lsst-on-aws:cluster", "lsst-on-aws")
        bill.actual_bill(session.client("ce"), *tag, "2026-11-25", "2026-11-27")
        budgets.budget_alarm(
            session.client("budgets"), identity["Account"], budgets.budget_name("lsst-on-aws"), tag, 25.0
        )
        lifecycle.create(lifecycle_config, str(path), on_progress=lambda _: None)
        lifecycle.teardown(lifecycle_config, run_ok=True, on_progress=lambda _: None, targets=TARGETS)
        for storage_id in retained:
            storage.delete(session, storage_id, tag[0], poll_s=0.1, on_progress=lambda _: None)
    called = iam.recorded_actions(requests)
    allowed = iam.policy_actions(REPO_ROOT / "config/iam-policy.json")
    assert called <= allowed, f"the policy lacks {sorted(called - allowed)}"
    unused = allowed - called
    assert unused == NOT_EMULATED, f"the policy allows what nothing calls: {sorted(unused - NOT_EMULATED)}"


def test_request_actions_by_protocol():
    signed = "AWS4-HMAC-SHA256 Credential=testing/20261126/us-east-1/{}/aws4_request, SignedHeaders=host"
    query = {
        "headers": {"Authorization": signed.format("ec2")},
        "method": "POST",
        "url": "http://127.0.0.1/",
        "body": "Action=DescribeSubnets&Version=2016-11-15",
    }
    json_target = {
        "headers": {
            "Authorization": signed.format("budgets"),
            "X-Amz-Target": "AWSBudgetServiceGateway.CreateBudget",
        },
        "method": "POST",
        "url": "http://127.0.0.1/",
        "body": "{}",
    }
    s3 = {"headers": {"Authorization": signed.format("s3")}, "url": "http://127.0.0.1/bucket/some/key"}
    assert iam.request_action(query) == "ec2:DescribeSubnets"
    assert iam.request_action(json_target) == "budgets:ModifyBudget"
    assert iam.request_action(s3 | {"method": "GET"}) == "s3:GetObject"
    assert iam.request_action(s3 | {"method": "HEAD", "url": "http://127.0.0.1/bucket"}) == "s3:ListBucket"
    rest = {"headers": {"Authorization": signed.format("sqs")}, "method": "GET", "url": "http://x/"}
    assert iam.request_action(rest) == "sqs:GET /"  # unmapped on purpose: no policy grants it


@pytest.mark.parametrize("policy", ["config/iam-policy.json", "config/head-node-iam-policy.json"])
def test_no_destructive_action_on_every_resource_without_a_condition(policy):
    """Deleting a stack, a volume or a file system is allowed only on resources carrying the workflow's
    tag (costs.tag_key), and what CloudFormation deletes for the head node only through CloudFormation;
    the budget alarm only on budgets named by the workflow. AWS, not moto, evaluates conditions: this
    checks the policies' text.
    """
    assert iam.unbounded_destructive(REPO_ROOT / policy) == []


def test_the_check_finds_an_unbounded_delete(tmp_path):
    policy = tmp_path / "policy.json"
    statement = {"Sid": "Wide", "Effect": "Allow", "Action": ["ec2:DeleteVolume", "ec2:DescribeVolumes"]}
    policy.write_text(json.dumps({"Statement": [statement | {"Resource": "arn:aws:ec2:*:*:*"}]}))
    assert iam.unbounded_destructive(policy) == [("Wide", "ec2:DeleteVolume")]
    statement |= {"Resource": "*", "Condition": {"Null": {"aws:ResourceTag/lsst-on-aws:cluster": "false"}}}
    policy.write_text(json.dumps({"Statement": [statement]}))
    assert iam.unbounded_destructive(policy) == []
