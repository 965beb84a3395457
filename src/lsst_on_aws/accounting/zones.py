"""Where spot is cheapest: an instance type's spot price in each availability zone of a region, and
which subnet of the configured VPC lies in the cheapest zone.

A cluster's compute nodes run in its subnet's zone, so a spot price that
differs between zones is a choice of subnet (``cluster.subnet_id``).
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime

import boto3
from botocore.exceptions import BotoCoreError, ClientError

from lsst_on_aws.accounting.prices import PriceError


def spot_zones(ec2, instance_type: str) -> list[dict]:
    """The Linux spot price of ``instance_type`` now in each zone of ``ec2``'s region, cheapest first:
    ``zone``, ``usd_per_hour``, ``as_of`` (the date of the price).
    """
    latest: dict[str, dict] = {}
    pages = ec2.get_paginator("describe_spot_price_history").paginate(
        InstanceTypes=[instance_type],
        ProductDescriptions=["Linux/UNIX"],
        StartTime=datetime.now(UTC),
    )
    for page in pages:
        for entry in page.get("SpotPriceHistory", []):
            zone = entry["AvailabilityZone"]
            if zone not in latest or entry["Timestamp"] > latest[zone]["Timestamp"]:
                latest[zone] = entry
    if not latest:
        raise PriceError(f"no spot price history for {instance_type}")
    rows = [
        {"zone": zone, "usd_per_hour": float(e["SpotPrice"]), "as_of": e["Timestamp"].date().isoformat()}
        for zone, e in latest.items()
    ]
    return sorted(rows, key=lambda row: (row["usd_per_hour"], row["zone"]))


def cheapest_zone(ec2, instance_type: str, subnet_id: str = "") -> dict:
    """The zone where spot ``instance_type`` is cheapest and, given the cluster's ``subnet_id``, the
    subnets of its VPC in that zone; with a sentence that says so.
    """
    zones = spot_zones(ec2, instance_type)
    best = zones[0]
    out = {"instance_type": instance_type, "cheapest_zone": best["zone"], "zones": zones}
    summary = f"spot {instance_type} is cheapest in {best['zone']} (${best['usd_per_hour']:.4f} an hour)"
    if subnet_id:
        subnet = ec2.describe_subnets(SubnetIds=[subnet_id])["Subnets"][0]
        vpc, own_zone = subnet["VpcId"], subnet["AvailabilityZone"]
        filters = [
            {"Name": "vpc-id", "Values": [vpc]},
            {"Name": "availability-zone", "Values": [best["zone"]]},
        ]
        there = sorted(s["SubnetId"] for s in ec2.describe_subnets(Filters=filters)["Subnets"])
        own_price = next((z["usd_per_hour"] for z in zones if z["zone"] == own_zone), None)
        out |= {"vpc_id": vpc, "subnet_id": subnet_id, "subnet_zone": own_zone, "subnets_there": there}
        if own_zone == best["zone"]:
            summary += f", the zone of the configured subnet {subnet_id}"
        else:
            priced = f", ${own_price:.4f}" if own_price is not None else ", no spot price"
            summary += f"; the configured subnet {subnet_id} is in {own_zone}{priced}"
            if there:
                summary += f"; {', '.join(there)} of {vpc} is in {best['zone']} (cluster.subnet_id)"
            else:
                summary += f"; no subnet of {vpc} is in {best['zone']}"
    out["summary"] = summary
    return out


def zone_advice(region: str, instance_type: str, subnet_id: str, log: logging.Logger) -> dict | None:
    """:func:`cheapest_zone` in ``region``, as advice, not a condition: a failure to read the zones'
    prices or subnets is logged as a warning, and gives None.
    """
    ec2 = boto3.Session().client("ec2", region_name=region)
    try:
        return cheapest_zone(ec2, instance_type, subnet_id)
    except (PriceError, BotoCoreError, ClientError) as err:
        log.warning("no spot price by zone for %s: %s", instance_type, err)
        return None
