"""Data in S3: a data source at an s3:// URI, staged; results published back to S3.

S3 is moto's server on 127.0.0.1 (real HTTP, boto3's real client and
transfer manager, ``AWS_ENDPOINT_URL``). Where the emulation stops: moto
does not enforce IAM policies or bucket policies by default, so "access
denied" is not exercised here; the instance role the nodes would use is
ParallelCluster's ``S3Access`` (see test_cluster).
"""

from __future__ import annotations

import hashlib
import json

import boto3
import pytest
from conftest import aws_env, copy_workflow, snakemake, upload_tree

from lsst_on_aws.cloud import s3data

# what Snakemake writes into each folder output it made
MARKER = ".snakemake_timestamp"


@pytest.fixture
def s3(moto):
    client = boto3.client("s3")
    client.create_bucket(Bucket="survey")
    return client


def test_stage_downloads_a_folder_whole(s3, tmp_path):
    for name in ("a.fits", "sub/b.fits"):
        s3.put_object(Bucket="survey", Key=f"raws/raw/7/{name}", Body=name.encode())

    record = s3data.stage(s3, "s3://survey/raws/raw/7", tmp_path / "7", log=lambda _: None)

    assert sorted(f["name"] for f in record["files"]) == ["a.fits", "sub/b.fits"]
    assert (tmp_path / "7" / "sub" / "b.fits").read_bytes() == b"sub/b.fits"
    assert not (tmp_path / "7.partial").exists()


def test_stage_takes_only_the_files_named(s3, tmp_path):
    """DECam's InstCal planes out of a folder that holds other files too; none matching is an error."""
    for name in ("c4d_1_ooi_z.fits.fz", "deep/c4d_1_oow_z.fits.fz", "c4d_1_ood_z.fits.fz", "notes.txt"):
        s3.put_object(Bucket="survey", Key=f"decam/{name}", Body=b"x")
    patterns = ["*_ooi_*.fits*", "*_oow_*.fits*", "*_ood_*.fits*"]

    record = s3data.stage(
        s3, "s3://survey/decam", tmp_path / "instcal", log=lambda _: None, patterns=patterns
    )

    assert len(record["files"]) == 3 and (tmp_path / "instcal/deep/c4d_1_oow_z.fits.fz").exists()
    assert not (tmp_path / "instcal/notes.txt").exists()
    expected = r"s3://survey/decam/ holds no files matching \*\.parquet \(config key data\.refcat\)"
    with pytest.raises(s3data.S3DataError, match=expected):
        s3data.stage(
            s3, "s3://survey/decam", tmp_path / "r", log=print, patterns=["*.parquet"], key="data.refcat"
        )


def test_interrupted_stage_leaves_no_folder(s3, tmp_path):
    """A download that fails half-way leaves nothing that passes for a staged folder."""
    for name in ("a.fits", "b.fits"):
        s3.put_object(Bucket="survey", Key=f"raws/raw/7/{name}", Body=b"x")

    class FailsSecond:
        def __init__(self, client):
            self.client, self.calls = client, 0

        def __getattr__(self, name):
            return getattr(self.client, name)

        def download_file(self, *args):
            self.calls += 1
            if self.calls == 2:
                s3.delete_object(Bucket="survey", Key="raws/raw/7/b.fits")  # gone under our feet
            return self.client.download_file(*args)

    with pytest.raises(s3data.S3DataError, match=r"s3://survey/raws/raw/7/b\.fits"):
        s3data.stage(FailsSecond(s3), "s3://survey/raws/raw/7", tmp_path / "7", log=lambda _: None)
    assert not (tmp_path / "7").exists()


@pytest.mark.parametrize(
    "uri, expected",
    [
        ("s3://survey/raws/raw/99", r"s3://survey/raws/raw/99/ holds no files \(config key data.path\)"),
        ("s3://no-such-bucket/raws", "s3://no-such-bucket/raws: the bucket does not exist"),
        ("/local/path", "is not an S3 URI"),
    ],
)
def test_stage_errors_name_the_uri(s3, tmp_path, uri, expected):
    with pytest.raises(s3data.S3DataError, match=expected):
        s3data.stage(s3, uri, tmp_path / "dest", log=lambda _: None)
    assert not (tmp_path / "dest").exists()


def test_publish_to_a_missing_bucket_is_named(s3, tmp_path):
    (tmp_path / "f.txt").write_text("x")
    with pytest.raises(s3data.S3DataError, match=r"s3://gone/run/f\.txt: the bucket does not exist"):
        s3data.publish(s3, {"f.txt": tmp_path / "f.txt"}, "s3://gone/run", log=lambda _: None)


def test_workflow_reads_raws_from_s3_and_publishes_its_results(tmp_path, moto_server, moto, demo_run):
    """The embedded default's simulated raws and calibrations, in S3, processed; results published to S3."""
    s3 = boto3.client("s3")
    s3.create_bucket(Bucket="survey")
    s3.create_bucket(Bucket="papers")
    # the data, not Snakemake's marker of a folder output
    data = {MARKER: None}
    uploaded = upload_tree(s3, demo_run / "results/simulated/calib", "survey", "simcam/calib", data)
    uploaded += upload_tree(s3, demo_run / "results/simulated/raw/1", "survey", "simcam/raw/1", data)
    workdir = copy_workflow(tmp_path / "workflow")
    settings = [
        "data={'source': 's3', 'path': 's3://survey/simcam'}",
        "publish={'uri': 's3://papers/lsst-on-aws/run-1'}",
        "process_visits=[1]",
    ]

    result = snakemake(workdir, "--cores", "2", "--config", *settings, env=aws_env(moto_server))

    assert result.returncode == 0, result.stderr[-4000:]
    staged = [p for p in (workdir / "resources/data").rglob("*") if p.is_file() and p.name != MARKER]
    assert len(staged) == uploaded
    assert not (workdir / "results/simulated").exists()  # nothing simulated: the raws came from S3
    summary = json.loads((workdir / "results/visits/1/summary.json").read_text())
    assert summary["status"] == "ok" and summary["n_sources"] > 0
    record = json.loads((workdir / "results/provenance/published.json").read_text())
    names = {o["uri"].rsplit("/", 1)[1] for o in record["objects"]}
    assert names == {"lsst-on-aws-bundle.tar.gz", "report.zip", "visits.csv", "breakdown.csv", "timings.csv"}
    for obj in record["objects"]:
        key = obj["uri"].removeprefix("s3://papers/")
        body = s3.get_object(Bucket="papers", Key=key)
        data = body["Body"].read()
        assert hashlib.sha256(data).hexdigest() == obj["sha256"] == body["Metadata"]["sha256"]
