"""Checks of a cluster before anything is created, each failure one message naming the key.

:func:`check` validates a rendered ParallelCluster configuration
(:func:`lsst_on_aws.cloud.cluster.render`):

1. pcluster's own ``ClusterSchema`` (offline: unknown keys, types, enums,
   ranges, reserved tag prefixes);
2. what the schema misses: ``MinCount <= MaxCount`` (pcluster's own
   ``ComputeResourceSizeValidator``), SSH never open to the world, and,
   given an EC2 client, that every instance type exists and is offered in
   the region;
3. (:func:`lsst_on_aws.cloud.pcluster.dry_run`, needs AWS) ``pcluster
   create-cluster --dryrun true``.

:func:`caller_identity` refuses missing and root-account credentials, and
:func:`check_buckets` buckets the nodes cannot use.
"""

from __future__ import annotations

import os
from collections.abc import Iterable

from lsst_on_aws.cloud.cluster import ClusterConfigError


class CredentialsError(RuntimeError):
    """No usable AWS credentials: missing, or those of the account's root user."""


def check_buckets(doc: dict, s3) -> None:
    """Every bucket the nodes are given access to exists and these credentials may list it."""
    from lsst_on_aws.cloud.s3data import S3DataError, check_bucket

    for entry in doc.get("HeadNode", {}).get("Iam", {}).get("S3Access", []):
        try:
            check_bucket(s3, entry["BucketName"], "HeadNode.Iam.S3Access")
        except S3DataError as err:
            raise ClusterConfigError(
                f"{err} (config keys cluster.data_bucket, data.path, publish.uri)"
            ) from None


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
