"""A cluster's life as the control plane drives it, one function a step: create (or adopt) and
wait, reach its head node, tear it down as ``remote.teardown`` says.
"""

from __future__ import annotations

import fcntl
import json
import os
from collections.abc import Callable
from datetime import datetime
from pathlib import Path

from lsst_on_aws.cloud import remote
from lsst_on_aws.cloud.budgets import budget_alarm, budget_name
from lsst_on_aws.cloud.providers import Pcluster, now, provider_of
from lsst_on_aws.cloud.remote import HeadNode


def node_from_record(config: dict, record: dict, known_hosts: str) -> HeadNode:
    """The head node a creation record names, with the user, port and key from config.

    Its host keys are held in config's ``remote.head_node.known_hosts``, else in ``known_hosts``
    (the workflow's file beside the cluster's records).
    """
    head = config["remote"]["head_node"]
    known_hosts = head["known_hosts"] or known_hosts
    return HeadNode(
        record["head_node"],
        user=head["user"],
        port=int(head["port"]),
        identity_file=os.path.expanduser(head["ssh_key_file"]) if head["ssh_key_file"] else "",
        # a new cluster's head node has a new key: trust the first one it shows, then hold it to that
        options=(f"UserKnownHostsFile={known_hosts}", "StrictHostKeyChecking=accept-new"),
    )


def node_from_created(config: dict, created: str, known_hosts: str) -> HeadNode:
    """The head node of the creation record in the file ``created`` (:func:`node_from_record`)."""
    return node_from_record(config, json.loads(Path(created).read_text()), known_hosts)


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
        budget = budget_name(name)
        alarm = budget_alarm(budgets, account, budget, tag, limit, config["budget"]["alarm_emails"])
        on_progress(f"AWS Budgets budget {budget}: {alarm} ({limit} USD a month over tag {tag[0]}={name})")
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


def teardown(
    config: dict,
    run_ok: bool | None,
    on_progress: Callable[[str], None] = print,
    *,
    targets: dict[str, str],
    after_failure: bool = False,
    abandoned: bool = False,
) -> dict:
    """Delete the cluster or keep it, as ``remote.teardown`` says: the decision and what was done.

    ``run_ok`` is whether the remote run succeeded (None: it never ended).
    ``always`` deletes in any case, ``on-success`` only after a successful
    run, ``never`` not at all. Retained shared storage is never deleted.
    ``targets`` are the workflow's targets that delete what is left, named to
    the user: ``delete_cluster`` (a path) and ``delete_storage`` (with ``{id}``).
    ``abandoned``: the cluster's own dead man's switch (:mod:`lsst_on_aws.cloud.abandon`) tears
    down a cluster that no control plane came back for, whatever the policy but ``never``.
    """
    name, remote_cfg = config["cluster"]["name"], config["remote"]
    policy = remote_cfg["teardown"]
    delete = policy == "always" or (policy == "on-success" and run_ok and not after_failure)
    delete = delete or (abandoned and policy != "never")
    record = {"cluster": name, "policy": policy, "run_ok": run_ok, "when": now(), "abandoned": abandoned}
    if not delete:
        why = "teardown: never" if policy == "never" else "teardown: on-success, and the run did not succeed"
        on_progress(
            f"cluster {name} is kept running ({why}); it bills until you delete it:"
            f" snakemake --profile aws {targets['delete_cluster']}"
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
            f" `snakemake --profile aws {targets['delete_storage'].format(id=item['id'])}` deletes it"
        )
    return record | {"action": action, "retained_storage": retained, "deleted_at": now()}


def lifetime_hours(created_at: str, deleted_at: str) -> float:
    """Hours between two ISO 8601 times (pcluster's or this module's)."""
    start = datetime.fromisoformat(created_at.replace("Z", "+00:00"))
    end = datetime.fromisoformat(deleted_at.replace("Z", "+00:00"))
    return max(0.0, (end - start).total_seconds() / 3600.0)


def mark_requested(ledger: str) -> None:
    """Note, before a cluster is asked for, that it was: a failure from then on (even during
    creation) still finds the cluster to tear down. ``ledger`` is the workflow's file for it.
    """
    _write_ledger(ledger, now())


def _write_ledger(ledger: str, text: str) -> None:
    Path(ledger).parent.mkdir(parents=True, exist_ok=True)
    Path(ledger).write_text(text + "\n")


def was_requested(ledger: str) -> bool:
    """Whether a cluster was asked for and is not known to be gone (:func:`mark_requested`)."""
    return Path(ledger).exists()


def record_gone(record: dict, ledger: str) -> bool:
    """After a teardown: when the cluster is gone, clear the ledger; whether it is gone."""
    gone = record["action"] in ("deleted", "absent")
    if gone:
        Path(ledger).unlink(missing_ok=True)
    return gone


def mark_started(ledger: str, run_id: str) -> None:
    """Note that a run was started (or adopted) on the cluster: from then on, a failure of this
    machine's control plane must find out whether the run goes on before any teardown.
    """
    _write_ledger(ledger, run_id)


def run_goes_on(config: dict, created: str, started: str, known_hosts: str) -> str | None:
    """After a failure of the control plane (Ctrl-C, a lost network, the follow limit): why the
    cluster must stay, or None when nothing of a run would be lost.

    The cluster stays while the run that was started on it (``started``, the ledger of
    :func:`mark_started`) is still running there, and when its head node cannot be reached to
    tell: a laptop that sleeps or loses its network never deletes a healthy run. A run that has
    ended, or was never started, leaves the decision to ``remote.teardown``.
    """
    if not (Path(started).exists() and Path(created).exists()):
        return None
    node = node_from_created(config, created, known_hosts)
    directory = config["remote"]["directory"]
    try:
        state = remote.status(node, directory)["state"]
    except remote.RemoteError as err:
        return f"its head node cannot be reached to see whether the run goes on ({err})"
    if state == "running":
        return f"the run on it goes on ({node.describe()}:{directory})"
    return None


# the control plane's own lock, held for its process's life (the kernel lets it go when the
# process dies, however it dies)
_held: list = []


def release_stale_locks(own_lock: str, snakemake_locks: str) -> list[str]:
    """Take the control plane's own lock, ``own_lock``; when no other control plane holds it, the
    locks Snakemake left in ``snakemake_locks`` are those of one that was killed (a laptop that
    died, SIGKILL): remove them, so that rerunning the same command goes on. The paths removed.

    Snakemake's own locks carry no process id and outlive a killed Snakemake, which then refuses
    every rerun until ``--unlock``. This lock is an ``flock``: it cannot outlive its holder.
    When another control plane holds it (one is running in this folder), nothing is touched and
    Snakemake's locking refuses the second run as usual.
    """
    Path(own_lock).parent.mkdir(parents=True, exist_ok=True)
    handle = open(own_lock, "a")  # noqa: SIM115 - held open until the process ends
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.close()
        return []
    _held.append(handle)
    stale = sorted(Path(snakemake_locks).glob("*.lock")) if Path(snakemake_locks).is_dir() else []
    for lock in stale:
        lock.unlink(missing_ok=True)
    return [str(lock) for lock in stale]
