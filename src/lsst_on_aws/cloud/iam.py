"""The IAM permissions the workflow needs, checked against the AWS calls it really makes.

``config/iam-policy.json`` is the least-privilege policy for the IAM user or
role that runs the workflow. The tests record every request the workflow's
AWS code (and pcluster, which it calls) sends to moto's server, turn each
into the IAM action it needs (:func:`recorded_actions`), and compare that
set with the policy's (:func:`policy_actions`): the policy must allow every
call, and allow nothing the workflow never calls.
"""

from __future__ import annotations

import base64
import json
import re
import urllib.parse
from collections.abc import Iterable
from pathlib import Path

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

# EFS's REST calls: (method, resource: the path's segment after the API version) -> IAM action
EFS_ACTIONS = {
    ("GET", "file-systems"): "elasticfilesystem:DescribeFileSystems",
    ("DELETE", "file-systems"): "elasticfilesystem:DeleteFileSystem",
    ("GET", "mount-targets"): "elasticfilesystem:DescribeMountTargets",
}


def request_action(record: dict) -> str:
    """The IAM action of one recorded request (moto's recorder format: headers, method, url, body).

    The service is the one the request was signed for; the operation is the
    ``Action`` of query-protocol services (EC2, STS, IAM, CloudFormation) or
    the ``X-Amz-Target`` of JSON-protocol ones (Cost Explorer, Budgets,
    Pricing). An S3 call is named by its method and whether it is on a
    bucket or an object (`S3_ACTIONS`), an EFS call by its method and
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
        body = record.get("body") or ""
        if record.get("body_encoded") and body:
            body = base64.b64decode(body).decode(errors="replace")
        operation = urllib.parse.parse_qs(body).get("Action", [""])[0]
    if not operation:
        path = urllib.parse.urlparse(record["url"]).path
        on = "object" if "/" in path.strip("/") else "bucket"
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
    is wildcards after its type (``volume/*``, ``stack/*/*``), whatever its region and account.
    """
    if resource == "*":
        return True
    segments = ":".join(resource.split(":")[5:]).split("/")
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
