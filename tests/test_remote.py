"""The control plane's ssh and rsync to a head node, against a real sshd on 127.0.0.1.

The head node is this machine: Debian's OpenSSH server as root on
127.0.0.1:2222 with throwaway keys, started by ``tests/services/sshd.sh``
(``make services``). Nothing is mocked: sync, a detached run that outlives its
connection, adoption of a live run, following it, fetching its products, and
an unreachable node all go through real ssh and rsync.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
from conftest import SSHD_DIR, SSHD_PORT

from lsst_on_aws.cloud import remote

pytestmark = pytest.mark.sshd

SSHD_SCRIPT = Path(__file__).parent / "services/sshd.sh"


@pytest.fixture(scope="module")
def node() -> remote.HeadNode:
    """The stand-in head node; the test fails (never skips) when it is not up."""
    up = subprocess.run([str(SSHD_SCRIPT), "status"], capture_output=True, check=False)
    assert up.returncode == 0, "the stand-in head node is down: run tests/services/sshd.sh start"
    return remote.HeadNode(
        "127.0.0.1",
        user="root",
        port=SSHD_PORT,
        identity_file=str(SSHD_DIR / "id_ed25519"),
        options=(f"UserKnownHostsFile={SSHD_DIR / 'known_hosts'}", "StrictHostKeyChecking=yes"),
    )


def test_sync_sends_the_workflow_and_keeps_the_runs_products(node, tmp_path):
    local, far = tmp_path / "local", tmp_path / "head/work"
    (local / "rules").mkdir(parents=True)
    (local / "Snakefile").write_text("rule all:\n")
    (local / "rules/a.smk").write_text("# a\n")
    (local / "results").mkdir()
    (local / "results/local-only.txt").write_text("never sent\n")
    # the run's products, as the sync rule's parameter names them
    remote.sync(node, str(local), str(far), excludes=["results/"])
    assert (far / "Snakefile").read_text() == "rule all:\n"
    assert (far / "rules/a.smk").exists()
    assert not (far / "results").exists()
    # the head node's own products survive a second sync; files removed locally go
    (far / "results").mkdir()
    (far / "results/product.txt").write_text("made on the head node\n")
    (local / "rules/a.smk").unlink()
    remote.sync(node, str(local), str(far), excludes=["results/"])
    assert not (far / "rules/a.smk").exists()
    assert (far / "results/product.txt").exists()


def test_detached_run_is_followed_adopted_and_fetched(node, tmp_path):
    far = tmp_path / "head/work"
    far.mkdir(parents=True)
    (far / "go").write_text("")
    command = (
        "mkdir -p results/summary logs"
        ' && for i in 1 2 3; do echo "$i of 3 steps ($((i * 33))%) done"; sleep 1; done'
        " && while [ -e go ]; do sleep 0.2; done"
        " && echo done > results/summary/visits.csv && echo log > logs/run.log"
    )
    started = remote.start_detached(node, str(far), command)
    assert started["state"] == "running" and not started["adopted"]
    # a second start while the run is alive adopts it: never two runs in one directory
    again = remote.start_detached(node, str(far), "echo second > second.txt")
    assert again["adopted"] and again["pid"] == started["pid"]
    (far / "go").unlink()
    seen = []
    final = remote.follow(node, str(far), poll_s=0.3, on_progress=seen.append)
    assert final["state"] == "finished" and final["rc"] == 0
    assert seen[-1] == "remote run: 3 of 3 steps (99%) done"
    assert not (far / "second.txt").exists()
    local = tmp_path / "local"
    local.mkdir()
    got = remote.fetch(node, str(far), ["results/summary", "logs", "results/missing"], str(local))
    assert got == ["results/summary", "logs"]
    assert (local / "results/summary/visits.csv").read_text() == "done\n"
    assert (local / "logs/run.log").exists()


def test_failed_run_gives_its_exit_status(node, tmp_path):
    far = tmp_path / "head/work"
    remote.start_detached(node, str(far), "echo 'error: something broke' >&2; exit 3")
    final = remote.follow(node, str(far), poll_s=0.3, on_progress=lambda _: None)
    assert final["rc"] == 3
    assert "error: something broke" in final["log_tail"]


def test_run_survives_its_connection(node, tmp_path):
    """The ssh client that started the run is gone; the run goes on to its end."""
    far = tmp_path / "head/work"
    remote.start_detached(node, str(far), "sleep 2; echo survived > out.txt")
    # no ssh process of ours is left holding the run
    mine = subprocess.run(["pgrep", "-f", f"ssh .*{node.port}.*{far}"], capture_output=True, text=True)
    assert mine.stdout == ""
    final = remote.follow(node, str(far), poll_s=0.5, on_progress=lambda _: None)
    assert final["rc"] == 0 and (far / "out.txt").read_text() == "survived\n"


def test_unreachable_head_node_is_one_clear_error(node):
    closed = remote.HeadNode("127.0.0.1", user="root", port=1, identity_file=node.identity_file)
    with pytest.raises(remote.RemoteError, match=r"cannot reach the head node root@127.0.0.1:1: .*refused"):
        remote.run(closed, "true")
    with pytest.raises(remote.RemoteError, match="cannot reach the head node"):
        remote.sync(closed, "/tmp", "/tmp/nowhere", excludes=[])
    with pytest.raises(remote.RemoteError, match="cannot reach the head node"):
        remote.follow(closed, "/tmp/nowhere", poll_s=0.01, on_progress=lambda _: None, reconnect_s=0.05)


def test_status_of_a_directory_without_a_run(node, tmp_path):
    assert remote.status(node, str(tmp_path / "never"))["state"] == "absent"
