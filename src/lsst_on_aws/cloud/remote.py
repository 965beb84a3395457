"""The control plane's hands on a cluster's head node: ssh and rsync.

The AWS profile drives the data plane from the user's own machine: it syncs
the workflow to the head node, starts ``snakemake --profile slurm`` there
detached (so the run survives a closed laptop or a dropped connection),
follows its progress, and fetches the results. Everything here is plain
OpenSSH and rsync, so it works the same on a ParallelCluster head node, a
university login node, and the tests' stand-in (``tests/services/sshd.sh``,
sshd on 127.0.0.1).

A detached run lives in ``<remote dir>/.lsst-on-aws/``: ``run.sh`` (the
command), ``run.pid`` (its process group leader), ``run.log`` (its output),
``run.id`` (when it was started) and, once it has ended, ``run.rc`` (its exit
status). Starting a run while one is alive adopts the live run instead of
starting a second: two Snakemake instances must never share a directory.
"""

from __future__ import annotations

import re
import shlex
import subprocess
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime

STATE_DIR = ".lsst-on-aws"
# the resolved configuration the control plane sends for the run there
RUN_CONFIG = f"{STATE_DIR}/config.yaml"
# what the control plane leaves once it has decided the cluster's fate (the watchdog's signal)
SETTLED = f"{STATE_DIR}/settled"
_PROGRESS = re.compile(r"^(\d+) of (\d+) steps \((\d+%)\) done", re.M)


class RemoteError(RuntimeError):
    """The head node could not be reached, or a command on it failed."""


@dataclass(frozen=True)
class HeadNode:
    """How to reach a head node over SSH."""

    host: str
    user: str = "ec2-user"
    port: int = 22
    identity_file: str = ""
    # extra `ssh -o` options, e.g. ("UserKnownHostsFile=...", "StrictHostKeyChecking=yes")
    options: tuple[str, ...] = field(default_factory=tuple)

    @property
    def address(self) -> str:
        return f"{self.user}@{self.host}"

    def ssh_command(self) -> list[str]:
        """``ssh`` with this node's port, key and options: never prompts, gives up after 15 s."""
        cmd = ["ssh", "-p", str(self.port), "-o", "BatchMode=yes", "-o", "ConnectTimeout=15"]
        cmd += ["-o", "ServerAliveInterval=15", "-o", "ServerAliveCountMax=4"]
        if self.identity_file:
            cmd += ["-i", self.identity_file, "-o", "IdentitiesOnly=yes"]
        for option in self.options:
            cmd += ["-o", option]
        return cmd

    def describe(self) -> str:
        return f"{self.address}:{self.port}"


def run(
    node: HeadNode, command: str, *, check: bool = True, timeout: float = 300
) -> subprocess.CompletedProcess:
    """Run a shell command on the head node; its completed process (text output).

    Raises `RemoteError` when the node cannot be reached (ssh's own status
    255), and, with ``check``, when the command fails.
    """
    try:
        done = subprocess.run(
            [*node.ssh_command(), node.address, command],
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
    except subprocess.TimeoutExpired as exc:
        raise RemoteError(f"the head node {node.describe()} did not answer within {timeout:.0f} s") from exc
    if done.returncode == 255:
        reason = done.stderr.strip().splitlines()[-1] if done.stderr.strip() else "no answer"
        raise RemoteError(f"cannot reach the head node {node.describe()}: {reason}")
    if check and done.returncode != 0:
        raise RemoteError(
            f"on {node.describe()}, `{command}` failed (exit status {done.returncode}): "
            + (done.stderr.strip() or done.stdout.strip())[-2000:]
        )
    return done


def _rsync(node: HeadNode, args: list[str], timeout: float) -> None:
    ssh = shlex.join(node.ssh_command())
    cmd = ["rsync", "-a", "--partial", "-e", ssh, *args]
    try:
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, check=False)
    except subprocess.TimeoutExpired as exc:
        raise RemoteError(f"rsync with {node.describe()} did not finish within {timeout:.0f} s") from exc
    if done.returncode != 0:
        if done.returncode == 255 or "connection unexpectedly closed" in done.stderr:
            raise RemoteError(f"cannot reach the head node {node.describe()}: {done.stderr.strip()[-500:]}")
        failure = f"exit status {done.returncode}: {done.stderr.strip()[-1000:]}"
        raise RemoteError(f"rsync with {node.describe()} failed ({failure})")


def sync(
    node: HeadNode, local_dir: str, remote_dir: str, *, excludes: Iterable[str], timeout: float = 1800
) -> None:
    """Make ``remote_dir`` on the head node hold the workflow of ``local_dir``.

    Files the local side no longer has are deleted there, except the run's
    own products, ``excludes`` (rsync patterns: the workflow's results, logs,
    stack, Snakemake's state) and the detached run's `STATE_DIR`, which are
    never sent and never deleted.
    """
    run(node, f"mkdir -p {shlex.quote(remote_dir)}")
    excludes = [f"--exclude={pattern}" for pattern in [*excludes, f"{STATE_DIR}/"]]
    source, target = f"{local_dir.rstrip('/')}/", f"{node.address}:{remote_dir}/"
    _rsync(node, ["--delete", *excludes, source, target], timeout)


def copy_to(node: HeadNode, local_file: str, remote_path: str, *, timeout: float = 300) -> None:
    """Copy one file to ``remote_path`` on the head node."""
    _rsync(node, [local_file, f"{node.address}:{remote_path}"], timeout)


def fetch(
    node: HeadNode, remote_dir: str, paths: Iterable[str], local_dir: str, *, timeout: float = 3600
) -> list[str]:
    """Copy ``paths`` (relative to ``remote_dir``) from the head node into ``local_dir``.

    Returns the paths that existed there (the others are left out).
    """
    present = run(
        node,
        f"cd {shlex.quote(remote_dir)} && for p in {' '.join(shlex.quote(p) for p in paths)}; do"
        ' [ -e "$p" ] && echo "$p"; done; true',
    ).stdout.split()
    if present:
        # -R keeps each path's folders below remote_dir; "/./" marks where they start
        sources = [f"{node.address}:{remote_dir.rstrip('/')}/./{p}" for p in present]
        _rsync(node, ["-R", *sources, f"{local_dir.rstrip('/')}/"], timeout)
    return present


def status(node: HeadNode, remote_dir: str) -> dict:
    """The detached run: its state, exit status, process, id, last progress line and log tail.

    The state is "running", "finished" (``rc`` is its exit status), "lost"
    (neither alive nor ended: killed with its machine) or "absent" (never
    started there).
    """
    script = f"""
cd {shlex.quote(remote_dir)}/{STATE_DIR} 2>/dev/null || {{ echo absent; exit 0; }}
pid=$(cat run.pid 2>/dev/null || true)
if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then echo running; else echo ended; fi
echo "rc=$(cat run.rc 2>/dev/null || true)"
echo "pid=$pid"
echo "id=$(cat run.id 2>/dev/null || true)"
tail -c 20000 run.log 2>/dev/null || true
"""
    lines = run(node, script).stdout.split("\n", 4)
    if lines[0] == "absent":
        return {"state": "absent", "rc": None, "pid": "", "id": "", "progress": None, "log_tail": ""}
    rc, pid, run_id = (line.partition("=")[2] for line in lines[1:4])
    log = lines[4] if len(lines) > 4 else ""
    state_name = "running" if lines[0] == "running" else "finished" if rc else "lost"
    steps = _PROGRESS.findall(log)
    progress = f"{steps[-1][0]} of {steps[-1][1]} steps ({steps[-1][2]}) done" if steps else None
    return {
        "state": state_name,
        "rc": int(rc) if rc and state_name == "finished" else None,
        "pid": pid,
        "id": run_id,
        "progress": progress,
        "log_tail": log,
    }


def start_detached(node: HeadNode, remote_dir: str, command: str, *, watchdog: str = "") -> dict:
    """Start ``command`` in ``remote_dir`` on the head node, detached; adopt a run that is still alive.

    The command runs under ``setsid nohup``: it survives the end of this
    connection and of the control plane. ``watchdog``, a bash script, starts
    detached once the command has ended (``watchdog.sh``, its output in
    ``watchdog.log``). Returns the run's `status` plus ``adopted`` (True when
    a live run was found instead of starting one).
    """
    current = status(node, remote_dir)
    if current["state"] == "running":
        return current | {"adopted": True}
    state = f"{remote_dir.rstrip('/')}/{STATE_DIR}"
    run_id = datetime.now(UTC).isoformat(timespec="seconds")
    script = (
        "#!/usr/bin/env bash\n"
        f"# written by lsst_on_aws.cloud.remote at {run_id}\n"
        f"cd {shlex.quote(remote_dir)} || exit 1\n"
        f"(\n{command}\n)\n"  # a subshell: an `exit` in the command still records its status
        f"echo $? > {STATE_DIR}/run.rc.tmp && mv {STATE_DIR}/run.rc.tmp {STATE_DIR}/run.rc\n"
        f"if [ -s {STATE_DIR}/watchdog.sh ]; then\n"
        f"  setsid nohup bash {STATE_DIR}/watchdog.sh > {STATE_DIR}/watchdog.log 2>&1 < /dev/null &\n"
        "fi\n"
    )
    q = shlex.quote
    launch = (
        f"mkdir -p {q(state)} && cd {q(state)} && rm -f run.rc run.rc.tmp && printf %s {q(script)} > run.sh"
        f" && printf %s {q(watchdog)} > watchdog.sh"
        f" && echo {q(run_id)} > run.id || exit 1\n"
        # every stream away from the connection, its own session: ssh returns, the run stays
        "setsid nohup bash run.sh > run.log 2>&1 < /dev/null & echo $! > run.pid"
    )
    run(node, launch)
    return status(node, remote_dir) | {"adopted": False, "id": run_id}


def mark_settled(node: HeadNode, remote_dir: str) -> None:
    """Note on the head node that the control plane has decided the cluster's fate (`SETTLED`)."""
    run(node, f"mkdir -p {shlex.quote(remote_dir)}/{STATE_DIR} && touch {shlex.quote(remote_dir)}/{SETTLED}")


def follow(
    node: HeadNode,
    remote_dir: str,
    *,
    poll_s: float = 30,
    timeout_s: float = 86400,
    on_progress: Callable[[str], None] = print,
    reconnect_s: float = 600,
) -> dict:
    """Wait for the detached run to end, reporting each new progress line; its final `status`.

    A dropped connection is retried, without touching the run, for up to
    ``reconnect_s`` since the last answer. Raises `RemoteError` when the run
    is lost, the node stays unreachable that long, or ``timeout_s`` passes
    (the run goes on).
    """
    deadline = time.monotonic() + timeout_s
    last, failures, answered = None, 0, time.monotonic()
    while True:
        try:
            current = status(node, remote_dir)
            failures, answered = 0, time.monotonic()
        except RemoteError as exc:
            failures += 1
            if time.monotonic() - answered > reconnect_s:
                tries = f"{failures} tries in {time.monotonic() - answered:.0f} s"
                raise RemoteError(f"{exc} ({tries}); the run may still be going on") from exc
            on_progress(f"lost contact with {node.describe()} ({exc}); trying again")
            current = None
        if current is not None:
            if current["progress"] and current["progress"] != last:
                last = current["progress"]
                on_progress(f"remote run: {last}")
            if current["state"] in ("finished", "lost", "absent"):
                if current["state"] != "finished":
                    raise RemoteError(
                        f"the run on {node.describe()} in {remote_dir} is {current['state']}: it has no exit"
                        " status (the head node restarted, or the run was never started)"
                    )
                return current
        if time.monotonic() > deadline:
            raise RemoteError(
                f"the run on {node.describe()} had not ended after {timeout_s:.0f} s; it goes on: rerun to"
                " follow it again"
            )
        time.sleep(poll_s)
