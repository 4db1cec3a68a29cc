"""Every metric alert rule in infra/ asks Azure Monitor only for what the metric reference allows.

An alert rule whose aggregation, dimension or window the metric does not support is refused when
the rule is created ("Time aggregation must be one of [Average]", e.g. Azure/azure-monitor-
baseline-alerts#194, hashicorp/terraform-provider-azurerm#6200), so azd's second pass would fail
whenever alerts are enabled.
"""

from __future__ import annotations

import re
from typing import Any

import pytest

from tests.infra.bicep import body, resolve, resources

ENDPOINTS = "Microsoft.MachineLearningServices/workspaces/onlineEndpoints"
DEPLOYMENTS = "Microsoft.MachineLearningServices/workspaces/onlineEndpoints/deployments"
TOPICS = "Microsoft.EventGrid/topics"
SYSTEM_TOPICS = "Microsoft.EventGrid/systemTopics"

# (namespace, metric) -> (aggregations, dimensions, time grains), exactly as listed by Azure Monitor's
# "Supported metrics for Microsoft.MachineLearningServices/workspaces/onlineEndpoints"
# https://learn.microsoft.com/azure/azure-monitor/reference/supported-metrics/microsoft-machinelearningservices-workspaces-onlineendpoints-metrics
# (MicrosoftDocs/azure-monitor-docs articles/azure-monitor/reference/supported-metrics/
#  microsoft-machinelearningservices-workspaces-onlineendpoints-metrics.md) and ".../onlineEndpoints/deployments"
# https://learn.microsoft.com/azure/azure-monitor/reference/supported-metrics/microsoft-machinelearningservices-workspaces-onlineendpoints-deployments-metrics
ALLOWED: dict[tuple[str, str], tuple[frozenset[str], frozenset[str], frozenset[str]]] = {
    (ENDPOINTS, "ConnectionsActive"): (frozenset({"Average"}), frozenset(), frozenset({"PT1M"})),
    (ENDPOINTS, "NetworkBytes"): (frozenset({"Average"}), frozenset(), frozenset({"PT1M"})),
    (ENDPOINTS, "NewConnectionsPerSecond"): (frozenset({"Average"}), frozenset(), frozenset({"PT1M"})),
    (ENDPOINTS, "RequestLatency"): (frozenset({"Average"}), frozenset({"deployment"}), frozenset({"PT1M"})),
    (ENDPOINTS, "RequestLatency_P50"): (frozenset({"Average"}), frozenset({"deployment"}), frozenset({"PT1M"})),
    (ENDPOINTS, "RequestLatency_P90"): (frozenset({"Average"}), frozenset({"deployment"}), frozenset({"PT1M"})),
    (ENDPOINTS, "RequestLatency_P95"): (frozenset({"Average"}), frozenset({"deployment"}), frozenset({"PT1M"})),
    (ENDPOINTS, "RequestLatency_P99"): (frozenset({"Average"}), frozenset({"deployment"}), frozenset({"PT1M"})),
    (ENDPOINTS, "RequestsPerMinute"): (
        frozenset({"Average"}),
        frozenset({"deployment", "statusCode", "statusCodeClass", "modelStatusCode"}),
        frozenset({"PT1M"}),
    ),
    (DEPLOYMENTS, "CpuUtilizationPercentage"): (
        frozenset({"Minimum", "Maximum", "Average"}),
        frozenset({"instanceId"}),
        frozenset({"PT1M"}),
    ),
    (DEPLOYMENTS, "CpuMemoryUtilizationPercentage"): (
        frozenset({"Minimum", "Maximum", "Average"}),
        frozenset({"instanceId"}),
        frozenset({"PT1M"}),
    ),
    # Dead-lettered events: "Supported metrics for Microsoft.EventGrid/topics" and ".../systemTopics"
    # https://learn.microsoft.com/azure/azure-monitor/reference/supported-metrics/microsoft-eventgrid-topics-metrics
    # https://learn.microsoft.com/azure/azure-monitor/reference/supported-metrics/microsoft-eventgrid-systemtopics-metrics
    # (and MicrosoftDocs/azure-docs articles/event-grid/monitor-push-reference.md): Count, Total, PT1M.
    (TOPICS, "DeadLetteredCount"): (
        frozenset({"Total"}),
        frozenset({"DeadLetterReason", "EventSubscriptionName"}),
        frozenset({"PT1M"}),
    ),
    (SYSTEM_TOPICS, "DeadLetteredCount"): (
        frozenset({"Total"}),
        frozenset({"DeadLetterReason", "EventSubscriptionName"}),
        frozenset({"PT1M"}),
    ),
}

# Window and frequency of a metric alert rule: ISO 8601 durations; the window is what is aggregated
# and must hold whole time grains, the rule is evaluated at most once per grain
# (metricAlerts 2018-03-01, Azure/azure-rest-api-specs specification/monitor/resource-manager/
#  Microsoft.Insights/stable/2018-03-01/metricAlert_API.json: `windowSize`, `evaluationFrequency`).
_DURATION = re.compile(r"^PT(?:(\d+)H)?(?:(\d+)M)?$")


def _minutes(iso: str) -> int:
    match = _DURATION.match(iso)
    assert match, f"not an ISO 8601 duration in hours/minutes: {iso!r}"
    return int(match[1] or 0) * 60 + int(match[2] or 0)


def problems(rule: dict[str, Any], namespace_of: Any = lambda v: v) -> list[str]:
    """What Azure Monitor would refuse in one metric alert rule's properties."""
    props = rule["properties"]
    found: list[str] = []
    window, every = _minutes(props["windowSize"]), _minutes(props["evaluationFrequency"])
    if every > window:
        found.append(f"evaluated every {every} min over a {window} min window")
    for criterion in props["criteria"]["allOf"]:
        key = (namespace_of(criterion["metricNamespace"]), criterion["metricName"])
        if key not in ALLOWED:
            found.append(f"metric {key} is not in the reference table")
            continue
        aggregations, dimensions, grains = ALLOWED[key]
        if criterion["timeAggregation"] not in aggregations:
            found.append(f"{key[1]}: aggregation {criterion['timeAggregation']} (allowed: {sorted(aggregations)})")
        for dim in criterion.get("dimensions", []):
            if dim["name"] not in dimensions:
                found.append(f"{key[1]}: dimension {dim['name']} (allowed: {sorted(dimensions)})")
        grain = min(_minutes(g) for g in grains)
        if window % grain or every % grain:
            found.append(f"{key[1]}: window {window} min / every {every} min are not whole {grain} min grains")
    return found


def _metric_alerts() -> list[tuple[str, dict[str, Any]]]:
    found = []
    for file in ("main.bicep", "workspace.bicep"):
        found += [(f"{file}:{sym}", body(r)) for sym, r in resources(file, "Microsoft.Insights/metricAlerts").items()]
    return found


def test_the_infra_has_metric_alert_rules_to_check():
    names = [name for name, _ in _metric_alerts()]
    assert len(names) >= 2, names


@pytest.mark.parametrize(("name", "rule"), _metric_alerts(), ids=[n for n, _ in _metric_alerts()])
def test_each_metric_alert_uses_only_the_aggregations_dimensions_and_grain_the_reference_allows(name, rule):
    file = name.split(":")[0]
    assert problems(rule, lambda v: resolve(file, v)) == []


def test_the_check_refuses_what_azure_refuses():
    """The checker itself: a Total over RequestsPerMinute, an unknown dimension, a window of half grains."""
    rule = {
        "properties": {
            "windowSize": "PT5M",
            "evaluationFrequency": "PT1M",
            "criteria": {
                "allOf": [
                    {
                        "metricNamespace": ENDPOINTS,
                        "metricName": "RequestsPerMinute",
                        "timeAggregation": "Total",
                        "dimensions": [{"name": "deployment"}, {"name": "envoy_response_code"}],
                    }
                ]
            },
        }
    }
    found = problems(rule)
    assert any("aggregation Total" in p for p in found)
    assert any("envoy_response_code" in p for p in found)
    rule["properties"]["criteria"]["allOf"][0].update(timeAggregation="Average", dimensions=[])
    assert problems(rule) == []
    rule["properties"]["evaluationFrequency"] = "PT15M"
    assert problems(rule)
