"""The provenance helpers on their own: checksums, file selection and the git state, with real git."""

from __future__ import annotations

import hashlib
import json
import subprocess
import tarfile
from pathlib import Path

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


def test_split_outputs_names_science_and_says_why_each_record_changes():
    outputs = [
        Path(p) for p in ("results/visits/1/sources.parquet", "results/visits/1/job.json", "results/x.txt")
    ]
    records = {"results/visits/*/job.json": "the job's times", "results/visits/*": "never reached"}
    science, why = provenance.split_outputs(outputs, ["results/visits/1/sources.parquet"], records)
    assert science == [Path("results/visits/1/sources.parquet")]
    assert why == {
        Path("results/visits/1/job.json"): "the job's times",
        Path("results/x.txt"): provenance.UNCLASSIFIED,
    }
    assert provenance.records_text(why).splitlines()[1] == "results/visits/1/job.json\tthe job's times"


def test_secrets_are_redacted_from_config_and_yaml_text_and_empty_values_kept():
    config = {
        "remote": {"head_node": {"ssh_key_file": "/home/me/.ssh/k.pem", "host": "h"}},
        "x": [{"ssh_key_file": ""}],
    }
    assert provenance.redact(config) == {
        "remote": {"head_node": {"ssh_key_file": provenance.REDACTED, "host": "h"}},
        "x": [{"ssh_key_file": ""}],
    }
    text = (
        'head_node:\n  ssh_key_file: ~/.ssh/k.pem  # my key\n  other: ssh_key_file\nb:\n  ssh_key_file: ""\n'
    )
    assert provenance.redact_yaml_text(text) == (
        'head_node:\n  ssh_key_file: "<redacted>"  # my key\n  other: ssh_key_file\nb:\n  ssh_key_file: ""\n'
    )
    # a key whose value is a block on the next lines (the config schema's) holds no secret
    schema = "ssh_key_file:\n  description: >-\n    Private key\n  type: string\n"
    assert provenance.redact_yaml_text(schema) == schema


def test_bundle_carries_the_source_redacted_and_says_how_to_rerun(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "config").mkdir()
    (tmp_path / "Snakefile").write_text("rule all:\n")
    (tmp_path / "config/config.yaml").write_text("remote:\n  ssh_key_file: /secret/path/key.pem\n")
    (tmp_path / "results").mkdir()
    (tmp_path / "results/a.csv").write_text("1\n")
    source = {name: Path(name) for name in ("Snakefile", "config/config.yaml")}
    workflow = {"commit": "0123abcd", "dirty": False}
    manifest = provenance.write_bundle(
        "bundle.tar.gz",
        config={"data": {"source": "simulated"}, "remote": {"ssh_key_file": "/secret/path/key.pem"}},
        members={},
        source=source,
        inputs=[],
        outputs=[Path("results/a.csv")],
        science=[Path("results/a.csv")],
        records={},
        workflow=workflow,
        source_record=".lsst-on-aws/source.json",
    )
    assert manifest["redacted"] == ["source/config/config.yaml"]
    with tarfile.open("bundle.tar.gz") as tar:
        read = {name: tar.extractfile(name).read().decode() for name in tar.getnames()}
    assert "/secret/path" not in "".join(read.values())
    assert read["source/Snakefile"] == "rule all:\n"
    assert json.loads(read["source/.lsst-on-aws/source.json"])["commit"] == "0123abcd"
    assert read["science.sha256"].endswith("  results/a.csv\n")
    assert "cd source && make env && .venv/bin/snakemake --configfile ../config.yaml" in read["REPRODUCE.md"]
    assert "redacted from `config/config.yaml`" in read["REPRODUCE.md"]
    # the unpacked source names its commit without git: the rerun's own bundle says whose run it repeats
    (tmp_path / "unpacked").mkdir()
    with tarfile.open("bundle.tar.gz") as tar:
        tar.extractall(tmp_path / "unpacked", filter="data")
    state = provenance.workflow_source(
        tmp_path / "unpacked/source", tmp_path / "unpacked/source/.lsst-on-aws/source.json"
    )
    assert (state["commit"], state["dirty"]) == ("0123abcd", False)
    assert state["recorded"] == "in the bundle of a run of 0123abcd"
