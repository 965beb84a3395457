"""The cluster's shared storage, which outlives it: found at teardown, checked for reuse, deleted on request.

The stack (``stack.prefix``), the workflow's folder and its Butler
repository live on ``/shared``, an EBS volume, EFS or FSx for Lustre file
system that ParallelCluster creates with ``DeletionPolicy: Retain`` or that
``cluster.storage_id`` names. Deleting the cluster never deletes it; a later
cluster given its id (``cluster.storage_id``) finds the installed stack and
the earlier results there. :func:`delete` removes it, and only:

- storage that a cluster of this workflow made or used (it carries
  ParallelCluster's ``parallelcluster:cluster-name`` tag or the workflow's
  cost-allocation tag), and
- that nothing uses any more (an EBS volume not attached, an EFS file
  system without mount targets).
"""

from __future__ import annotations

import time
from collections.abc import Callable

# CloudFormation resource type -> cluster.storage_type
STACK_TYPES = {"AWS::EC2::Volume": "ebs", "AWS::EFS::FileSystem": "efs", "AWS::FSx::FileSystem": "fsxlustre"}
PCLUSTER_TAG = "parallelcluster:cluster-name"


class StorageError(RuntimeError):
    """The storage cannot be used or deleted as asked; the message says why."""


def stack_storage(cfn, stack: str) -> list[dict]:
    """The shared storage a cluster's CloudFormation stack made: [{"id", "kind"}] ([]: no stack)."""
    from botocore.exceptions import ClientError

    try:
        resources = cfn.describe_stack_resources(StackName=stack)["StackResources"]
    except ClientError:
        return []
    return [
        {"id": r["PhysicalResourceId"], "kind": STACK_TYPES[r["ResourceType"]]}
        for r in resources
        if r["ResourceType"] in STACK_TYPES and r.get("PhysicalResourceId")
    ]


def _tags(items: list[dict] | None) -> dict[str, str]:
    return {t["Key"]: t["Value"] for t in items or []}


def _found(call) -> list:
    """The list an AWS describe call returns; [] when it says there is no such resource."""
    from botocore.exceptions import ClientError

    try:
        return call()
    except ClientError as err:
        code = str(err.response.get("Error", {}).get("Code", ""))
        if "NotFound" in code or code in {"InvalidVolume.NotFound", "InvalidParameterValue"}:
            return []
        raise


def describe(session, storage_id: str) -> dict:
    """What ``storage_id`` is: kind, state, size (GB), zone, tags, and what uses it. Raises `StorageError`."""
    region = session.region_name
    if storage_id.startswith("vol-"):
        volumes = _found(lambda: session.client("ec2").describe_volumes(VolumeIds=[storage_id])["Volumes"])
        if not volumes:
            raise StorageError(f"there is no EBS volume {storage_id} in {region}")
        volume = volumes[0]
        return {
            "id": storage_id,
            "kind": "ebs",
            "state": volume["State"],
            "size_gb": volume["Size"],
            "zone": volume["AvailabilityZone"],
            "tags": _tags(volume.get("Tags")),
            "used_by": [a["InstanceId"] for a in volume.get("Attachments", [])],
        }
    if storage_id.startswith("fs-"):
        efs = session.client("efs")
        systems = _found(lambda: efs.describe_file_systems(FileSystemId=storage_id)["FileSystems"])
        if systems:
            fs = systems[0]
            targets = efs.describe_mount_targets(FileSystemId=storage_id)["MountTargets"]
            return {
                "id": storage_id,
                "kind": "efs",
                "state": fs["LifeCycleState"],
                "size_gb": round(fs["SizeInBytes"]["Value"] / 1e9, 1),
                "zone": fs.get("AvailabilityZoneName", ""),
                "tags": _tags(fs.get("Tags")),
                "used_by": [t["MountTargetId"] for t in targets],
            }
        fsx = session.client("fsx")
        systems = _found(lambda: fsx.describe_file_systems(FileSystemIds=[storage_id])["FileSystems"])
        if systems:
            fs = systems[0]
            return {
                "id": storage_id,
                "kind": "fsxlustre",
                "state": fs.get("Lifecycle", ""),
                "size_gb": fs.get("StorageCapacity", 0),
                "zone": "",
                "tags": _tags(fs.get("Tags")),
                "used_by": [],
            }
    raise StorageError(f"there is no EBS volume, EFS or FSx file system {storage_id} in {region}")


def check_reusable(info: dict, storage_type: str, zone: str) -> None:
    """Raise `StorageError` unless a new cluster in ``zone`` can mount the storage ``info`` describes."""
    if info["kind"] != storage_type:
        raise StorageError(
            f"{info['id']} is {info['kind']} storage but cluster.storage_type is {storage_type}"
            " (config key cluster.storage_id)"
        )
    if info["kind"] == "ebs":
        if info["used_by"]:
            raise StorageError(
                f"EBS volume {info['id']} is attached to {', '.join(info['used_by'])}: another cluster still"
                " uses it (config key cluster.storage_id)"
            )
        if zone and info["zone"] != zone:
            raise StorageError(
                f"EBS volume {info['id']} is in {info['zone']} but the cluster's subnet is in {zone}: a"
                " volume is attached only in its own zone (config keys cluster.storage_id, cluster.subnet_id)"
            )


def delete(
    session,
    storage_id: str,
    tag_key: str,
    *,
    timeout_s: float = 1800,
    poll_s: float = 15,
    on_progress: Callable[[str], None] = print,
) -> dict:
    """Delete retained storage that a cluster of this workflow made or used, once nothing uses it.

    ``tag_key`` is the workflow's cost-allocation tag key. Waits until the
    storage is gone; returns what was deleted.
    """
    from botocore.exceptions import ClientError

    info = describe(session, storage_id)
    if PCLUSTER_TAG not in info["tags"] and tag_key not in info["tags"]:
        raise StorageError(
            f"{storage_id} carries neither the {PCLUSTER_TAG} tag nor {tag_key}: no cluster of this workflow"
            " made it, so it is not deleted here (delete it yourself if you mean to)"
        )
    if info["used_by"]:
        what = "attached to" if info["kind"] == "ebs" else "mounted through"
        raise StorageError(
            f"{storage_id} is still {what} {', '.join(info['used_by'])}: delete the cluster using it first"
        )
    on_progress(f"deleting {info['kind']} {storage_id} ({info['size_gb']} GB)")
    try:
        if info["kind"] == "ebs":
            session.client("ec2").delete_volume(VolumeId=storage_id)
        elif info["kind"] == "efs":
            session.client("efs").delete_file_system(FileSystemId=storage_id)
        else:
            session.client("fsx").delete_file_system(FileSystemId=storage_id)
    except ClientError as err:
        raise StorageError(f"AWS refused to delete {storage_id}: {err}") from None
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            state = describe(session, storage_id)["state"]
        except StorageError:
            break
        if state.lower() == "deleted":
            break
        if time.monotonic() > deadline:
            raise StorageError(
                f"{storage_id} is still {state} after {timeout_s / 60:.0f} min; rerun to go on waiting"
            )
        on_progress(f"{storage_id}: {state}")
        time.sleep(poll_s)
    on_progress(f"{storage_id}: gone")
    return {key: info[key] for key in ("id", "kind", "size_gb", "tags")} | {"deleted": True}
