"""Snakemake adapter: validate the cluster against AWS before anything is created."""

import json
from pathlib import Path

import boto3
import yaml

from lsst_on_aws.cloud import checks, pcluster, s3data, storage
from lsst_on_aws.cloud.cluster import ClusterConfigError
from lsst_on_aws.logs import fail, to_log

with to_log(snakemake.log[0]) as log:
    session = boto3.Session(region_name=snakemake.params.region)
    doc = yaml.safe_load(Path(snakemake.input.yaml).read_text())
    try:
        identity = checks.caller_identity(session.client("sts"))
        log.info("AWS identity %s (account %s)", identity["Arn"], identity["Account"])
        checks.check(doc, snakemake.params.name, ec2=session.client("ec2"))
        checks.check_buckets(doc, session.client("s3"))
        existing = snakemake.params.storage
        if existing["storage_id"]:
            subnet = doc["HeadNode"]["Networking"]["SubnetId"]
            [described] = session.client("ec2").describe_subnets(SubnetIds=[subnet])["Subnets"]
            info = storage.describe(session, existing["storage_id"])
            storage.check_reusable(info, existing["storage_type"], described["AvailabilityZone"])
            log.info(
                "shared storage %s (%s, %s GB) can be mounted", info["id"], info["kind"], info["size_gb"]
            )
        action = doc["HeadNode"].get("CustomActions", {}).get("OnNodeConfigured")
        uploaded = []
        if action:  # pcluster's dry run checks that the script is there: the one thing written
            bucket_prefix = action["Script"].rsplit("/", 1)[0]
            script = {"bootstrap.sh": Path(snakemake.input.bootstrap)}
            uploaded = s3data.publish(session.client("s3"), script, bucket_prefix, log=log.info)
        messages = pcluster.dry_run(snakemake.input.yaml, snakemake.params.name, snakemake.params.suppress)
    except (
        checks.CredentialsError,
        ClusterConfigError,
        storage.StorageError,
        s3data.S3DataError,
    ) as err:
        fail(log, f"Cluster validation failed: {err}")
    for message in messages:
        log.info("pcluster %s %s: %s", message.get("level"), message.get("type"), message.get("message"))
    record = {
        "cluster": snakemake.params.name,
        "region": snakemake.params.region,
        "account": identity["Account"],
        "identity": identity["Arn"],
        "dry_run": pcluster.DRY_RUN_SUCCESS,
        "messages": messages,
        "bootstrap": uploaded,
    }
    with open(snakemake.output.json, "w") as out:
        json.dump(record, out, indent=2)
        out.write("\n")
