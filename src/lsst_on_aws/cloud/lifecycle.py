"""A cluster's life as the control plane sees it: create or adopt, wait, find the head node, delete.

Two providers, chosen by config key ``cluster.provider``:

``pcluster``
    AWS ParallelCluster through its own CLI (``pcluster create-cluster``,
    ``describe-cluster``, ``delete-cluster``), whose answers are JSON.
    Creating is idempotent: a cluster of the same name that already exists
    is adopted, never duplicated.
``existing``
    A head node that is already there (a university login node, a cluster
    made by hand, the tests' stand-in on 127.0.0.1): "creating" only records
    how to reach it, and "deleting" leaves it alone, saying so.

Every function reports through ``on_progress`` (one line at a time) and
raises `ClusterError` with one clear sentence when something fails.
"""

from __future__ import annotations

import json
import os
import subprocess
import time
from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from pathlib import Path

from lsst_on_aws.cluster import budget_alarm, pcluster_command
from lsst_on_aws.remote import HeadNode
from lsst_on_aws.storage import stack_storage

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

    def __init__(self, region: str, command: str | None = None):
        self.region = region
        self.command = command or pcluster_command()

    def _call(self, *args: str, timeout: float = 900) -> tuple[int, dict]:
        cmd = [self.command, *args, "--region", self.region]
        try:
            done = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, check=False)
        except subprocess.TimeoutExpired as exc:
            raise ClusterError(f"`pcluster {args[0]}` did not answer within {timeout:.0f} s") from exc
        try:
            return done.returncode, json.loads(done.stdout)
        except json.JSONDecodeError:
            text = (done.stdout + done.stderr).strip()[-2000:]
            raise ClusterError(
                f"`pcluster {args[0]}` did not answer in JSON (exit status {done.returncode}): {text}"
            ) from None

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
        on_progress(f"cluster {cluster} is an existing one (cluster.provider: existing): left running")
        return "left running"


# --- the steps of the control plane, one per rule ---------------------------------------------------


def cluster_dir(config: dict) -> str:
    """Where the control plane keeps its records of the configured cluster."""
    return f"results/clusters/{config['cluster']['name']}"


def node_from_record(config: dict, record: dict) -> HeadNode:
    """The head node a creation record names, with the user, port, key and known_hosts from config."""
    head = config["remote"]["head_node"]
    known_hosts = head["known_hosts"] or f"{cluster_dir(config)}/known_hosts"
    return HeadNode(
        record["head_node"],
        user=head["user"],
        port=int(head["port"]),
        identity_file=os.path.expanduser(head["ssh_key_file"]) if head["ssh_key_file"] else "",
        # a new cluster's head node has a new key: trust the first one it shows, then hold it to that
        options=(f"UserKnownHostsFile={known_hosts}", "StrictHostKeyChecking=accept-new"),
    )


def create(
    config: dict,
    config_path: str,
    on_progress: Callable[[str], None] = print,
    *,
    budgets=None,
    account: str = "",
) -> dict:
    """Create (or adopt) the configured cluster, wait until it is ready: the creation record.

    With a Budgets client and the account id, also an AWS Budgets cost budget
    over the cluster's cost-allocation tag, limit ``budget.max_usd`` a month,
    e-mailing ``budget.alarm_emails`` at 80 % and 100 %.
    """
    name, remote_cfg = config["cluster"]["name"], config["remote"]
    chosen = provider_of(config)
    started = now()
    description, adopted = chosen.create(name, config_path, config["cluster"]["suppress_validators"])
    on_progress(f"cluster {name}: {'adopted, it exists already' if adopted else 'creating'} ({chosen.name})")
    description = chosen.wait_ready(
        name,
        timeout_s=60 * remote_cfg["create_timeout_minutes"],
        poll_s=remote_cfg["poll_seconds"],
        on_progress=on_progress,
    )
    head = chosen.head_host(description)
    alarm = ""
    if budgets is not None and account:
        tag = (config["costs"]["tag_key"], name)
        limit = config["budget"]["max_usd"]
        alarm = budget_alarm(budgets, account, name, tag, limit, config["budget"]["alarm_emails"])
        on_progress(f"AWS Budgets budget {name}: {alarm} ({limit} USD a month over tag {tag[0]}={name})")
    return {
        "cluster": name,
        "provider": chosen.name,
        "region": config["cluster"]["region"],
        "adopted": adopted,
        "status": description.get("clusterStatus", ""),
        "head_node": head,
        "head_node_instance": (description.get("headNode") or {}).get("instanceId", ""),
        "budget_alarm": alarm,
        "requested": started,
        "ready": now(),
        # when it began to bill: pcluster's creation time (an adopted cluster's own), else the request
        "created_at": description.get("creationTime") or started,
    }


def provider_of(config: dict):
    """The provider of config sections ``remote`` and ``cluster``."""
    if config["remote"]["provider"] == "existing":
        return Existing(config["remote"]["head_node"]["host"])
    return Pcluster(config["cluster"]["region"])


def teardown(
    config: dict,
    run_ok: bool | None,
    on_progress: Callable[[str], None] = print,
    *,
    after_failure: bool = False,
) -> dict:
    """Delete the cluster or keep it, as ``remote.teardown`` says: the decision and what was done.

    ``run_ok`` is whether the remote run succeeded (None: it never ended).
    ``always`` deletes in any case, ``on-success`` only after a successful
    run, ``never`` not at all. Retained shared storage is never deleted.
    """
    name, remote_cfg = config["cluster"]["name"], config["remote"]
    policy = remote_cfg["teardown"]
    delete = policy == "always" or (policy == "on-success" and run_ok and not after_failure)
    record = {"cluster": name, "policy": policy, "run_ok": run_ok, "when": now()}
    if not delete:
        why = "teardown: never" if policy == "never" else "teardown: on-success, and the run did not succeed"
        on_progress(
            f"cluster {name} is kept running ({why}); it bills until you delete it:"
            f" snakemake --profile aws {cluster_dir(config)}/deleted.json"
        )
        return record | {"action": "kept"}
    provider = provider_of(config)
    retained = provider.storage(name)
    mounted = config["cluster"]["storage_id"]  # storage of an earlier cluster, mounted by this one
    if isinstance(provider, Pcluster) and mounted and mounted not in {r["id"] for r in retained}:
        retained.append({"id": mounted, "kind": config["cluster"]["storage_type"]})
    action = provider.delete(
        name,
        timeout_s=60 * remote_cfg["delete_timeout_minutes"],
        poll_s=remote_cfg["poll_seconds"],
        on_progress=on_progress,
    )
    for item in retained:
        on_progress(
            f"shared storage {item['id']} ({item['kind']}) is retained, with the stack and the results on it,"
            f" and bills until deleted: a later cluster mounts it with cluster.storage_id={item['id']};"
            f" `snakemake --profile aws results/storage/{item['id']}/deleted.json` deletes it"
        )
    return record | {"action": action, "retained_storage": retained, "deleted_at": now()}


# written before a cluster is asked for, removed once it is gone: a failure in
# between (even during creation) still finds the cluster to tear down
REQUESTED = ".requested"


def lifetime_hours(created_at: str, deleted_at: str) -> float:
    """Hours between two ISO 8601 times (pcluster's or this module's)."""
    start = datetime.fromisoformat(created_at.replace("Z", "+00:00"))
    end = datetime.fromisoformat(deleted_at.replace("Z", "+00:00"))
    return max(0.0, (end - start).total_seconds() / 3600.0)


def forget_cluster(config: dict, teardown_record: dict) -> None:
    """Once the cluster is gone, drop the records that describe it as live, so a rerun starts afresh."""
    if teardown_record["action"] not in ("deleted", "absent"):
        return
    folder = Path(cluster_dir(config))
    for name in (REQUESTED, "created.json", "synced.json"):
        (folder / name).unlink(missing_ok=True)
