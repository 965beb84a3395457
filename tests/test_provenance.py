"""The provenance helpers on their own: checksums, file selection and the git state, with real git."""

from __future__ import annotations

import hashlib
import json
import subprocess

from lsst_on_aws import provenance


def test_sha256_and_files_under_leave_out_databases_and_excluded(tmp_path):
    (tmp_path / "a").mkdir()
    (tmp_path / "a/x.fits").write_bytes(b"pixels")
    (tmp_path / "a/gen3.sqlite3").write_bytes(b"live database")
    (tmp_path / "a/skip").mkdir()
    (tmp_path / "a/skip/y.txt").write_text("not me")
    (tmp_path / "b.txt").write_text("single file")
    files = provenance.files_under([tmp_path / "a", tmp_path / "b.txt"], exclude=[tmp_path / "a/skip"])
    assert files == [tmp_path / "a/x.fits", tmp_path / "b.txt"]
    assert provenance.sha256(tmp_path / "a/x.fits") == hashlib.sha256(b"pixels").hexdigest()


def test_git_state_names_the_commit_and_uncommitted_changes(tmp_path):
    def git(*args):
        subprocess.run(["git", "-C", str(tmp_path), *args], check=True, capture_output=True)

    git("init", "-q")
    (tmp_path / "Snakefile").write_text("rule all:\n")
    git("add", "Snakefile")
    git("-c", "user.name=t", "-c", "user.email=t@example.org", "commit", "-q", "-m", "first")
    head = subprocess.run(
        ["git", "-C", str(tmp_path), "rev-parse", "HEAD"], capture_output=True, text=True, check=True
    ).stdout.strip()
    assert provenance.git_state(tmp_path) == {"commit": head, "dirty": False}
    (tmp_path / "Snakefile").write_text("rule all:\n    input: []\n")
    assert provenance.git_state(tmp_path) == {"commit": head, "dirty": True}
    assert provenance.git_state(tmp_path / "nowhere") == {"commit": "unknown", "dirty": None}


def test_synced_copy_names_the_commit_the_control_plane_recorded(tmp_path):
    """A head node's copy has no .git: the record sent with it names the commit; a checkout's git wins."""
    record = tmp_path / "copy/.lsst-on-aws/source.json"
    assert provenance.workflow_source(tmp_path / "copy", record) == {"commit": "unknown", "dirty": None}
    record.parent.mkdir(parents=True)
    record.write_text(json.dumps({"commit": "0123abcd", "dirty": True}))
    state = provenance.workflow_source(tmp_path / "copy", record)
    assert (state["commit"], state["dirty"]) == ("0123abcd", True)
    assert state["recorded"] == "at sync, by the control plane"
