"""The AWS ParallelCluster's v3 configuration, rendered from the workflow's.

:func:`render` turns the workflow config's ``cluster``, ``costs`` and
``stack`` sections into a ParallelCluster v3 cluster configuration (a dict,
written as YAML); :mod:`lsst_on_aws.cloud.checks` checks it before use.
"""

from __future__ import annotations

from lsst_on_aws.cloud.s3data import split_uri

# The data plane's shared folders on the cluster.
SHARED_DIR = "/shared"


class ClusterConfigError(ValueError):
    """The cluster configuration is invalid; the message names the key."""


def render(config: dict, *, allowed_ips: str, bootstrap: dict | None = None) -> dict:
    """The ParallelCluster v3 configuration for the workflow config ``config``.

    ``allowed_ips`` is the CIDR allowed to reach the head node by SSH: the
    configured one, or the caller's own address as a /32 (resolved by the
    caller of this function, never 0.0.0.0/0). ``bootstrap`` is the
    OnNodeConfigured action ({"Script": s3 URL, "Args": [...]}) of the head
    node and of every queue's compute nodes (the script tells them apart).
    """
    cluster, costs = config["cluster"], config["costs"]
    if not cluster["subnet_id"]:
        raise ClusterConfigError(
            "config key cluster.subnet_id is empty: name the VPC subnet the cluster is to use (subnet-...)"
        )
    tags = [
        {"Key": costs["tag_key"], "Value": cluster["name"]},
        {"Key": "lsst-on-aws:stack-tag", "Value": str(config["stack"]["tag"])},
    ]
    image = {"Os": cluster["os"]}
    if cluster["custom_ami"]:
        image["CustomAmi"] = cluster["custom_ami"]
    head_node = {
        "InstanceType": cluster["head_node_instance_type"],
        "Networking": {"SubnetId": cluster["subnet_id"]},
        "Ssh": {"AllowedIps": allowed_ips},
        "LocalStorage": {"RootVolume": {"Size": 40}},
    }
    if cluster["ssh_key_name"]:
        head_node["Ssh"]["KeyName"] = cluster["ssh_key_name"]
    if bootstrap:
        head_node["CustomActions"] = {"OnNodeConfigured": bootstrap}
    s3_access = s3_buckets(config)
    if s3_access:
        head_node["Iam"] = {"S3Access": s3_access}
    if cluster["head_node_policy_arn"]:
        # what the head node's dead man's switch needs to delete its own cluster
        policies = [{"Policy": cluster["head_node_policy_arn"]}]
        head_node.setdefault("Iam", {})["AdditionalIamPolicies"] = policies
    queues = []
    for capacity in queue_order(cluster["market"]):
        queue = {
            "Name": capacity.lower(),
            "CapacityType": capacity,
            "Networking": {"SubnetIds": [cluster["subnet_id"]]},
            "ComputeResources": [
                {
                    "Name": _resource_name(cluster["compute_instance_type"]),
                    "InstanceType": cluster["compute_instance_type"],
                    "MinCount": 0,
                    "MaxCount": cluster["max_nodes"],
                }
            ],
        }
        if s3_access:
            queue["Iam"] = {"S3Access": s3_access}
        if bootstrap:
            queue["CustomActions"] = {"OnNodeConfigured": bootstrap}
        if capacity == "SPOT" and cluster["market"] == "spot":
            # jobs sent to both queues (partitions()) start on spot nodes whenever one can take them
            queue["CustomSlurmSettings"] = {"PriorityTier": 10}
        queues.append(queue)
    slurm_settings = {"ScaledownIdletime": cluster["scaledown_idle_minutes"]}
    database = cluster["slurm_accounting"]
    if database["uri"]:
        slurm_settings["Database"] = {
            "Uri": database["uri"],
            "UserName": database["user"],
            "PasswordSecretArn": database["password_secret_arn"],
        }
    return {
        "Region": cluster["region"],
        "Image": image,
        "HeadNode": head_node,
        "Scheduling": {"Scheduler": "slurm", "SlurmSettings": slurm_settings, "SlurmQueues": queues},
        "SharedStorage": [_shared_storage(cluster)],
        "Tags": tags,
    }


def queue_order(market: str) -> tuple[str, str]:
    """The queues' capacity types, the configured market's first (the cluster's default queue)."""
    return ("SPOT", "ONDEMAND") if market == "spot" else ("ONDEMAND", "SPOT")


def partitions(config: dict) -> str:
    """The Slurm partitions the data plane's jobs go to (``slurm_partition``): with the spot market,
    both queues, spot preferred (its ``PriorityTier``), so that a job that no spot node can take
    (capacity not to be had, a spot node reclaimed and not replaced) starts on an on-demand one
    instead of waiting; with the on-demand market, the on-demand queue alone.
    """
    if config["cluster"]["market"] == "spot":
        return ",".join(capacity.lower() for capacity in queue_order("spot"))
    return "ondemand"


def s3_buckets(config: dict) -> list[dict]:
    """S3 access of the nodes: cluster.data_bucket and publish.uri read-write; an s3:// data source and
    reference catalogue read-only.
    """
    access: dict[str, bool] = {}
    if config["cluster"]["data_bucket"]:
        access[config["cluster"]["data_bucket"]] = True
    read = [config["data"]["path"]] if config["data"]["source"] == "s3" else []
    read += [config["data"].get("refcat", "")]
    for uri in read:
        if uri.startswith("s3://"):
            access.setdefault(split_uri(uri)[0], False)
    if config["publish"]["uri"]:  # the schema admits only s3:// URIs
        access[split_uri(config["publish"]["uri"])[0]] = True
    return [{"BucketName": name, "EnableWriteAccess": write} for name, write in access.items()]


def _resource_name(instance_type: str) -> str:
    """A compute resource name from an instance type (letters, digits and hyphens: c6i-2xlarge)."""
    return instance_type.replace(".", "-")[:25]


def _shared_storage(cluster: dict) -> dict:
    """The shared storage that holds the stack and the Butler repository: new and retained, or existing."""
    kind, existing = cluster["storage_type"], cluster["storage_id"]
    if existing:
        key, settings = {
            "ebs": ("Ebs", {"VolumeId": existing}),
            "efs": ("Efs", {"FileSystemId": existing}),
            "fsxlustre": ("FsxLustre", {"FileSystemId": existing}),
        }[kind]
        return {"MountDir": SHARED_DIR, "Name": "lsst-shared", "StorageType": key, f"{key}Settings": settings}
    if kind == "ebs":
        settings = {"VolumeType": "gp3", "Size": cluster["shared_storage_gb"], "DeletionPolicy": "Retain"}
        return {"MountDir": SHARED_DIR, "Name": "lsst-shared", "StorageType": "Ebs", "EbsSettings": settings}
    if kind == "efs":
        settings = {"PerformanceMode": "generalPurpose", "DeletionPolicy": "Retain"}
        return {"MountDir": SHARED_DIR, "Name": "lsst-shared", "StorageType": "Efs", "EfsSettings": settings}
    # FSx for Lustre comes in 1.2 TB steps
    capacity = max(1200, -(-cluster["shared_storage_gb"] // 1200) * 1200)
    settings = {
        "StorageCapacity": capacity,
        "DeploymentType": "PERSISTENT_2",
        "PerUnitStorageThroughput": 125,
        "DeletionPolicy": "Retain",
    }
    return {
        "MountDir": SHARED_DIR,
        "Name": "lsst-shared",
        "StorageType": "FsxLustre",
        "FsxLustreSettings": settings,
    }
