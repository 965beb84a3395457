"""The IAM permissions the workflow needs, checked against the AWS calls it really makes.

``config/iam-policy.json`` is the least-privilege policy for the IAM user or
role that runs the workflow. The tests record every request the workflow's
AWS code (and pcluster, which it calls) sends to moto's server, turn each
into the IAM action it needs (:func:`recorded_actions`), and compare that
set with the policy's (:func:`policy_actions`): the policy must allow every
call, and allow nothing the workflow never calls. What CloudFormation does with
the user's permissions when pcluster's stack is created and deleted cannot be
recorded on moto; :data:`CLOUDFORMATION_ACTIONS` lists it per resource type,
and the tests compare it with the types of the templates pcluster makes.
"""

from __future__ import annotations

import base64
import json
import re
import urllib.parse
from collections.abc import Iterable
from pathlib import Path

import yaml

# API operations whose IAM action has another name (per service prefix).
ACTION_NAMES = {
    "budgets:CreateBudget": "budgets:ModifyBudget",
    "budgets:DescribeBudget": "budgets:ViewBudget",
    "budgets:DescribeBudgets": "budgets:ViewBudget",
    "budgets:DescribeNotificationsForBudget": "budgets:ViewBudget",
}
_SCOPE = re.compile(r"Credential=[^/]+/[^/]+/[^/]+/([^/]+)/aws4_request")
# S3's REST calls (path-style URLs): (method, on a bucket or an object) -> IAM action
S3_ACTIONS = {
    ("HEAD", "bucket"): "s3:ListBucket",
    ("GET", "bucket"): "s3:ListBucket",
    ("PUT", "bucket"): "s3:CreateBucket",
    ("GET", "object"): "s3:GetObject",
    ("HEAD", "object"): "s3:GetObject",
    ("PUT", "object"): "s3:PutObject",
    ("DELETE", "object"): "s3:DeleteObject",
}

# S3 calls on a bucket's subresource (the query's first key) -> IAM action
S3_SUBRESOURCE_ACTIONS = {
    ("PUT", "versioning"): "s3:PutBucketVersioning",
    ("PUT", "encryption"): "s3:PutEncryptionConfiguration",
    ("PUT", "policy"): "s3:PutBucketPolicy",
    ("GET", "policy"): "s3:GetBucketPolicy",
    ("DELETE", "policy"): "s3:DeleteBucketPolicy",
    ("GET", "versions"): "s3:ListBucketVersions",
    ("POST", "delete"): "s3:DeleteObject",
}

# EFS's REST calls: (method, resource: the path's segment after the API version) -> IAM action
EFS_ACTIONS = {
    ("GET", "file-systems"): "elasticfilesystem:DescribeFileSystems",
    ("DELETE", "file-systems"): "elasticfilesystem:DeleteFileSystem",
    ("GET", "mount-targets"): "elasticfilesystem:DescribeMountTargets",
}


def request_body(record: dict) -> str:
    """A recorded request's body as text (moto's recorder keeps some base64-encoded)."""
    body = record.get("body") or ""
    if record.get("body_encoded") and body:
        body = base64.b64decode(body).decode(errors="replace")
    return body


def request_action(record: dict) -> str:
    """The IAM action of one recorded request (moto's recorder format: headers, method, url, body).

    The service is the one the request was signed for; the operation is the
    ``Action`` of query-protocol services (EC2, STS, IAM, CloudFormation) or
    the ``X-Amz-Target`` of JSON-protocol ones (Cost Explorer, Budgets,
    Pricing). An S3 call is named by its method and subresource
    (`S3_SUBRESOURCE_ACTIONS`: ``?versioning``, ``?policy``, ...) or else by
    whether it is on a bucket or an object (`S3_ACTIONS`), an EFS call by its method and
    resource (`EFS_ACTIONS`); any other REST call comes back as
    ``service:METHOD path``, which no policy matches: map it here first.
    """
    headers = {k.lower(): v for k, v in record["headers"].items()}
    scope = _SCOPE.search(headers.get("authorization", ""))
    service = scope.group(1) if scope else "unsigned"
    target = headers.get("x-amz-target", "")
    if target:
        operation = target.rsplit(".", 1)[-1]
    else:
        operation = urllib.parse.parse_qs(request_body(record)).get("Action", [""])[0]
    if not operation:
        path = urllib.parse.urlparse(record["url"]).path
        on = "object" if "/" in path.strip("/") else "bucket"
        query = urllib.parse.urlparse(record["url"]).query
        subresource = query.split("&", 1)[0].split("=", 1)[0]
        if service == "s3" and (record["method"], subresource) in S3_SUBRESOURCE_ACTIONS:
            return S3_SUBRESOURCE_ACTIONS[(record["method"], subresource)]
        if service == "s3" and (record["method"], on) in S3_ACTIONS:
            return S3_ACTIONS[(record["method"], on)]
        resource = [*path.strip("/").split("/"), ""][1]  # /<api version>/<resource>/...
        if service == "elasticfilesystem" and (record["method"], resource) in EFS_ACTIONS:
            return EFS_ACTIONS[(record["method"], resource)]
        return f"{service}:{record['method']} {path}"
    action = f"{service}:{operation}"
    return ACTION_NAMES.get(action, action)


def recorded_actions(lines: Iterable[str]) -> set[str]:
    """The IAM actions of a moto recording (one JSON request a line)."""
    return {request_action(json.loads(line)) for line in lines if line.strip()}


def allow_statements(path: Path | str) -> list[dict]:
    """The policy's Allow statements, each ``Action`` and ``Resource`` as a list (IAM takes a string too)."""
    document = json.loads(Path(path).read_text())
    listed = []
    for statement in document["Statement"]:
        if statement["Effect"] != "Allow":
            continue
        for key in ("Action", "Resource"):
            value = statement.get(key, [])
            statement[key] = [value] if isinstance(value, str) else value
        listed.append(statement)
    return listed


def policy_actions(path: Path | str) -> set[str]:
    """Every action the policy's Allow statements grant."""
    return {action for statement in allow_statements(path) for action in statement["Action"]}


# the verbs of actions that remove, replace or rewrite what exists
DESTRUCTIVE_VERBS = ("Delete", "Terminate", "Remove", "Detach", "Put", "Change", "Update", "Modify")


def _everything(resource: str) -> bool:
    """Whether a Resource entry names every resource of its kind: ``*``, or an ARN whose resource part
    is wildcards after its type (``volume/*``, ``stack/*/*``; S3's bucket and key have no type:
    ``*/*``), whatever its region and account.
    """
    if resource == "*":
        return True
    segments = ":".join(resource.split(":")[5:]).split("/")
    if resource.split(":")[2:3] == ["s3"]:  # bucket/key: no type before them
        return all(segment in ("*", "") for segment in segments)
    return all(segment in ("*", "") for segment in segments[1:] or segments)


def unbounded_destructive(path: Path | str) -> list[tuple[str, str]]:
    """(statement Sid, action) of every destructive action a policy allows on every resource, with no
    condition to bound it: none may be left in the workflow's policies.

    An action is destructive by its verb (`DESTRUCTIVE_VERBS`). A statement bounds it by a
    ``Condition`` (the workflow's own tag, a call made through CloudFormation) or by resources that
    are not all-wildcard (a budget name's prefix, an S3 key prefix).
    """
    return [
        (statement.get("Sid", "?"), action)
        for statement in allow_statements(path)
        if not statement.get("Condition") and any(_everything(r) for r in statement["Resource"])
        for action in statement["Action"]
        if action.split(":", 1)[1].startswith(DESTRUCTIVE_VERBS)
    ]


# What CloudFormation does with the user's own permissions (aws:CalledVia cloudformation) to create
# and delete each resource type of the stacks pcluster makes for this workflow's clusters: from
# ParallelCluster's published policy for creating and deleting clusters (its
# cloudformation/policies/parallelcluster-policies.yaml), cut to the types in the templates of the
# cluster configurations this workflow renders. A resource type missing here is an error
# (:func:`cloudformation_actions`), so a new pcluster that adds one is noticed.
CLOUDFORMATION_ACTIONS = {
    "AWS::CloudFormation::Stack": [
        "cloudformation:CreateStack",
        "cloudformation:DescribeStacks",
        "cloudformation:DeleteStack",
    ],
    "AWS::CloudFormation::WaitCondition": [],
    "AWS::CloudFormation::WaitConditionHandle": [],
    "AWS::CloudFormation::CustomResource": ["lambda:InvokeFunction"],
    "AWS::CloudWatch::Alarm": [
        "cloudwatch:PutMetricAlarm",
        "cloudwatch:DescribeAlarms",
        "cloudwatch:DeleteAlarms",
    ],
    "AWS::CloudWatch::CompositeAlarm": [
        "cloudwatch:PutCompositeAlarm",
        "cloudwatch:DescribeAlarms",
        "cloudwatch:DeleteAlarms",
    ],
    "AWS::CloudWatch::Dashboard": [
        "cloudwatch:PutDashboard",
        "cloudwatch:GetDashboard",
        "cloudwatch:DeleteDashboards",
    ],
    "AWS::DynamoDB::Table": [
        "dynamodb:CreateTable",
        "dynamodb:DescribeTable",
        "dynamodb:TagResource",
        "dynamodb:ListTagsOfResource",
        "dynamodb:DeleteTable",
    ],
    "AWS::EC2::Instance": [
        "ec2:RunInstances",
        "ec2:Describe*",
        "ec2:CreateTags",
        "iam:PassRole",
        "ec2:TerminateInstances",
    ],
    "AWS::EC2::LaunchTemplate": [
        "ec2:CreateLaunchTemplate",
        "ec2:CreateLaunchTemplateVersion",
        "ec2:Describe*",
        "ec2:CreateTags",
        "ec2:DeleteLaunchTemplate",
    ],
    "AWS::EC2::NetworkInterface": [
        "ec2:CreateNetworkInterface",
        "ec2:ModifyNetworkInterfaceAttribute",
        "ec2:Describe*",
        "ec2:CreateTags",
        "ec2:DeleteNetworkInterface",
    ],
    "AWS::EC2::SecurityGroup": [
        "ec2:CreateSecurityGroup",
        "ec2:RevokeSecurityGroupEgress",
        "ec2:Describe*",
        "ec2:CreateTags",
        "ec2:DeleteSecurityGroup",
    ],
    "AWS::EC2::SecurityGroupEgress": ["ec2:AuthorizeSecurityGroupEgress", "ec2:RevokeSecurityGroupEgress"],
    "AWS::EC2::SecurityGroupIngress": ["ec2:AuthorizeSecurityGroupIngress", "ec2:RevokeSecurityGroupIngress"],
    # retained (DeletionPolicy: Retain): the delete is the workflow's own, on request (delete_storage)
    "AWS::EC2::Volume": ["ec2:CreateVolume", "ec2:Describe*", "ec2:CreateTags"],
    "AWS::EFS::FileSystem": [
        "elasticfilesystem:CreateFileSystem",
        "elasticfilesystem:DescribeFileSystems",
        "elasticfilesystem:TagResource",
    ],
    "AWS::EFS::MountTarget": [
        "elasticfilesystem:CreateMountTarget",
        "elasticfilesystem:DescribeMountTargets",
        "elasticfilesystem:DeleteMountTarget",
        "ec2:Describe*",
    ],
    "AWS::FSx::FileSystem": [
        "fsx:CreateFileSystem",
        "fsx:DescribeFileSystems",
        "fsx:TagResource",
        "iam:CreateServiceLinkedRole",
    ],
    "AWS::IAM::InstanceProfile": [
        "iam:CreateInstanceProfile",
        "iam:GetInstanceProfile",
        "iam:AddRoleToInstanceProfile",
        "iam:RemoveRoleFromInstanceProfile",
        "iam:DeleteInstanceProfile",
    ],
    "AWS::IAM::Policy": ["iam:PutRolePolicy", "iam:GetRolePolicy", "iam:DeleteRolePolicy"],
    "AWS::IAM::Role": [
        "iam:CreateRole",
        "iam:GetRole",
        "iam:TagRole",
        "iam:AttachRolePolicy",
        "iam:DetachRolePolicy",
        "iam:DeleteRole",
    ],
    "AWS::Lambda::Function": [
        "lambda:CreateFunction",
        "lambda:GetFunction",
        "lambda:TagResource",
        "iam:PassRole",
        "lambda:DeleteFunction",
    ],
    "AWS::Logs::LogGroup": [
        "logs:CreateLogGroup",
        "logs:DescribeLogGroups",
        "logs:PutRetentionPolicy",
        "logs:TagResource",
        "logs:DeleteLogGroup",
    ],
    "AWS::Logs::MetricFilter": [
        "logs:PutMetricFilter",
        "logs:DescribeMetricFilters",
        "logs:DeleteMetricFilter",
    ],
    "AWS::Route53::HostedZone": [
        "route53:CreateHostedZone",
        "route53:GetHostedZone",
        "route53:GetChange",
        "route53:ChangeTagsForResource",
        "route53:ListResourceRecordSets",
        "route53:ChangeResourceRecordSets",
        "route53:ListQueryLoggingConfigs",
        "route53:DeleteHostedZone",
    ],
}


def template_resource_types(text: str) -> set[str]:
    """The resource types of a CloudFormation template (YAML or JSON; its ``!`` tags read as nothing)."""

    class Loader(yaml.SafeLoader):
        pass

    Loader.add_multi_constructor("!", lambda loader, suffix, node: None)
    document = yaml.load(text, Loader=Loader)
    return {resource["Type"] for resource in (document or {}).get("Resources", {}).values()}


def cloudformation_actions(resource_types: Iterable[str]) -> set[str]:
    """The actions CloudFormation needs from the user for ``resource_types`` (`CLOUDFORMATION_ACTIONS`).

    Raises ``KeyError`` naming the types it does not know.
    """
    types = set(resource_types)
    unknown = sorted(types - set(CLOUDFORMATION_ACTIONS))
    if unknown:
        raise KeyError(f"no IAM actions recorded for the resource types {unknown}")
    return {action for kind in types for action in CLOUDFORMATION_ACTIONS[kind]}
