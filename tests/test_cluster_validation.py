"""Validating the cluster before anything is created, through the real ``snakemake`` command.

``snakemake results/cluster/validation.json`` renders the ParallelCluster
configuration, checks it with pcluster's own schema, runs the budget check,
then asks AWS: the caller's identity (STS), the instance types offered in the
region (EC2), the S3 buckets, any existing shared storage, uploads the head
node's bootstrap script, and runs ``pcluster create-cluster --dryrun true`` (the real pcluster
3.16.1 CLI, every validator it has). AWS is moto's server on 127.0.0.1. Where
the emulation stops: moto has no ParallelCluster AMI, so the test uses one of
moto's Amazon Linux 2023 images as ``cluster.custom_ami``, and moto rejects the
launch templates pcluster tries in a dry run, so those two validators are
suppressed (``cluster.suppress_validators``); nothing is ever created.
"""

from __future__ import annotations

import json

import boto3
import pytest
import yaml
from conftest import aws_env, copy_workflow, snakemake

VALIDATION = "results/cluster/validation.json"


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    return copy_workflow(tmp_path_factory.mktemp("cluster") / "workflow")


def validate(workdir, moto_server, **cluster):
    (workdir / "cluster.yaml").write_text(yaml.safe_dump({"cluster": cluster}))
    for stale in ("results/cluster", "results/costs/estimate.json"):
        path = workdir / stale
        if path.is_dir():
            for f in path.iterdir():
                f.unlink()
        else:
            path.unlink(missing_ok=True)
    return snakemake(
        workdir,
        "--profile",
        "aws",
        "--configfile",
        "cluster.yaml",
        "--",
        VALIDATION,
        env=aws_env(moto_server),
        timeout=300,
    )


def test_valid_cluster_passes_the_dry_run(workdir, moto_server, moto_account):
    result = validate(workdir, moto_server, **moto_account)
    assert result.returncode == 0, result.stderr[-4000:]
    record = json.loads((workdir / VALIDATION).read_text())
    assert record["dry_run"] == "Request would have succeeded, but DryRun flag is set."
    assert record["account"] == "123456789012"
    assert record["region"] == "us-east-1"
    assert "DeletionPolicyValidator" in {m["type"] for m in record["messages"]}  # storage is retained
    rendered = yaml.safe_load((workdir / "results/cluster/cluster-config.yaml").read_text())
    assert rendered["HeadNode"]["Networking"]["SubnetId"] == moto_account["subnet_id"]
    assert (workdir / "results/costs/estimate.json").exists()  # the budget check came first
    # the head node's bootstrap script, in the data bucket where pcluster's validator found it
    [script] = record["bootstrap"]
    assert script["uri"] == "s3://rubin-raws/lsst-on-aws/lsst-on-aws/bootstrap.sh"
    assert rendered["HeadNode"]["CustomActions"]["OnNodeConfigured"]["Script"] == script["uri"]
    s3 = boto3.Session(region_name="us-east-1").client("s3")
    body = s3.get_object(Bucket="rubin-raws", Key="lsst-on-aws/lsst-on-aws/bootstrap.sh")["Body"].read()
    assert body == (workdir / "results/cluster/bootstrap.sh").read_bytes()


def test_instance_type_not_offered_is_named_before_the_dry_run(workdir, moto_server, moto_account):
    result = validate(workdir, moto_server, **moto_account | {"head_node_instance_type": "c9z.huge"})
    assert result.returncode != 0
    assert "Cluster validation failed: the ParallelCluster configuration is invalid" in result.stderr
    assert "HeadNode.InstanceType: instance type c9z.huge is not offered in us-east-1" in result.stderr
    assert not (workdir / VALIDATION).exists()


def test_instance_type_without_a_price_stops_the_estimate(workdir, moto_server, moto_account):
    """hpc6a.48xlarge is not in the committed price table: the estimate says so, by key."""
    result = validate(workdir, moto_server, **moto_account | {"compute_instance_type": "hpc6a.48xlarge"})
    assert result.returncode != 0
    assert (
        "Pre-flight estimate: no price for hpc6a.48xlarge in us-east-1 in the fallback table" in result.stderr
    )
    assert "(config keys cluster.compute_instance_type, costs.prices)" in result.stderr
    assert not (workdir / VALIDATION).exists()


def test_dry_run_errors_are_reported(workdir, moto_server, moto_account):
    """A key pair that does not exist passes the schema; pcluster's KeyPairValidator refuses it."""
    result = validate(workdir, moto_server, **moto_account | {"ssh_key_name": "nobody"})
    assert result.returncode != 0
    assert "pcluster's dry run refused the cluster" in result.stderr
    assert "KeyPairValidator" in result.stderr
    assert not (workdir / VALIDATION).exists()


def test_missing_subnet_fails_offline_naming_the_key(workdir, moto_server, moto_account):
    """Rendering fails before any AWS call (the other offline checks are unit-tested in test_cluster)."""
    result = validate(workdir, moto_server, **moto_account | {"subnet_id": ""})
    assert result.returncode != 0
    assert "Cluster configuration error: config key cluster.subnet_id is empty" in result.stderr
    assert not (workdir / VALIDATION).exists()


def test_bucket_that_does_not_exist_is_named_before_the_dry_run(workdir, moto_server, moto_account):
    result = validate(workdir, moto_server, **moto_account | {"data_bucket": "no-such-bucket"})
    assert result.returncode != 0
    assert (
        "S3 bucket no-such-bucket (HeadNode.Iam.S3Access): the bucket does not exist"
        " (config keys cluster.data_bucket, data.path, publish.uri)"
    ) in result.stderr
    assert not (workdir / VALIDATION).exists()


def test_existing_storage_in_another_zone_is_refused(workdir, moto_server, moto_account):
    """A retained volume mounts only in its own zone: said before pcluster's dry run."""
    ec2 = boto3.Session(region_name="us-east-1").client("ec2")
    volume = ec2.create_volume(AvailabilityZone="us-east-1b", Size=100, VolumeType="gp3")["VolumeId"]
    result = validate(workdir, moto_server, **moto_account | {"storage_id": volume})
    assert result.returncode != 0
    assert (
        f"Cluster validation failed: EBS volume {volume} is in us-east-1b"
        " but the cluster's subnet is in us-east-1a"
    ) in result.stderr
    assert not (workdir / VALIDATION).exists()


def test_existing_storage_passes_the_dry_run(workdir, moto_server, moto_account):
    """A retained volume in the subnet's zone is mounted at /shared instead of a new one."""
    ec2 = boto3.Session(region_name="us-east-1").client("ec2")
    volume = ec2.create_volume(AvailabilityZone="us-east-1a", Size=100, VolumeType="gp3")["VolumeId"]
    result = validate(workdir, moto_server, **moto_account | {"storage_id": volume})
    assert result.returncode == 0, result.stderr[-4000:]
    rendered = yaml.safe_load((workdir / "results/cluster/cluster-config.yaml").read_text())
    assert rendered["SharedStorage"][0]["EbsSettings"] == {"VolumeId": volume}
