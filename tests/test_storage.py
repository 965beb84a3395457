"""Retained shared storage: checked before a new cluster mounts it, deleted only on explicit request.

EC2 (EBS volumes, instances), EFS and FSx are moto's server on 127.0.0.1.
Where the emulation stops: moto's FSx has no DELETING phase (a file system
is gone at once), and nothing here mounts a file system for real.
"""

from __future__ import annotations

import json

import boto3
import pytest
from conftest import aws_env, copy_workflow, snakemake

from lsst_on_aws.cloud import storage

TAG = "lsst-on-aws:cluster"


@pytest.fixture
def session(moto):
    return boto3.Session(region_name="us-east-1")


def volume(session, zone="us-east-1a", tags=None) -> str:
    spec = [{"ResourceType": "volume", "Tags": [{"Key": k, "Value": v} for k, v in (tags or {}).items()]}]
    kwargs = {"TagSpecifications": spec} if tags else {}
    return session.client("ec2").create_volume(AvailabilityZone=zone, Size=100, VolumeType="gp3", **kwargs)[
        "VolumeId"
    ]


def instance(session) -> str:
    ec2 = session.client("ec2")
    image = ec2.describe_images(Owners=["amazon"])["Images"][0]["ImageId"]
    placement = {"AvailabilityZone": "us-east-1a"}
    return ec2.run_instances(ImageId=image, MinCount=1, MaxCount=1, Placement=placement)["Instances"][0][
        "InstanceId"
    ]


def quiet(_line: str) -> None:
    pass


def test_retained_volume_is_deleted_by_its_target(tmp_path, moto_server, session):
    vol = volume(session, tags={"parallelcluster:cluster-name": "lsst-on-aws", TAG: "lsst-on-aws"})
    workdir = copy_workflow(tmp_path / "workflow")

    result = snakemake(
        workdir,
        "--profile",
        "aws",
        f"results/storage/{vol}/deleted.json",
        env=aws_env(moto_server),
        timeout=300,
    )

    assert result.returncode == 0, result.stderr[-3000:]
    record = json.loads((workdir / f"results/storage/{vol}/deleted.json").read_text())
    assert (record["id"], record["kind"], record["size_gb"], record["deleted"]) == (vol, "ebs", 100, True)
    assert not session.client("ec2").describe_volumes(Filters=[{"Name": "volume-id", "Values": [vol]}])[
        "Volumes"
    ]


def test_attached_volume_is_not_deleted(session):
    vol = volume(session, tags={TAG: "lsst-on-aws"})
    node = instance(session)
    session.client("ec2").attach_volume(VolumeId=vol, InstanceId=node, Device="/dev/sdf")
    with pytest.raises(storage.StorageError, match=f"{vol} is still attached to {node}: delete the cluster"):
        storage.delete(session, vol, TAG, on_progress=quiet)
    assert storage.describe(session, vol)["state"] == "in-use"


def test_storage_no_cluster_of_ours_made_is_not_deleted(session):
    vol = volume(session, tags={"team": "other"})
    with pytest.raises(storage.StorageError, match="carries neither the parallelcluster:cluster-name tag"):
        storage.delete(session, vol, TAG, on_progress=quiet)
    assert storage.describe(session, vol)["state"] == "available"


def test_efs_is_deleted_only_without_mount_targets(session):
    efs = session.client("efs")
    fs = efs.create_file_system(Tags=[{"Key": TAG, "Value": "lsst-on-aws"}])["FileSystemId"]
    ec2 = session.client("ec2")
    vpc = ec2.create_vpc(CidrBlock="10.40.0.0/16")["Vpc"]["VpcId"]
    subnet = ec2.create_subnet(VpcId=vpc, CidrBlock="10.40.1.0/24", AvailabilityZone="us-east-1a")
    target = efs.create_mount_target(FileSystemId=fs, SubnetId=subnet["Subnet"]["SubnetId"])["MountTargetId"]

    with pytest.raises(storage.StorageError, match=f"{fs} is still mounted through {target}"):
        storage.delete(session, fs, TAG, on_progress=quiet)

    efs.delete_mount_target(MountTargetId=target)
    record = storage.delete(session, fs, TAG, poll_s=0.1, on_progress=quiet)
    assert record["kind"] == "efs"
    with pytest.raises(storage.StorageError, match="there is no EBS volume, EFS or FSx file system"):
        storage.describe(session, fs)


def test_fsx_is_deleted(session):
    ec2 = session.client("ec2")
    vpc = ec2.create_vpc(CidrBlock="10.50.0.0/16")["Vpc"]["VpcId"]
    subnet = ec2.create_subnet(VpcId=vpc, CidrBlock="10.50.1.0/24")["Subnet"]["SubnetId"]
    fs = session.client("fsx").create_file_system(
        FileSystemType="LUSTRE",
        StorageCapacity=1200,
        SubnetIds=[subnet],
        Tags=[{"Key": "parallelcluster:cluster-name", "Value": "lsst-on-aws"}],
    )["FileSystem"]["FileSystemId"]
    assert storage.describe(session, fs)["kind"] == "fsxlustre"
    assert storage.delete(session, fs, TAG, poll_s=0.1, on_progress=quiet)["kind"] == "fsxlustre"


def test_unknown_storage_is_named(session):
    with pytest.raises(
        storage.StorageError, match="there is no EBS volume vol-0123456789abcdef0 in us-east-1"
    ):
        storage.describe(session, "vol-0123456789abcdef0")


@pytest.mark.parametrize(
    "kind, zone, expected",
    [
        ("efs", "us-east-1a", r"is ebs storage but cluster\.storage_type is efs"),
        ("ebs", "us-east-1b", r"is in us-east-1a but the cluster's subnet is in us-east-1b"),
    ],
)
def test_storage_a_new_cluster_cannot_mount_is_refused(session, kind, zone, expected):
    info = storage.describe(session, volume(session))
    with pytest.raises(storage.StorageError, match=expected):
        storage.check_reusable(info, kind, zone)
    storage.check_reusable(info, "ebs", "us-east-1a")  # the right kind, in its zone
