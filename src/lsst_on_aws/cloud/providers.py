"""Where a cluster comes from: create or adopt it, wait, find its head node, delete it.

Two providers, chosen by config key ``remote.provider``:

``pcluster``
    AWS ParallelCluster through its own CLI (``pcluster create-cluster``,
    ``describe-cluster``, ``delete-cluster``), whose answers are JSON.
    Creating is idempotent: a cluster of the same name that already exists
    is adopted, never duplicated.
``existing``
    A head node that is already there (a university login node, a cluster
    made by hand, the tests' stand-in on 127.0.0.1): "creating" only records
    how to reach it, and "deleting" leaves it alone, saying so.

Every method reports through ``on_progress`` (one line at a time) and
raises `ClusterError` with one clear sentence when something fails.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from datetime import UTC, datetime

from lsst_on_aws.cloud import pcluster
from lsst_on_aws.cloud.storage import stack_storage

READY = {"CREATE_COMPLETE", "UPDATE_COMPLETE", "UPDATE_ROLLBACK_COMPLETE"}


FAILED = {"CREATE_FAILED", "UPDATE_FAILED", "DELETE_FAILED"}


NOT_FOUND = "does not exist"


class ClusterError(RuntimeError):
    """A cluster could not be created, reached or deleted."""


def now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


class Pcluster:
    """AWS ParallelCluster through the ``pcluster`` CLI of this environment."""

    name = "pcluster"

    def __init__(self, region: str):
        self.region = region

    def _call(self, *args: str, timeout: float = 900) -> tuple[int, dict]:
        try:
            return pcluster.call(*args, region=self.region, timeout=timeout)
        except pcluster.PclusterError as err:
            raise ClusterError(str(err)) from None

    def describe(self, cluster: str) -> dict | None:
        """``pcluster describe-cluster``'s answer, or None when there is no such cluster."""
        rc, answer = self._call("describe-cluster", "--cluster-name", cluster)
        if rc != 0:
            if NOT_FOUND in answer.get("message", ""):
                return None
            raise ClusterError(f"cannot describe cluster {cluster}: {answer.get('message', answer)}")
        return answer

    def create(
        self, cluster: str, config_path: str, suppress_validators: Iterable[str] = ()
    ) -> tuple[dict, bool]:
        """Create the cluster, or adopt the one of that name already there: (description, adopted)."""
        existing = self.describe(cluster)
        if existing is not None:
            status = existing.get("clusterStatus", "")
            if status.startswith("DELETE"):
                raise ClusterError(
                    f"cluster {cluster} is being deleted ({status}); rerun once it is gone,"
                    " or choose another cluster.name"
                )
            return existing, True
        args = ["create-cluster", "--cluster-name", cluster, "--cluster-configuration", config_path]
        suppress = list(suppress_validators)
        if suppress:
            args += ["--suppress-validators", *suppress]
        rc, answer = self._call(*args)
        if rc != 0 or "cluster" not in answer:
            errors = [
                f"{m.get('type', '')}: {m.get('message', '')}"
                for m in answer.get("configurationValidationErrors", [])
                if m.get("level") == "ERROR"
            ]
            raise ClusterError(
                f"pcluster refused to create cluster {cluster}: {answer.get('message', '')}"
                + ("".join(f"\n  {e}" for e in errors))
            )
        return answer["cluster"], False

    def _watch(
        self, cluster: str, *, timeout_s: float, poll_s: float, on_progress: Callable[[str], None], late: str
    ):
        """Describe the cluster every ``poll_s``, reporting each change of status; yield each answer.

        None once the cluster is gone. Raises `ClusterError` naming ``late``
        (what to do) when ``timeout_s`` has passed.
        """
        deadline, last = time.monotonic() + timeout_s, None
        while True:
            answer = self.describe(cluster)
            status = "gone" if answer is None else answer.get("clusterStatus", "")
            if status != last:
                stack = (
                    "" if answer is None else f" (CloudFormation {answer.get('cloudFormationStackStatus')})"
                )
                on_progress(f"cluster {cluster}: {status}{stack}")
                last = status
            yield answer
            if time.monotonic() > deadline:
                raise ClusterError(
                    f"cluster {cluster} was still {status} after {timeout_s / 60:.0f} min; {late}"
                )
            time.sleep(poll_s)

    def wait_ready(
        self,
        cluster: str,
        *,
        timeout_s: float,
        poll_s: float = 30,
        on_progress: Callable[[str], None] = print,
    ) -> dict:
        """Wait until the cluster is ready; its description. Raises when it fails or the time runs out."""
        late = "it may still come up: rerun to go on waiting, or delete it"
        for answer in self._watch(
            cluster, timeout_s=timeout_s, poll_s=poll_s, on_progress=on_progress, late=late
        ):
            if answer is None:
                raise ClusterError(f"cluster {cluster} disappeared while it was being created")
            status = answer.get("clusterStatus", "")
            if status in READY:
                return answer
            if status in FAILED or status.startswith("DELETE"):
                reasons = "; ".join(
                    f"{f.get('failureCode')}: {f.get('failureReason')}" for f in answer.get("failures", [])
                )
                raise ClusterError(
                    f"cluster {cluster} failed to come up ({status}): {reasons or 'no reason given'}"
                )
        raise AssertionError("unreachable")

    def head_host(self, description: dict) -> str:
        """The address of the cluster's head node: its public one, else its private one."""
        head = description.get("headNode") or {}
        host = head.get("publicIpAddress") or head.get("privateIpAddress")
        if not host:
            raise ClusterError(f"cluster {description.get('clusterName')} has no head node address yet")
        return host

    def storage(self, cluster: str) -> list[dict]:
        """The shared storage the cluster's stack made ([{"id", "kind"}]): it outlives the cluster."""
        import boto3

        return stack_storage(boto3.Session(region_name=self.region).client("cloudformation"), cluster)

    def delete(
        self,
        cluster: str,
        *,
        timeout_s: float,
        poll_s: float = 30,
        on_progress: Callable[[str], None] = print,
    ) -> str:
        """Delete the cluster and wait until it is gone: "deleted", or "absent" when there was none.

        Retained shared storage (``DeletionPolicy: Retain``) outlives it.
        """
        if self.describe(cluster) is None:
            return "absent"
        rc, answer = self._call("delete-cluster", "--cluster-name", cluster)
        if rc != 0 and NOT_FOUND not in answer.get("message", ""):
            raise ClusterError(
                f"pcluster refused to delete cluster {cluster}: {answer.get('message', answer)}"
            )
        late = "rerun to go on waiting. It may still be billing."
        for answer in self._watch(
            cluster, timeout_s=timeout_s, poll_s=poll_s, on_progress=on_progress, late=late
        ):
            if answer is None:
                return "deleted"
            if answer.get("clusterStatus") == "DELETE_FAILED":
                raise ClusterError(
                    f"cluster {cluster} could not be deleted (DELETE_FAILED): see its CloudFormation stack's"
                    " events, then `pcluster delete-cluster` it; it may still be billing"
                )
        raise AssertionError("unreachable")


class Existing:
    """A head node that is already there: nothing is created and nothing is deleted."""

    name = "existing"

    def __init__(self, host: str):
        if not host:
            raise ClusterError(
                "remote.provider is 'existing' but remote.head_node.host is empty: name the login node to use"
            )
        self.host = host

    def create(
        self, cluster: str, config_path: str, suppress_validators: Iterable[str] = ()
    ) -> tuple[dict, bool]:
        return {
            "clusterName": cluster,
            "clusterStatus": "EXISTING",
            "headNode": {"publicIpAddress": self.host},
        }, True

    def wait_ready(self, cluster: str, *, timeout_s: float, poll_s: float = 30, on_progress=print) -> dict:
        return self.create(cluster, "")[0]

    def head_host(self, description: dict) -> str:
        return self.host

    def storage(self, cluster: str) -> list[dict]:
        """Storage of a head node that is not ours is none of ours."""
        return []

    def delete(self, cluster: str, *, timeout_s: float, poll_s: float = 30, on_progress=print) -> str:
        on_progress(f"cluster {cluster} is an existing one (remote.provider: existing): left running")
        return "left running"


def provider_of(config: dict):
    """The provider of config sections ``remote`` and ``cluster``."""
    if config["remote"]["provider"] == "existing":
        return Existing(config["remote"]["head_node"]["host"])
    return Pcluster(config["cluster"]["region"])
