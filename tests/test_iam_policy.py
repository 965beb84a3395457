"""config/iam-policy.json against the AWS calls the workflow really makes.

Every request to moto's server is recorded (moto's own recorder) while the
workflow's AWS code runs: the credentials check, the instance-type check,
pcluster's dry run (a subprocess: its calls are recorded too), spot prices (and by zone),
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
import re

import boto3
import pytest
import yaml
from conftest import REPO_ROOT, moto_recording
from test_lifecycle import NAME, TARGETS, pcluster_shaped_cluster

from lsst_on_aws.accounting import bill, prices, zones
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
POLICY = REPO_ROOT / "config/iam-policy.json"


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


def rendered_cluster(moto_account: dict, **cluster_keys) -> tuple[dict, dict, dict]:
    """The default config on the moto account (with ``cluster_keys``), its bootstrap action and the
    cluster configuration the workflow renders from them.
    """
    config = yaml.safe_load((REPO_ROOT / "config/config.yaml").read_text())
    config["cluster"] |= moto_account | cluster_keys
    action = {"Script": bootstrap.script_uri(config), "Args": bootstrap.folders(config)}
    return config, action, cluster.render(config, allowed_ips=moto_account["allowed_ips"], bootstrap=action)


def test_policy_allows_exactly_what_the_workflow_calls(moto, moto_account, tmp_path, monkeypatch):
    config, action, doc = rendered_cluster(moto_account)
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
        zones.cheapest_zone(session.client("ec2"), "c6i.2xlarge", doc["HeadNode"]["Networking"]["SubnetId"])
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
    allowed = iam.policy_actions(POLICY)
    assert called <= allowed, f"the policy lacks {sorted(called - allowed)}"
    # what only creating a cluster needs is checked on its own (test_policy_allows_what_creating_...)
    unused = allowed - called - creation_actions()
    assert unused == NOT_EMULATED, f"the policy allows what nothing calls: {sorted(unused - NOT_EMULATED)}"


def creation_actions() -> set[str]:
    """The actions of the policy's statements for creating a cluster (Sid CreateCluster...)."""
    statements = iam.allow_statements(POLICY)
    return {a for s in statements if s.get("Sid", "").startswith("CreateCluster") for a in s["Action"]}


def create_cluster(path, name: str, suppress: list[str]) -> dict:
    """``pcluster create-cluster`` itself, not its dry run: its JSON answer."""
    args = ["create-cluster", "--cluster-name", name, "--cluster-configuration", str(path)]
    return pcluster.call(*args, "--suppress-validators", *suppress)[1]


def test_policy_allows_what_creating_a_cluster_needs(moto, moto_account, tmp_path, monkeypatch):
    """``pcluster create-cluster`` against moto's server, for each kind of shared storage the config
    can ask for, recorded as far as moto lets it go: validation, the artifacts bucket, the upload of
    the templates and ``CreateStack``, which carries the workflow's tag (the policy's condition).

    Where the emulation stops. (1) moto applies the Deny of the policy pcluster puts on its bucket
    without its condition (requests without TLS), so it refuses every request to the bucket: between
    a first attempt (recorded up to that refusal) and a second, the test replaces that policy and
    marks the bucket as set up, as pcluster would have. Its replacement denies deletes, so that the
    templates pcluster uploaded outlive the clean-up after (2). (2) moto's CloudFormation cannot
    build pcluster's template (an alarm it does not model) and refuses CreateStack, so what
    CloudFormation would create and delete with the user's permissions cannot be recorded. Instead
    the resource types of the templates pcluster made (the cluster's and its nested stacks') are read,
    and the policy's CloudFormation statements must grant exactly the actions of those types
    (iam.CLOUDFORMATION_ACTIONS, from ParallelCluster's published policy): no more, no fewer.
    """
    monkeypatch.setenv("HOME", str(tmp_path))  # pcluster's log
    s3 = boto3.Session(region_name="us-east-1").client("s3")
    called, types, tags = set(), set(), set()
    for kind in ("ebs", "efs", "fsxlustre"):
        doc = rendered_cluster(moto_account, storage_type=kind)[2]
        path = tmp_path / f"{kind}.yaml"
        path.write_text(yaml.safe_dump(doc, sort_keys=False))
        name = f"create-{kind}"
        with moto_recording(moto) as requests:
            answer = create_cluster(path, name, moto_account["suppress_validators"])
        bucket = next(
            b["Name"] for b in s3.list_buckets()["Buckets"] if b["Name"].startswith("parallelcluster")
        )
        if "Unable to initialize s3 bucket" in answer.get("message", ""):  # (1), the first time
            called |= iam.recorded_actions(requests)
            keep = {
                "Effect": "Deny",
                "Principal": "*",
                "Action": ["s3:DeleteObject", "s3:DeleteObjectVersion"],
            }
            policy = {"Version": "2012-10-17", "Statement": [keep | {"Resource": f"arn:aws:s3:::{bucket}/*"}]}
            s3.put_bucket_policy(Bucket=bucket, Policy=json.dumps(policy))
            features = json.dumps({"bootstrapped_features": ["basic", "export-logs"]})
            s3.put_object(Bucket=bucket, Key="parallelcluster/.bootstrapped", Body=features.encode())
            with moto_recording(moto) as requests:
                answer = create_cluster(path, name, moto_account["suppress_validators"])
        assert "Template error" in answer.get("message", ""), answer  # (2): CreateStack was reached
        called |= iam.recorded_actions(requests)
        for body in (iam.request_body(json.loads(line)) for line in requests):
            if "Action=CreateStack" in body:
                tags |= set(re.findall(r"Tags\.member\.\d+\.Key=([^&]+)", body))
        listed = s3.list_objects_v2(Bucket=bucket, Prefix="parallelcluster/")["Contents"]
        for key in (o["Key"] for o in listed if f"/clusters/{name}-" in o["Key"]):
            text = s3.get_object(Bucket=bucket, Key=key)["Body"].read()
            with contextlib.suppress(UnicodeDecodeError, yaml.YAMLError, AttributeError):
                types |= iam.template_resource_types(text.decode())
    assert "cloudformation:CreateStack" in called
    assert "lsst-on-aws%3Acluster" in tags  # the stack carries the workflow's tag
    assert {"AWS::EC2::Instance", "AWS::EFS::FileSystem", "AWS::FSx::FileSystem", "AWS::IAM::Role"} <= types
    allowed, creating = iam.policy_actions(POLICY), creation_actions()
    assert called <= allowed, f"the policy lacks {sorted(called - allowed)}"
    on_behalf = iam.cloudformation_actions(types)
    assert on_behalf <= creating, f"the policy lacks {sorted(on_behalf - creating)}"
    unused = creating - on_behalf - called
    assert not unused, f"the policy allows what creating a cluster does not need: {sorted(unused)}"


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
