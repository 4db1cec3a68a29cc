"""The Azure Monitor platform metrics of Azure ML online endpoints and deployments that Safe Rollout
uses or might use, as Microsoft documents them: name, unit, aggregations, dimensions, time grains.

Sources (generated from Azure's metric definitions; re-check them when a metric misbehaves):
- onlineEndpoints: https://learn.microsoft.com/azure/azure-monitor/reference/supported-metrics/
  microsoft-machinelearningservices-workspaces-onlineendpoints-metrics
  (MicrosoftDocs/azure-monitor-docs, articles/azure-monitor/reference/supported-metrics/
  microsoft-machinelearningservices-workspaces-onlineendpoints-metrics.md)
- onlineEndpoints/deployments: https://learn.microsoft.com/azure/azure-monitor/reference/supported-metrics/
  microsoft-machinelearningservices-workspaces-onlineendpoints-deployments-metrics
  (same repository, ...-deployments-metrics.md; its table is an include generated 04/16/2025)

The pages' "Aggregation" column lists one value for most metrics and several for some (for example
`CpuMemoryUtilizationPercentage`: Minimum, Maximum, Average): we read it as the aggregations the
metric supports and ask for nothing else. The adapter checks every request against this table
before it is sent (`require`), and the emulator refuses what the table does not allow, so a query
that would rely on an undocumented aggregation, dimension or grain fails in tests, not in Azure.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

ENDPOINT_NAMESPACE = "Microsoft.MachineLearningServices/workspaces/onlineEndpoints"
DEPLOYMENT_NAMESPACE = "Microsoft.MachineLearningServices/workspaces/onlineEndpoints/deployments"
ENDPOINT_SOURCE = (
    "https://learn.microsoft.com/azure/azure-monitor/reference/supported-metrics/"
    "microsoft-machinelearningservices-workspaces-onlineendpoints-metrics"
)
DEPLOYMENT_SOURCE = (
    "https://learn.microsoft.com/azure/azure-monitor/reference/supported-metrics/"
    "microsoft-machinelearningservices-workspaces-onlineendpoints-deployments-metrics"
)
# The request-latency percentiles Azure ML publishes (RequestLatency_P50/P90/P95/P99).
PERCENTILES = (50, 90, 95, 99)
AGGREGATIONS = ("Average", "Minimum", "Maximum", "Total", "Count")
MIN_MAX_AVG = ("Minimum", "Maximum", "Average")


@dataclass(frozen=True)
class MetricSpec:
    namespace: str
    name: str
    unit: str
    aggregations: tuple[str, ...]
    dimensions: tuple[str, ...]
    time_grains: tuple[str, ...]
    source: str

    @property
    def default_aggregation(self) -> str:
        """What Azure answers when no aggregation is asked: the metric's listed aggregation
        (Average wherever it is listed, the only one our metrics have in common)."""
        return "Average" if "Average" in self.aggregations else self.aggregations[0]


def _endpoint(name: str, unit: str, aggregations: tuple[str, ...], *dimensions: str) -> MetricSpec:
    return MetricSpec(ENDPOINT_NAMESPACE, name, unit, aggregations, dimensions, ("PT1M",), ENDPOINT_SOURCE)


def _deployment(name: str, unit: str, aggregations: tuple[str, ...], *dimensions: str) -> MetricSpec:
    return MetricSpec(DEPLOYMENT_NAMESPACE, name, unit, aggregations, dimensions, ("PT1M",), DEPLOYMENT_SOURCE)


_METRICS: tuple[MetricSpec, ...] = (
    # onlineEndpoints, category Traffic
    _endpoint("ConnectionsActive", "Count", ("Average",)),
    _endpoint("DataCollectionErrorsPerMinute", "Count", MIN_MAX_AVG, "deployment", "reason", "type"),
    _endpoint("DataCollectionEventsPerMinute", "Count", MIN_MAX_AVG, "deployment", "type"),
    _endpoint("NetworkBytes", "BytesPerSecond", ("Average",)),
    _endpoint("NewConnectionsPerSecond", "CountPerSecond", ("Average",)),
    _endpoint("RequestLatency", "Milliseconds", ("Average",), "deployment"),
    *(_endpoint(f"RequestLatency_P{p}", "Milliseconds", ("Average",), "deployment") for p in PERCENTILES),
    # "The number of requests sent to online endpoint within a minute"
    _endpoint(
        "RequestsPerMinute", "Count", ("Average",), "deployment", "statusCode", "statusCodeClass", "modelStatusCode"
    ),
    # onlineEndpoints/deployments, categories Resource and Traffic
    _deployment("CpuMemoryUtilizationPercentage", "Percent", MIN_MAX_AVG, "instanceId"),
    _deployment("CpuUtilizationPercentage", "Percent", MIN_MAX_AVG, "instanceId"),
    _deployment("DataCollectionErrorsPerMinute", "Count", MIN_MAX_AVG, "instanceId", "reason", "type"),
    _deployment("DataCollectionEventsPerMinute", "Count", MIN_MAX_AVG, "instanceId", "type"),
    _deployment("DeploymentCapacity", "Count", MIN_MAX_AVG, "instanceId", "State"),
    _deployment("DiskUtilization", "Percent", MIN_MAX_AVG, "instanceId", "disk"),
    _deployment("GpuEnergyJoules", "Count", MIN_MAX_AVG, "instanceId"),
    _deployment("GpuMemoryUtilizationPercentage", "Percent", MIN_MAX_AVG, "instanceId"),
    _deployment("GpuUtilizationPercentage", "Percent", MIN_MAX_AVG, "instanceId"),
    *(_deployment(f"RequestLatency_P{p}", "Milliseconds", ("Average",)) for p in PERCENTILES),
    # "The number of requests sent to online deployment within a minute"
    _deployment("RequestsPerMinute", "Count", ("Average",), "envoy_response_code"),
)

CATALOGUE: dict[tuple[str, str], MetricSpec] = {(m.namespace.lower(), m.name.lower()): m for m in _METRICS}


class MetricRequestError(ValueError):
    """A metrics request the catalogue does not allow (a bug in the caller, caught before Azure)."""


def lookup(namespace: str, name: str) -> MetricSpec | None:
    return CATALOGUE.get((namespace.lower(), name.lower()))


def latency_metric(percentile: float) -> str:
    p = int(percentile) if float(percentile).is_integer() else None
    if p not in PERCENTILES:
        raise MetricRequestError(f"Azure ML publishes request latency only at P{', P'.join(map(str, PERCENTILES))}")
    return f"RequestLatency_P{p}"


def problems(
    namespace: str, names: Iterable[str], aggregations: Iterable[str], dimensions: Iterable[str], grain: str
) -> list[str]:
    """Everything in a request that the catalogue does not allow; empty if it may be sent."""
    found: list[str] = []
    wanted_aggregations = list(aggregations)
    wanted_dimensions = [d.lower() for d in dimensions]
    for name in names:
        spec = lookup(namespace, name)
        if spec is None:
            found.append(f"{name} is not a metric of {namespace}")
            continue
        allowed = {a.lower() for a in spec.aggregations}
        found += [f"{name} has no {a} aggregation" for a in wanted_aggregations if a.lower() not in allowed]
        have = {d.lower() for d in spec.dimensions}
        found += [f"{name} has no dimension {d}" for d in wanted_dimensions if d not in have]
        if grain.upper() not in spec.time_grains:
            found.append(f"{name} is not published at {grain}")
    return found


def require(
    namespace: str, names: Iterable[str], aggregations: Iterable[str], dimensions: Iterable[str], grain: str
) -> None:
    found = problems(namespace, names, aggregations, dimensions, grain)
    if found:
        raise MetricRequestError("; ".join(found))
