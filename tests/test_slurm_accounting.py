"""Parsing ``sacct`` and ``squeue`` records; joining accounting to the visit table.

The sacct text is what the local test Slurm printed for an array task
(``26_1``, raw id 28) and a plain job (raw id 26) with two steps.
"""

from __future__ import annotations

import json
import math

import pandas as pd
import pytest

from lsst_on_aws.accounting import slurm
from lsst_on_aws.summary import add_job_accounting, read_jobs

SACCT = """\
28|26_1|vm|COMPLETED|29|00:27.560||2026-11-25T19:50:35|2026-11-25T19:51:04
28.batch|26_1.batch|vm|COMPLETED|29|00:27.560|736480K|2026-11-25T19:50:35|2026-11-25T19:51:04
26|26_2|vm|CANCELLED by 0|35|01:00:31.688||2026-11-25T19:50:39|2026-11-25T19:51:14
26.batch|26_2.batch|vm|CANCELLED|35|00:08.455|404632K|2026-11-25T19:50:39|2026-11-25T19:51:14
26.0|26_2.0|vm|CANCELLED|24|00:23.232|1.5G|2026-11-25T19:50:47|2026-11-25T19:51:11
"""


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("00:27.560", 27.56), ("01:00:31.688", 3631.688), ("2-01:00:00", 2 * 86400 + 3600), ("", math.nan)],
)
def test_parse_duration(text, seconds):
    assert slurm.parse_duration(text) == pytest.approx(seconds, nan_ok=True)


@pytest.mark.parametrize(
    ("text", "mb"), [("736480K", 719.21875), ("1.5G", 1536.0), ("2048", 2048 / 1024**2), ("", math.nan)]
)
def test_parse_memory(text, mb):
    assert slurm.parse_memory_mb(text) == pytest.approx(mb, nan_ok=True)


def test_parse_sacct_one_row_per_job():
    table = slurm.parse_sacct(SACCT).set_index("slurm_job_id")
    assert list(table.index) == ["28", "26"]
    assert table.loc["28", "slurm_job"] == "26_1"
    assert table.loc["28", "slurm_node"] == "vm"
    assert table.loc["28", "slurm_state"] == "COMPLETED"
    assert table.loc["28", "slurm_elapsed_s"] == 29
    assert table.loc["28", "slurm_cpu_s"] == pytest.approx(27.56)
    assert table.loc["28", "slurm_max_rss_mb"] == pytest.approx(719.21875)
    # the allocation's state word, and the largest step's memory
    assert table.loc["26", "slurm_state"] == "CANCELLED"
    assert table.loc["26", "slurm_max_rss_mb"] == pytest.approx(1536.0)


def test_no_job_ids_means_no_sacct_call():
    table = slurm.job_accounting(["", ""], sacct="/nonexistent/sacct")
    assert table.empty
    assert list(table.columns) == slurm.COLUMNS


def test_join_keeps_local_visits():
    visits = pd.DataFrame({"visit": [1, 2], "n_sources": [10, 20]})
    jobs = pd.DataFrame({"visit": [1, 2], "slurm_job_id": ["28", ""], "host": ["vm", "laptop"]})
    joined = add_job_accounting(visits, jobs, slurm.parse_sacct(SACCT))
    assert joined["visit"].tolist() == [1, 2]
    assert joined.loc[0, "slurm_state"] == "COMPLETED"
    assert joined.loc[0, "slurm_cpu_s"] == pytest.approx(27.56)
    assert pd.isna(joined.loc[1, "slurm_state"])
    assert joined.loc[1, "host"] == "laptop"


def test_workflow_jobs_are_the_plugins_jobs_in_this_directory(tmp_path):
    here = tmp_path / "wf"
    here.mkdir()
    text = "\n".join(
        [
            f"41|41|0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0|{here}|RUNNING",
            f"42|42_1|0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0|{here}|RUNNING",
            f"42|42_[2-5]|0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0|{here}|PENDING",
            f"43|43|interactive|{here}|RUNNING",  # the user's own job, not Snakemake's
            f"44|44|1f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0|{tmp_path}|RUNNING",  # another workflow
            f"45|45|myprefix_2f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0|{here}/.|PENDING",
        ]
    )
    assert slurm.workflow_jobs(slurm.parse_squeue(text), here) == ["41", "42", "45"]


def test_read_jobs_gives_where_and_when(tmp_path):
    for visit, record in {
        1: {"slurm_job_id": "28", "host": "vm", "start": "2026-11-25T19:50:40.100+00:00",
            "end": "2026-11-25T19:50:51.600+00:00"},
        2: {"slurm_job_id": "", "host": "laptop"},  # a record written before times were kept
    }.items():  # fmt: skip
        (tmp_path / str(visit)).mkdir()
        (tmp_path / str(visit) / "job.json").write_text(json.dumps(record))
    jobs = read_jobs([str(tmp_path / "1/job.json"), str(tmp_path / "2/job.json")])
    assert jobs["visit"].tolist() == [1, 2]
    assert (jobs.loc[0, "end"] - jobs.loc[0, "start"]).total_seconds() == pytest.approx(11.5)
    assert pd.isna(jobs.loc[1, "start"])
    assert jobs.loc[1, "host"] == "laptop"
