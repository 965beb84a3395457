"""Publishing: the embedded default's bundle is enough for a stranger to rerun it, the rerun
reproduces its science byte for byte, and no credential of the user's reaches anything it writes.

``demo_run`` (``make demo``, conftest) ran with fake AWS credentials in its
environment and an SSH key's path in ``config/config.yaml``; the control
plane's run against the test cluster is searched the same way in
test_multihost.py.
"""

from __future__ import annotations

import json
import re
import tarfile

import pytest
from conftest import find_secrets, run_in

pytestmark = pytest.mark.workflow

BUNDLE = "results/provenance/lsst-on-aws-bundle.tar.gz"


def bundle_texts(workdir, *names: str) -> dict[str, str]:
    with tarfile.open(workdir / BUNDLE) as tar:
        return {name: tar.extractfile(name).read().decode() for name in names}


def checksums(text: str) -> dict[str, str]:
    """path -> SHA-256 of a ``sha256sum`` file."""
    return {path: digest for digest, path in (line.split("  ", 1) for line in text.splitlines())}


def test_every_output_is_science_or_a_record_that_says_why_it_changes(demo_run):
    read = bundle_texts(demo_run, "science.sha256", "records.tsv", "outputs.sha256", "MANIFEST.json")
    science, outputs = checksums(read["science.sha256"]), checksums(read["outputs.sha256"])
    visits = [f"results/visits/{visit}/" for visit in range(1, 7)]
    expected = {v + name for v in visits for name in ("sources.parquet", "summary.json", "preview.fits")}
    expected |= {"results/summary/truth_check.csv", "results/summary/cutouts.png"}
    assert set(science) == expected
    records = dict(line.split("\t") for line in read["records.tsv"].splitlines()[1:])
    # each output is one or the other, with its reason; none unclassified
    assert set(records) | set(science) == set(outputs) and not set(records) & set(science)
    assert not [path for path, why in records.items() if why.startswith("unclassified")]
    assert "times" in records["results/costs/timings.csv"]
    assert "dataset ids" in records["results/visits/1/quanta.json"]
    assert json.loads(read["MANIFEST.json"])["n_science"] == len(expected)


def test_a_stranger_reruns_the_bundle_and_reproduces_its_science(demo_run, tmp_path):
    """The bundle unpacked in an empty folder (no git tree, nothing of the run's) and the command of
    its REPRODUCE.md run as written: it sets up the environment, reruns the embedded default and
    checks ``science.sha256``. The rerun is a second clean run of the embedded default, so this is
    also the check that two clean runs give the same science checksums; their run records differ.
    Where the emulation stops: the package registry is this machine's uv cache and package index,
    which every run of the tests shares, where a reader's machine would reach PyPI.
    """
    with tarfile.open(demo_run / BUNDLE) as tar:
        tar.extractall(tmp_path, filter="data")
    reproduce = (tmp_path / "REPRODUCE.md").read_text()
    command = re.search(r"```bash\n(.+?)\n```", reproduce, re.DOTALL).group(1)
    # a home of the reader's own: `make env` links its profiles there, not over the tests' links
    home = {"HOME": str(tmp_path / "home")}
    result = run_in(tmp_path, ["bash", "-euo", "pipefail", "-c", command], timeout=1800, env=home)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    science = checksums((tmp_path / "science.sha256").read_text())
    assert result.stdout.count(": OK\n") == len(science) > 0
    # the rerun's own bundle: the same science, other run records, and whose run it repeated
    rerun = tmp_path / "source"
    again = bundle_texts(rerun, "science.sha256", "outputs.sha256", "MANIFEST.json")
    assert checksums(again["science.sha256"]) == science
    first = checksums((tmp_path / "outputs.sha256").read_text())
    changed = {
        path for path, digest in checksums(again["outputs.sha256"]).items() if first.get(path) != digest
    }
    assert "results/costs/timings.csv" in changed and not changed & set(science)
    workflow = json.loads(again["MANIFEST.json"])["workflow"]
    assert workflow["recorded"] == "in the bundle of a run of unknown"  # the demo's copy is not a git tree


def test_no_planted_secret_reaches_a_log_report_or_bundle(demo_run):
    """Every file the run wrote (results, logs, Snakemake's records, what ``make demo`` printed, the
    stack's records) and every member of its bundle and report archives: none holds the planted
    credentials, the SSH key's path or its body. Only the user's own config file names the key.
    """
    secrets = json.loads((demo_run.parent / "planted-secrets.json").read_text())
    places = [demo_run / name for name in ("results", "logs", ".snakemake", "resources")]
    places.append(demo_run.parent / "make-demo.out")
    count, found = find_secrets(places, secrets, skip=("/venv/", "/.cache/"))
    assert count > 500
    assert found == {}
    assert secrets[3] in (demo_run / "config/config.yaml").read_text()  # it was planted
