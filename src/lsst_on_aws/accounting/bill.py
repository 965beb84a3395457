"""The bill as AWS reports it, from Cost Explorer, by the cluster's cost-allocation tag."""

from __future__ import annotations

from datetime import UTC, datetime

import pandas as pd


def actual_bill(ce, tag_key: str, tag_value: str, start: str, end: str) -> pd.DataFrame:
    """What AWS charged for resources tagged ``tag_key=tag_value``, per day and service.

    From Cost Explorer (``ce.get_cost_and_usage``, daily, unblended cost),
    over ``start`` (inclusive) to ``end`` (exclusive), ISO dates. The tag
    must be activated as a cost-allocation tag in the billing console. Cost
    Explorer lags by about a day and marks recent days ``estimated``: this
    is the bill, reported beside the estimate, never merged into it.
    """
    request = {
        "TimePeriod": {"Start": start, "End": end},
        "Granularity": "DAILY",
        "Metrics": ["UnblendedCost"],
        "Filter": {"Tags": {"Key": tag_key, "Values": [tag_value], "MatchOptions": ["EQUALS"]}},
        "GroupBy": [{"Type": "DIMENSION", "Key": "SERVICE"}],
    }
    rows = []
    while True:
        response = ce.get_cost_and_usage(**request)
        for period in response.get("ResultsByTime", []):
            total = {"Keys": ["(all services)"], "Metrics": period.get("Total", {})}
            groups = period.get("Groups") or [total]
            for group in groups:
                metric = group["Metrics"].get("UnblendedCost") or next(iter(group["Metrics"].values()), None)
                if metric is None:
                    continue
                rows.append(
                    {
                        "day": period["TimePeriod"]["Start"],
                        "service": group["Keys"][0],
                        "usd": float(metric["Amount"]),
                        "unit": metric.get("Unit", "USD"),
                        "estimated": bool(period.get("Estimated", False)),
                    }
                )
        token = response.get("NextPageToken")
        if not token:
            break
        request["NextPageToken"] = token
    bill = pd.DataFrame(rows, columns=["day", "service", "usd", "unit", "estimated"])
    bill["tag"] = f"{tag_key}={tag_value}"
    bill["source"] = "cost-explorer"
    bill["retrieved"] = datetime.now(UTC).isoformat(timespec="seconds")
    return bill
