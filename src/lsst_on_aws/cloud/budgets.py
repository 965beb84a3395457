"""An AWS Budgets budget over the cluster's cost-allocation tag, with e-mail alarms."""

from __future__ import annotations

from collections.abc import Iterable

# every budget the workflow makes is named with it, so that its IAM policy can allow budgets of
# this workflow only (config/iam-policy.json)
BUDGET_PREFIX = "lsst-on-aws-"


def budget_name(cluster: str) -> str:
    """The name of the AWS Budgets budget of a cluster of the workflow."""
    return f"{BUDGET_PREFIX}{cluster}"


def budget_alarm(
    budgets,
    account_id: str,
    name: str,
    tag: tuple[str, str],
    limit_usd: float,
    emails: Iterable[str] = (),
    thresholds_percent: Iterable[float] = (80.0, 100.0),
) -> str:
    """An AWS Budgets cost budget over everything tagged ``tag`` (key, value), with e-mail alarms.

    Monthly, on actual unblended cost; each of ``emails`` is told when the
    spending passes each threshold (percent of ``limit_usd``). The tag must
    be an activated cost-allocation tag. Idempotent: a budget of that name
    already there is left as it is. Returns "created" or "exists".
    """
    budget = {
        "BudgetName": name,
        "BudgetLimit": {"Amount": f"{limit_usd:.2f}", "Unit": "USD"},
        "BudgetType": "COST",
        "TimeUnit": "MONTHLY",
        "CostFilters": {"TagKeyValue": [f"user:{tag[0]}${tag[1]}"]},
    }
    subscribers = [{"SubscriptionType": "EMAIL", "Address": e} for e in emails]
    notifications = [
        {
            "Notification": {
                "NotificationType": "ACTUAL",
                "ComparisonOperator": "GREATER_THAN",
                "Threshold": float(threshold),
                "ThresholdType": "PERCENTAGE",
            },
            "Subscribers": subscribers,
        }
        for threshold in thresholds_percent
        if subscribers
    ]
    try:
        budgets.create_budget(AccountId=account_id, Budget=budget, NotificationsWithSubscribers=notifications)
    except budgets.exceptions.DuplicateRecordException:
        return "exists"
    return "created"
