"""Bad input through the real ``snakemake`` command: one sentence, no traceback, no job run.

Each case is a dry run in a copy of the workflow, so nothing in the
repository is touched; the point is what a user sees on the terminal.
"""

from __future__ import annotations

import pytest
from conftest import copy_workflow, snakemake


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    return copy_workflow(tmp_path_factory.mktemp("bad-input") / "workflow")


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ["--config", "processing={'detection_treshold': 4}"],
            "Configuration error: config: unknown key processing.detection_treshold",
        ),
        (
            ["--config", "processing={'detection_threshold': 'high'}"],
            "Configuration error: config: key processing.detection_threshold: 'high' is not of type 'number'",
        ),
        (
            ["--config", "process_visits=[1, 99]"],
            "Configuration error: visit 99 in process_visits is not in the visit table",
        ),
        (["--config", "process_visits=[]"], "Configuration error: there are no visits to process"),
        (
            ["--config", "data={'source': 'directory', 'path': '/nonexistent/raws'}"],
            "Configuration error: data directory /nonexistent/raws does not exist (config key data.path)",
        ),
    ],
)
def test_bad_config_fails_before_any_job(workdir, args, message):
    result = snakemake(workdir, "--dry-run", *args, timeout=300)
    output = result.stdout + result.stderr
    assert result.returncode != 0
    assert message in output
    assert "Traceback" not in output
    assert "Building DAG" not in output
    assert not (workdir / "results").exists()


def test_command_line_numbers_are_accepted(workdir):
    result = snakemake(
        workdir, "--dry-run", "--config", "processing={'detection_threshold': 6}", "process_visits=[1, 2]"
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert "results/batches/1-1/batch.json" in result.stdout
    assert "results/batches/3-3/batch.json" not in result.stdout
