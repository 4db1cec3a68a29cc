"""Log search alerts (and metric alerts) are matched to the endpoint and deployment they name.

Payloads follow the documented common alert schema, "Sample log search alert when the
monitoringService = Log Alerts V2" (https://learn.microsoft.com/azure/azure-monitor/alerts/alerts-common-schema,
MicrosoftDocs/azure-monitor-docs articles/azure-monitor/alerts/alerts-common-schema.md):
`alertContext.conditionType: LogQueryCriteria`, `condition.allOf[].dimensions[{name, value}]` named
after the query's columns (the traffic log's `EndpointName`, `DeploymentName`, `_ResourceId`), and
`alertTargetIDs` holding the Log Analytics workspace when the rule is scoped to it ("For a log search
alert defined on a Log Analytics workspace ... it's the respective workspace"), or the resource a
split on the resource id column makes the alert target.
"""

from __future__ import annotations

import json
import logging
from typing import Any

import pytest

from shared.payloads import AlertNotice, tie_to_endpoints
from shared.rollout.model import RolloutPhase
from tests.functions.harness import DEFAULT_POLICY

P = RolloutPhase
GREEN = "fraud-model-v2"
LOGS = (
    "/subscriptions/00000000-0000-0000-0000-000000000000/resourceGroups/ops"
    "/providers/Microsoft.OperationalInsights/workspaces/log-safe-rollout"
)


def log_alert(targets: list[str], dims: list[dict[str, Any]] | None, condition: str = "Fired", n: int = 1) -> dict:
    return {
        "schemaId": "azureMonitorCommonAlertSchema",
        "data": {
            "essentials": {
                "alertId": f"/subscriptions/x/providers/Microsoft.AlertsManagement/alerts/log-{n}",
                "alertRule": "traffic-log-5xx",
                "severity": "Sev1",
                "signalType": "Log",
                "monitorCondition": condition,
                "monitoringService": "Log Alerts V2",
                "alertTargetIDs": targets,
                "configurationItems": [],
                "originAlertId": f"log-{n}",
                "firedDateTime": "2026-11-01T09:30:00Z",
                "description": "",
                "essentialsVersion": "1.0",
                "alertContextVersion": "1.0",
            },
            "alertContext": {
                "properties": {},
                "conditionType": "LogQueryCriteria",
                "condition": {
                    "windowSize": "PT5M",
                    "allOf": [
                        {
                            "searchQuery": "AmlOnlineEndpointTrafficLog | where toint(ResponseCode) >= 500 "
                            "| summarize failed = count() by EndpointName, DeploymentName, _ResourceId",
                            "metricMeasureColumn": "failed",
                            "targetResourceTypes": "['Microsoft.OperationalInsights/workspaces']",
                            "operator": "GreaterThan",
                            "threshold": "10",
                            "timeAggregation": "Total",
                            "dimensions": dims,
                            "metricValue": 42.0,
                            "failingPeriods": {"numberOfEvaluationPeriods": 1, "minFailingPeriodsToAlert": 1},
                            "linkToSearchResultsUI": "https://portal.azure.com#@tenant/blade/x",
                            "linkToFilteredSearchResultsUI": "https://portal.azure.com#@tenant/blade/y",
                            "linkToSearchResultsAPI": "https://api.loganalytics.io/v1/workspaces/w/query?query=x",
                            "linkToFilteredSearchResultsAPI": "https://api.loganalytics.io/v1/workspaces/w/query?q=y",
                        }
                    ],
                    "windowStartTime": "2026-11-01T09:25:00Z",
                    "windowEndTime": "2026-11-01T09:30:00Z",
                },
            },
        },
    }


def to_canary(harness) -> None:
    harness.register("2")
    harness.tick_until(lambda: harness.phase() == P.CANARY)


def rolled_back(harness) -> bool:
    """Green ordered to 0% (the rollback lands once the endpoint is seen without green's traffic)."""
    return harness.phase() in (P.ROLLING_BACK, P.ROLLED_BACK)


def outcome(response) -> list[dict[str, str]]:
    assert response.status_code == 200, response.get_body()[:300]
    return json.loads(response.get_body())["rollouts"]


def endpoint_id(harness) -> str:
    return harness.world.emu.endpoint_id("fraud-scorer")


# -- alerts about blue never roll green back ----------------------------------------------------------


def test_a_log_alert_on_the_endpoint_split_by_deployment_name_that_names_blue_leaves_green_alone(harness):
    """endpoint_alerts_roll_back is true (the default): before, `DeploymentName` was not read, so this
    alert counted as endpoint-wide and rolled green back."""
    to_canary(harness)
    alert = log_alert([endpoint_id(harness).lower()], [{"name": "DeploymentName", "value": "blue"}])
    assert outcome(harness.alert(alert)) == []
    assert harness.phase() == P.CANARY


def test_a_log_alert_on_the_endpoint_that_names_green_rolls_back(harness):
    to_canary(harness)
    alert = log_alert([endpoint_id(harness).lower()], [{"name": "DeploymentName", "value": GREEN}])
    assert outcome(harness.alert(alert))[0]["outcome"].startswith("rolled back")
    assert rolled_back(harness)


# -- alerts scoped to the Log Analytics workspace -------------------------------------------------------


@pytest.mark.parametrize(
    "dims",
    [
        [{"name": "EndpointName", "value": "fraud-scorer"}, {"name": "DeploymentName", "value": GREEN}],
        [{"name": "endpointname", "value": "FRAUD-SCORER"}, {"name": "deploymentname", "value": GREEN.upper()}],
        [{"name": "_ResourceId", "value": "RESOURCE"}, {"name": "DeploymentName", "value": GREEN}],
        [{"name": "_ResourceId", "value": "RESOURCE/deployments/" + GREEN}],
    ],
    ids=["EndpointName", "names in other casing", "_ResourceId of the endpoint", "_ResourceId of green"],
)
def test_a_workspace_scoped_log_alert_naming_the_endpoint_and_green_rolls_back(harness, dims):
    to_canary(harness)
    for dim in dims:
        dim["value"] = dim["value"].replace("RESOURCE", endpoint_id(harness).upper())
    assert outcome(harness.alert(log_alert([LOGS], dims)))[0]["outcome"].startswith("rolled back")
    assert rolled_back(harness)


@pytest.mark.parametrize("by", ["EndpointName", "_ResourceId"])
def test_a_workspace_scoped_log_alert_naming_blue_leaves_green_alone(harness, by):
    to_canary(harness)
    endpoint = "fraud-scorer" if by == "EndpointName" else endpoint_id(harness).lower()
    dims = [{"name": by, "value": endpoint}, {"name": "DeploymentName", "value": "blue"}]
    assert outcome(harness.alert(log_alert([LOGS], dims))) == []
    assert harness.phase() == P.CANARY


def test_a_workspace_scoped_log_alert_about_the_whole_endpoint_follows_the_policy(harness):
    to_canary(harness)
    alert = log_alert([LOGS], [{"name": "EndpointName", "value": "fraud-scorer"}])
    assert outcome(harness.alert(alert))[0]["outcome"].startswith("rolled back")


def test_an_endpoint_wide_log_alert_does_nothing_when_the_policy_says_so(harness):
    harness.policy_path.write_text(DEFAULT_POLICY.replace("targets:", "  endpoint_alerts_roll_back: false\ntargets:"))
    to_canary(harness)
    assert harness.rollout().id
    alert = log_alert([LOGS], [{"name": "EndpointName", "value": "fraud-scorer"}])
    assert outcome(harness.alert(alert)) == []
    assert harness.phase() == P.CANARY


# -- alerts we cannot tie to an endpoint: acknowledged, with the reason in the log ---------------------


@pytest.mark.parametrize(
    "dims",
    [
        None,  # "Simple Log Alert": dimensions null
        [],
        [{"name": "Computer", "value": "vm-1"}],
        [{"name": "DeploymentName", "value": GREEN}],  # a deployment, but of which endpoint?
        [{"name": "_ResourceId", "value": "/subscriptions/x/resourcegroups/y/providers/microsoft.compute/vms/z"}],
    ],
    ids=["null", "none", "other column", "deployment only", "other resource"],
)
def test_an_alert_that_names_no_endpoint_is_acknowledged_with_a_logged_reason(harness, caplog, dims):
    to_canary(harness)
    caplog.set_level(logging.INFO, logger="safe_rollout")
    response = harness.alert(log_alert([LOGS], dims))
    assert outcome(response) == []
    assert "names no online endpoint" in json.loads(response.get_body())["reason"]
    assert any("names no online endpoint" in r.getMessage() for r in caplog.records)
    assert not [r for r in caplog.records if r.exc_info]
    assert harness.phase() == P.CANARY


def test_an_alert_naming_an_endpoint_without_a_rollout_is_acknowledged(harness):
    to_canary(harness)
    dims = [{"name": "EndpointName", "value": "churn-scorer"}, {"name": "DeploymentName", "value": GREEN}]
    response = harness.alert(log_alert([LOGS], dims))
    assert outcome(response) == []
    assert harness.phase() == P.CANARY


# -- metric alerts keep working --------------------------------------------------------------------------


def test_a_metric_alert_with_the_deployment_dimension_still_names_green(harness):
    to_canary(harness)
    alert = log_alert([endpoint_id(harness).lower()], [{"name": "deployment", "value": GREEN}])
    alert["data"]["essentials"]["signalType"] = "Metric"
    alert["data"]["alertContext"] = {
        "conditionType": "SingleResourceMultipleMetricCriteria",
        "condition": {
            "windowSize": "PT5M",
            "allOf": [
                {
                    "metricName": "RequestLatency_P99",
                    "metricNamespace": "Microsoft.MachineLearningServices/workspaces/onlineEndpoints",
                    "operator": "GreaterThan",
                    "threshold": "1000",
                    "timeAggregation": "Average",
                    "dimensions": [{"name": "deployment", "value": GREEN}],
                    "metricValue": 1800.0,
                }
            ],
        },
    }
    assert outcome(harness.alert(alert))[0]["outcome"].startswith("rolled back")


# -- the matching rule, on its own -------------------------------------------------------------------------

WS_A = "/subscriptions/s/resourcegroups/a/providers/microsoft.machinelearningservices/workspaces/ws"
WS_B = "/subscriptions/s/resourcegroups/b/providers/microsoft.machinelearningservices/workspaces/ws"


def notice(**kw: Any) -> AlertNotice:
    fields: dict[str, Any] = {
        "alert_id": "a",
        "rule": "r",
        "condition": "Fired",
        "severity": "Sev1",
        "target_ids": (LOGS.lower(),),
        "deployments": (),
        "fired_at": None,
    }
    return AlertNotice(**(fields | kw))


def test_an_endpoint_name_that_two_workspaces_use_is_not_guessed():
    known = [f"{WS_A}/onlineendpoints/scorer", f"{WS_B}/onlineendpoints/scorer"]
    tied, why = tie_to_endpoints(notice(endpoint_names=("scorer",)), known)
    assert why is not None
    assert "more than one" in why
    assert not any("/onlineendpoints/" in t for t in tied.target_ids)


def test_an_endpoint_name_is_tied_within_the_workspace_the_alert_targets():
    known = [f"{WS_A}/onlineendpoints/scorer", f"{WS_B}/onlineendpoints/scorer"]
    tied, why = tie_to_endpoints(notice(target_ids=(WS_B,), endpoint_names=("scorer",)), known)
    assert why is None
    assert f"{WS_B}/onlineendpoints/scorer" in tied.target_ids
    assert f"{WS_A}/onlineendpoints/scorer" not in tied.target_ids


def test_the_older_log_alert_payload_has_its_dimensions_read_too():
    """ "Sample log search alert when the monitoringService = Log Analytics": top-level `Dimensions`."""
    from shared.payloads import parse_alert

    alert = log_alert([LOGS], None)
    alert["data"]["alertContext"] = {
        "SearchQuery": "AmlOnlineEndpointTrafficLog | summarize AggregatedValue = count() by EndpointName",
        "ResultCount": 2,
        "Threshold": 10,
        "Operator": "Greater Than",
        "Dimensions": [{"name": "EndpointName", "value": "Fraud-Scorer"}, {"name": "DeploymentName", "value": "Green"}],
        "AlertType": "Metric measurement",
    }
    parsed = parse_alert(json.dumps(alert).encode())
    assert parsed.deployments == ("green",)
    assert parsed.endpoint_names == ("fraud-scorer",)
