"""ParallelCluster's own command line, ``pcluster``: run it, read its JSON answer, dry-run a create.

pcluster answers every command in JSON, and exits 1 even when a dry run
succeeds, so the JSON decides. :func:`call` is the one place that runs it.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterable
from pathlib import Path

from lsst_on_aws.cloud.cluster import ClusterConfigError


class PclusterError(RuntimeError):
    """pcluster did not answer, or not in JSON."""


def pcluster_command() -> str:
    """The ``pcluster`` of this Python environment (aws-parallelcluster), else the one on PATH."""
    beside = Path(sys.executable).with_name("pcluster")
    return str(beside) if beside.exists() else "pcluster"


def call(*args: str, region: str = "", timeout: float = 900) -> tuple[int, dict]:
    """Run ``pcluster ARGS`` (in ``region`` if given): its exit status and JSON answer.

    Raises `PclusterError` when it does not answer within ``timeout`` seconds or not in JSON.
    """
    command = [pcluster_command(), *args] + (["--region", region] if region else [])
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=timeout, check=False)
    except subprocess.TimeoutExpired as exc:
        raise PclusterError(f"`pcluster {args[0]}` did not answer within {timeout:.0f} s") from exc
    try:
        return done.returncode, json.loads(done.stdout)
    except json.JSONDecodeError:
        text = (done.stdout + done.stderr).strip()[-2000:]
        raise PclusterError(
            f"`pcluster {args[0]}` did not answer in JSON (exit status {done.returncode}): {text}"
        ) from None


DRY_RUN_SUCCESS = "Request would have succeeded, but DryRun flag is set."


def dry_run(config_path: str, cluster_name: str, suppress_validators: Iterable[str] = ()) -> list[dict]:
    """``pcluster create-cluster --dryrun true``: every pcluster validator, against AWS, nothing created.

    Returns pcluster's validation messages (warnings, information) on
    success; raises :class:`ClusterConfigError` with each ERROR otherwise.
    pcluster exits 1 even when the dry run succeeds, so its JSON decides.
    """
    args = ["create-cluster", "--dryrun", "true", "--cluster-name", cluster_name]
    args += ["--cluster-configuration", config_path]
    suppress = list(suppress_validators)
    if suppress:
        args += ["--suppress-validators", *suppress]
    try:
        _, answer = call(*args)
    except PclusterError as err:
        raise ClusterConfigError(f"pcluster's dry run failed: {err}") from None
    if answer.get("message") == DRY_RUN_SUCCESS:
        return answer.get("validationMessages", [])
    failures = [m for m in answer.get("configurationValidationErrors", []) if m.get("level") == "ERROR"]
    lines = [f"  {m.get('type', 'pcluster')}: {m.get('message', '')}" for m in failures]
    raise ClusterConfigError(
        f"pcluster's dry run refused the cluster ({answer.get('message', 'no message')}):\n"
        + ("\n".join(lines) or f"  {json.dumps(answer)[:2000]}")
    )
