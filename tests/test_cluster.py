"""The ParallelCluster configuration: rendered from the workflow config, checked by pcluster's own
schema and validators, instance types checked against EC2 on moto's server, credentials checked.

pcluster's ``ClusterSchema`` and ``ComputeResourceSizeValidator`` are the real ones
(aws-parallelcluster 3.16.1), run offline. EC2 and STS are moto's server on 127.0.0.1:
moto knows which instance types each region offers, and the identities of the IAM
users created in it. moto cannot produce root-user credentials, so the root refusal is
tested with botocore's Stubber answering ``GetCallerIdentity`` with a root ARN.
"""

from __future__ import annotations

import copy
from pathlib import Path

import boto3
import pytest
import yaml
from botocore.stub import Stubber
from conftest import REPO_ROOT

from lsst_on_aws.cloud import budgets, checks, cluster

DEFAULT = yaml.safe_load((REPO_ROOT / "config/config.yaml").read_text())


def workflow_config(**cluster_keys) -> dict:
    config = copy.deepcopy(DEFAULT)
    config["cluster"] |= {"subnet_id": "subnet-0123456789abcdef0", "ssh_key_name": "rubin"} | cluster_keys
    return config


def test_default_renders_a_valid_cluster():
    doc = cluster.render(workflow_config(), allowed_ips="203.0.113.7/32")
    assert checks.schema_errors(doc, "lsst-on-aws") == []
    assert checks.semantic_errors(doc) == []
    assert doc["Region"] == "us-east-1"
    assert doc["HeadNode"]["Ssh"] == {"AllowedIps": "203.0.113.7/32", "KeyName": "rubin"}
    queues = doc["Scheduling"]["SlurmQueues"]
    # spot first (the default partition), on-demand beside it; nodes only while there is work
    assert [(q["Name"], q["CapacityType"]) for q in queues] == [("spot", "SPOT"), ("ondemand", "ONDEMAND")]
    for queue in queues:
        [resource] = queue["ComputeResources"]
        assert (resource["InstanceType"], resource["MinCount"], resource["MaxCount"]) == ("c6i.2xlarge", 0, 4)
    assert doc["Scheduling"]["SlurmSettings"] == {"ScaledownIdletime": 10}
    assert {"Key": "lsst-on-aws:cluster", "Value": "lsst-on-aws"} in doc["Tags"]
    [storage] = doc["SharedStorage"]
    assert storage["MountDir"] == "/shared"
    assert storage["EbsSettings"] == {"VolumeType": "gp3", "Size": 100, "DeletionPolicy": "Retain"}


@pytest.mark.parametrize("storage", ["ebs", "efs", "fsxlustre"])
def test_each_shared_storage_is_valid_and_retained(storage):
    doc = cluster.render(
        workflow_config(storage_type=storage, data_bucket="rubin-raws"), allowed_ips="10.0.0.1/32"
    )
    assert checks.schema_errors(doc, "lsst-on-aws") == []
    [shared] = doc["SharedStorage"]
    settings = next(v for k, v in shared.items() if k.endswith("Settings"))
    assert settings["DeletionPolicy"] == "Retain"
    assert doc["HeadNode"]["Iam"]["S3Access"] == [{"BucketName": "rubin-raws", "EnableWriteAccess": True}]


def test_nodes_get_the_buckets_of_the_data_source_and_of_publishing():
    config = workflow_config(data_bucket="scratch")
    config["data"] = {"source": "s3", "path": "s3://survey-raws/decam/2024", "refcat": "s3://gaia-dr2/cat"}
    config["publish"] = {"uri": "s3://papers/run-7"}
    doc = cluster.render(config, allowed_ips="10.0.0.1/32")
    expected = [
        {"BucketName": "scratch", "EnableWriteAccess": True},
        {"BucketName": "survey-raws", "EnableWriteAccess": False},
        {"BucketName": "gaia-dr2", "EnableWriteAccess": False},
        {"BucketName": "papers", "EnableWriteAccess": True},
    ]
    assert doc["HeadNode"]["Iam"]["S3Access"] == expected
    assert all(queue["Iam"]["S3Access"] == expected for queue in doc["Scheduling"]["SlurmQueues"])
    assert checks.schema_errors(doc, "lsst-on-aws") == []


def test_on_demand_market_puts_on_demand_first_and_accounting_is_passed_on():
    config = workflow_config(market="on-demand")
    config["cluster"]["slurm_accounting"] = {
        "uri": "db.example.org:3306",
        "user": "slurm",
        "password_secret_arn": "arn:aws:secretsmanager:us-east-1:123456789012:secret:slurmdb-AbCdEf",
    }
    doc = cluster.render(config, allowed_ips="10.0.0.1/32")
    assert doc["Scheduling"]["SlurmQueues"][0]["CapacityType"] == "ONDEMAND"
    assert doc["Scheduling"]["SlurmSettings"]["Database"]["Uri"] == "db.example.org:3306"
    assert checks.schema_errors(doc, "lsst-on-aws") == []
    # jobs go to on-demand nodes only, and no queue is preferred over another
    assert cluster.partitions(config) == "ondemand"
    assert not any("CustomSlurmSettings" in q for q in doc["Scheduling"]["SlurmQueues"])


def test_spot_market_falls_back_to_on_demand_nodes():
    """With spot, jobs go to both queues and Slurm starts them on spot nodes first (PriorityTier):
    what no spot node can take (none to be had, one reclaimed) runs on an on-demand node instead
    of waiting. Slurm's choice itself is tested on the test cluster (test_multihost.py).
    """
    config = workflow_config(market="spot")
    doc = cluster.render(config, allowed_ips="10.0.0.1/32")
    spot, ondemand = doc["Scheduling"]["SlurmQueues"]
    assert (spot["Name"], ondemand["Name"]) == ("spot", "ondemand")
    assert cluster.partitions(config) == "spot,ondemand"
    assert spot["CustomSlurmSettings"] == {"PriorityTier": 10} and "CustomSlurmSettings" not in ondemand
    assert checks.schema_errors(doc, "lsst-on-aws") == []


def test_missing_subnet_names_the_key():
    config = workflow_config(subnet_id="")
    with pytest.raises(cluster.ClusterConfigError, match=r"config key cluster\.subnet_id is empty"):
        cluster.render(config, allowed_ips="10.0.0.1/32")


def test_schema_errors_name_the_key():
    doc = cluster.render(workflow_config(), allowed_ips="10.0.0.1/32")
    doc["HeadNode"]["InstanceTyp"] = "t3.medium"
    doc["Scheduling"]["SlurmQueues"][0]["CapacityType"] = "CHEAP"
    errors = checks.schema_errors(doc, "lsst-on-aws")
    assert "HeadNode.InstanceTyp: Unknown field." in errors
    assert any(e.startswith("Scheduling.SlurmQueues[0].CapacityType: Must be one of") for e in errors)
    with pytest.raises(cluster.ClusterConfigError, match=r"HeadNode\.InstanceTyp: Unknown field"):
        checks.check(doc, "lsst-on-aws")


def test_semantic_errors_the_schema_misses():
    doc = cluster.render(workflow_config(), allowed_ips="0.0.0.0/0")
    doc["Scheduling"]["SlurmQueues"][1]["ComputeResources"][0]["MinCount"] = 9
    assert checks.schema_errors(doc, "lsst-on-aws") == []  # the schema lets both through
    errors = checks.semantic_errors(doc)
    assert errors[0].startswith("HeadNode.Ssh.AllowedIps: 0.0.0.0/0 opens SSH to the whole internet")
    assert errors[1].startswith("Scheduling.SlurmQueues[1].ComputeResources[0]: Max count must be greater")


def test_instance_types_not_offered_in_the_region_are_named(moto):
    """moto's EC2 knows each region's offerings: hpc6a.48xlarge is in us-east-2, not us-east-1."""
    doc = cluster.render(workflow_config(compute_instance_type="hpc6a.48xlarge"), allowed_ips="10.0.0.1/32")
    doc["HeadNode"]["InstanceType"] = "c9z.huge"
    ec2 = boto3.client("ec2", region_name="us-east-1")
    errors = checks.semantic_errors(doc, ec2)
    assert "HeadNode.InstanceType: instance type c9z.huge is not offered in us-east-1" in errors
    assert (
        "Scheduling.SlurmQueues[0].ComputeResources[0].InstanceType:"
        " instance type hpc6a.48xlarge is not offered in us-east-1"
    ) in errors
    ok = cluster.render(workflow_config(), allowed_ips="10.0.0.1/32")
    assert checks.semantic_errors(ok, ec2) == []


def test_iam_user_credentials_are_accepted(moto, monkeypatch):
    iam = boto3.client("iam")
    iam.create_user(UserName="astronomer")
    key = iam.create_access_key(UserName="astronomer")["AccessKey"]
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", key["AccessKeyId"])
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", key["SecretAccessKey"])
    monkeypatch.delenv("AWS_SESSION_TOKEN")
    identity = checks.caller_identity(boto3.Session().client("sts"))
    assert identity["Arn"].endswith(":user/astronomer")


def test_missing_credentials_are_refused(tmp_path, monkeypatch):
    for key in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE"):
        monkeypatch.delenv(key, raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:9")  # nothing is sent without credentials
    sts = boto3.Session().client("sts", region_name="us-east-1")  # a new session: no cached credentials
    with pytest.raises(checks.CredentialsError, match="no AWS credentials were found"):
        checks.caller_identity(sts)


def test_root_credentials_are_refused():
    """Stubber: moto cannot hand out the root user's credentials."""
    sts = boto3.client("sts", region_name="us-east-1", aws_access_key_id="x", aws_secret_access_key="y")
    with Stubber(sts) as stub:
        stub.add_response(
            "get_caller_identity",
            {"UserId": "123456789012", "Account": "123456789012", "Arn": "arn:aws:iam::123456789012:root"},
        )
        with pytest.raises(checks.CredentialsError, match="root user's credentials of account 123456789012"):
            checks.caller_identity(sts)


def test_rendered_file_is_what_pcluster_reads(tmp_path: Path):
    doc = cluster.render(workflow_config(), allowed_ips="10.0.0.1/32")
    path = tmp_path / "cluster.yaml"
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    assert checks.schema_errors(yaml.safe_load(path.read_text()), "lsst-on-aws") == []


def test_budget_alarm_on_the_clusters_tag(moto):
    """AWS Budgets on moto: the budget filters on the cost tag and mails at 80 % and 100 %; idempotent."""
    client = boto3.Session().client("budgets", region_name="us-east-1")
    args = ("123456789012", "lsst-on-aws", ("lsst-on-aws:cluster", "lsst-on-aws"), 25.0)
    assert budgets.budget_alarm(client, *args, emails=["astronomer@example.org"]) == "created"
    assert budgets.budget_alarm(client, *args, emails=["astronomer@example.org"]) == "exists"
    budget = client.describe_budget(AccountId="123456789012", BudgetName="lsst-on-aws")["Budget"]
    assert budget["BudgetLimit"] == {"Amount": "25.00", "Unit": "USD"}
    assert budget["CostFilters"] == {"TagKeyValue": ["user:lsst-on-aws:cluster$lsst-on-aws"]}
    answer = client.describe_notifications_for_budget(AccountId="123456789012", BudgetName="lsst-on-aws")
    assert sorted(n["Threshold"] for n in answer["Notifications"]) == [80.0, 100.0]


def test_head_node_gets_the_policy_its_dead_mans_switch_needs():
    arn = "arn:aws:iam::123456789012:policy/lsst-on-aws-head-node"
    config = workflow_config(head_node_policy_arn=arn, data_bucket="rubin-raws")
    doc = cluster.render(config, allowed_ips="10.0.0.1/32")
    iam = doc["HeadNode"]["Iam"]
    assert iam["AdditionalIamPolicies"] == [{"Policy": arn}] and iam["S3Access"]
    assert checks.schema_errors(doc, "lsst-on-aws") == []
    assert "Iam" not in cluster.render(workflow_config(), allowed_ips="10.0.0.1/32")["HeadNode"]
