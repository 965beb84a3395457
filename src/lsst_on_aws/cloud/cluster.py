"""The AWS ParallelCluster: its v3 configuration rendered from the workflow's, and checked before use.

:func:`render` turns the workflow config's ``cluster``, ``costs`` and
``stack`` sections into a ParallelCluster v3 cluster configuration (a dict,
written as YAML). :func:`check` then validates it in three steps, each
failure one message naming the offending key:

1. pcluster's own ``ClusterSchema`` (offline: unknown keys, types, enums,
   ranges, reserved tag prefixes);
2. what the schema misses: ``MinCount <= MaxCount`` (pcluster's own
   ``ComputeResourceSizeValidator``), SSH never open to the world, and,
   given an EC2 client, that every instance type exists and is offered in
   the region;
3. (elsewhere, needs AWS) ``pcluster create-cluster --dryrun true``.

:func:`caller_identity` refuses missing and root-account credentials before
anything is created.
"""

from __future__ import annotations

import os
from collections.abc import Iterable

from lsst_on_aws.s3data import split_uri

# The data plane's shared folders on the cluster.
SHARED_DIR = "/shared"


class ClusterConfigError(ValueError):
    """The cluster configuration is invalid; the message names the key."""


class CredentialsError(RuntimeError):
    """No usable AWS credentials: missing, or those of the account's root user."""


def render(config: dict, *, allowed_ips: str, bootstrap: dict | None = None) -> dict:
    """The ParallelCluster v3 configuration for the workflow config ``config``.

    ``allowed_ips`` is the CIDR allowed to reach the head node by SSH: the
    configured one, or the caller's own address as a /32 (resolved by the
    caller of this function, never 0.0.0.0/0). ``bootstrap`` is the head
    node's OnNodeConfigured action ({"Script": s3 URL, "Args": [...]}).
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
    queues = []
    for capacity in ("SPOT", "ONDEMAND") if cluster["market"] == "spot" else ("ONDEMAND", "SPOT"):
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


def check_buckets(doc: dict, s3) -> None:
    """Every bucket the nodes are given access to exists and these credentials may list it."""
    from lsst_on_aws.s3data import S3DataError, check_bucket

    for entry in doc.get("HeadNode", {}).get("Iam", {}).get("S3Access", []):
        try:
            check_bucket(s3, entry["BucketName"], "HeadNode.Iam.S3Access")
        except S3DataError as err:
            raise ClusterConfigError(
                f"{err} (config keys cluster.data_bucket, data.path, publish.uri)"
            ) from None


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


def _flatten(messages, prefix: str = "") -> Iterable[str]:
    """marshmallow's nested error messages as "Key.Sub[0].Leaf: message" lines."""
    if isinstance(messages, dict):
        for key, value in messages.items():
            if isinstance(key, int):
                path = f"{prefix}[{key}]"
            elif prefix:
                path = f"{prefix}.{key}"
            else:
                path = str(key)
            yield from _flatten(value, path)
    elif isinstance(messages, list) and all(isinstance(m, str) for m in messages):
        yield f"{prefix or 'config'}: {' '.join(messages)}"
    elif isinstance(messages, list):
        for index, value in enumerate(messages):
            yield from _flatten(value, f"{prefix}[{index}]")
    else:
        yield f"{prefix or 'config'}: {messages}"


def schema_errors(doc: dict, cluster_name: str) -> list[str]:
    """pcluster's ``ClusterSchema`` errors of ``doc``, one line each (empty when valid); offline."""
    # The schema looks up the region even offline; the document's own is the right one.
    os.environ.setdefault("AWS_DEFAULT_REGION", doc.get("Region") or "us-east-1")
    from marshmallow import ValidationError
    from pcluster.schemas.cluster_schema import ClusterSchema

    try:
        ClusterSchema(cluster_name=cluster_name).load(doc)
    except ValidationError as err:
        return sorted(_flatten(err.messages))
    return []


def semantic_errors(doc: dict, ec2=None) -> list[str]:
    """What the schema does not check: node counts, SSH exposure and, given ``ec2``, instance types."""
    from pcluster.config.common import CapacityType
    from pcluster.validators.cluster_validators import ComputeResourceSizeValidator

    errors = []
    allowed = doc.get("HeadNode", {}).get("Ssh", {}).get("AllowedIps", "")
    if allowed in ("0.0.0.0/0", "::/0"):
        errors.append(f"HeadNode.Ssh.AllowedIps: {allowed} opens SSH to the whole internet; give a /32")
    types = {"HeadNode.InstanceType": doc["HeadNode"]["InstanceType"]}
    for i, queue in enumerate(doc["Scheduling"]["SlurmQueues"]):
        capacity = CapacityType[queue.get("CapacityType", "ONDEMAND")]
        for j, resource in enumerate(queue["ComputeResources"]):
            key = f"Scheduling.SlurmQueues[{i}].ComputeResources[{j}]"
            counts = {"min_count": resource.get("MinCount", 0), "max_count": resource.get("MaxCount", 10)}
            for failure in ComputeResourceSizeValidator().execute(**counts, capacity_type=capacity):
                errors.append(f"{key}: {failure.message}")
            types[f"{key}.InstanceType"] = resource["InstanceType"]
    if ec2 is not None:
        errors += instance_type_errors(ec2, types, doc["Region"])
    return errors


def instance_type_errors(ec2, types: dict[str, str], region: str) -> list[str]:
    """Key -> instance type pairs whose type does not exist or is not offered in ``region``."""
    offered = set()
    paginator = ec2.get_paginator("describe_instance_type_offerings")
    wanted = sorted(set(types.values()))
    for page in paginator.paginate(
        LocationType="region", Filters=[{"Name": "instance-type", "Values": wanted}]
    ):
        offered.update(o["InstanceType"] for o in page["InstanceTypeOfferings"])
    return [
        f"{key}: instance type {itype} is not offered in {region}"
        for key, itype in types.items()
        if itype not in offered
    ]


def check(doc: dict, cluster_name: str, ec2=None) -> None:
    """Raise :class:`ClusterConfigError` listing every problem of ``doc`` (schema first)."""
    errors = schema_errors(doc, cluster_name)
    if not errors:
        errors = semantic_errors(doc, ec2)
    if errors:
        raise ClusterConfigError(
            "the ParallelCluster configuration is invalid:\n" + "\n".join(f"  {e}" for e in errors)
        )


def caller_identity(sts) -> dict:
    """The credentials' identity (``Account``, ``Arn``); refuses none and the root user's."""
    from botocore.exceptions import ClientError, NoCredentialsError

    try:
        identity = sts.get_caller_identity()
    except NoCredentialsError:
        raise CredentialsError(
            "no AWS credentials were found: configure an IAM user's or role's credentials"
            " (`aws configure`, AWS_PROFILE, or an instance role) and try again"
        ) from None
    except ClientError as err:
        raise CredentialsError(f"the AWS credentials were refused: {err}") from None
    if identity["Arn"].endswith(":root"):
        raise CredentialsError(
            f"these are the root user's credentials of account {identity['Account']}; refusing to"
            " run with them. Create an IAM user or role for this workflow and use its"
            " credentials instead (root credentials cannot be limited, and a leak costs the account)"
        )
    return identity


def own_cidr(url: str = "https://checkip.amazonaws.com", timeout: float = 10.0) -> str:
    """This machine's public address as a /32, as AWS sees it (for ``HeadNode.Ssh.AllowedIps``)."""
    import ipaddress
    import urllib.request

    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            address = ipaddress.ip_address(response.read().decode().strip())
    except (OSError, ValueError) as err:
        raise ClusterConfigError(
            f"could not find this machine's public address ({url}: {err}); set config key"
            " cluster.allowed_ips to the CIDR that may reach the head node by SSH"
        ) from None
    return f"{address}/32"


def pcluster_command() -> str:
    """The ``pcluster`` of this Python environment (aws-parallelcluster), else the one on PATH."""
    import sys
    from pathlib import Path

    beside = Path(sys.executable).with_name("pcluster")
    return str(beside) if beside.exists() else "pcluster"


DRY_RUN_SUCCESS = "Request would have succeeded, but DryRun flag is set."


def dry_run(config_path: str, cluster_name: str, suppress_validators: Iterable[str] = ()) -> list[dict]:
    """``pcluster create-cluster --dryrun true``: every pcluster validator, against AWS, nothing created.

    Returns pcluster's validation messages (warnings, information) on
    success; raises :class:`ClusterConfigError` with each ERROR otherwise.
    pcluster exits 1 even when the dry run succeeds, so its JSON decides.
    """
    import json
    import subprocess

    command = [pcluster_command(), "create-cluster", "--dryrun", "true"]
    command += ["--cluster-name", cluster_name, "--cluster-configuration", config_path]
    suppress = list(suppress_validators)
    if suppress:
        command += ["--suppress-validators", *suppress]
    result = subprocess.run(command, capture_output=True, text=True, check=False)
    try:
        answer = json.loads(result.stdout)
    except json.JSONDecodeError:
        raise ClusterConfigError(
            f"pcluster's dry run did not answer in JSON (exit status {result.returncode}):"
            f" {(result.stdout + result.stderr).strip()[-2000:]}"
        ) from None
    if answer.get("message") == DRY_RUN_SUCCESS:
        return answer.get("validationMessages", [])
    failures = [m for m in answer.get("configurationValidationErrors", []) if m.get("level") == "ERROR"]
    lines = [f"  {m.get('type', 'pcluster')}: {m.get('message', '')}" for m in failures]
    raise ClusterConfigError(
        f"pcluster's dry run refused the cluster ({answer.get('message', 'no message')}):\n"
        + ("\n".join(lines) or f"  {json.dumps(answer)[:2000]}")
    )


def budget_alarm(
    budgets,
    account_id: str,
    name: str,
    tag: tuple[str, str],
    limit_usd: float,
    emails: Iterable[str] = (),
    thresholds_percent: Iterable[float] = (80.0, 100.0),
) -> str:
    """An AWS Budgets cost budget over everything tagged ``tag`` (key, value), with e-mail alarms.

    Monthly, on actual unblended cost; each of ``emails`` is told when the
    spending passes each threshold (percent of ``limit_usd``). The tag must
    be an activated cost-allocation tag. Idempotent: a budget of that name
    already there is left as it is. Returns "created" or "exists".
    """
    budget = {
        "BudgetName": name,
        "BudgetLimit": {"Amount": f"{limit_usd:.2f}", "Unit": "USD"},
        "BudgetType": "COST",
        "TimeUnit": "MONTHLY",
        "CostFilters": {"TagKeyValue": [f"user:{tag[0]}${tag[1]}"]},
    }
    subscribers = [{"SubscriptionType": "EMAIL", "Address": e} for e in emails]
    notifications = [
        {
            "Notification": {
                "NotificationType": "ACTUAL",
                "ComparisonOperator": "GREATER_THAN",
                "Threshold": float(threshold),
                "ThresholdType": "PERCENTAGE",
            },
            "Subscribers": subscribers,
        }
        for threshold in thresholds_percent
        if subscribers
    ]
    try:
        budgets.create_budget(AccountId=account_id, Budget=budget, NotificationsWithSubscribers=notifications)
    except budgets.exceptions.DuplicateRecordException:
        return "exists"
    return "created"
