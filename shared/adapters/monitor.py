"""MetricsSource over Azure Monitor: metrics:getBatch (azure-monitor-querymetrics) and, when a Log
Analytics workspace is configured, per-request durations from AmlOnlineEndpointTrafficLog
(azure-monitor-query).

Batching: every query of a tick is answered from at most ceil(endpoints / 50) calls per metric
group (the batch API takes 50 resource ids and one time range: the union of the windows, sliced
per rollout afterwards). Failures come back as ProviderError values, one per query, never raised.
A failed or partial traffic-log query falls back to per-minute percentiles from metrics.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, Literal

from shared.ports import MetricsQuery, ProviderError, Timeline
from shared.rollout.analysis import DeploymentMetrics, WindowMetrics
from shared.rollout.model import is_valid_resource_name

if TYPE_CHECKING:
    from azure.core.credentials import TokenCredential

ENDPOINT_NAMESPACE = "Microsoft.MachineLearningServices/workspaces/onlineEndpoints"
DEPLOYMENT_NAMESPACE = "Microsoft.MachineLearningServices/workspaces/onlineEndpoints/deployments"
BATCH = 50
LOG_SAMPLE = 5000
MINUTE = timedelta(minutes=1)


def is_error(status: str, model_status: str, codes: Iterable[str]) -> bool:
    for code in codes:
        if code.endswith("xx") and status[:1] == code[:1]:
            return True
        if status == code:
            return True
    return False


def traffic_log_query(endpoint: str, deployments: Sequence[str], start: datetime, end: datetime, sample: int) -> str:
    """KQL for per-request durations. Names are checked against Azure's naming rules (letters,
    digits, hyphens) before they are placed in string literals; nothing else varies."""
    for name in (endpoint, *deployments):
        if not is_valid_resource_name(name):
            raise ValueError(f"refusing to query the traffic log for an invalid name: {name[:64]!r}")
    names = ", ".join(f'"{d}"' for d in deployments)
    return (
        "AmlOnlineEndpointTrafficLog"
        f" | where TimeGenerated >= datetime({start.isoformat()})"
        f" and TimeGenerated < datetime({end.isoformat()})"
        f' | where EndpointName == "{endpoint}" and DeploymentName in ({names})'
        f" | sample {int(sample)}"
        " | project DeploymentName, TotalDurationMs = todouble(TotalDurationMs),"
        " ResponseCode = toint(ResponseCode), ModelStatusCode = toint(ModelStatusCode)"
    )


Series = dict[str, list[tuple[str, dict[str, str], datetime, float]]]  # resource id -> (metric, dims, minute, value)


def _chunks(items: Sequence[str], size: int) -> list[Sequence[str]]:
    return [items[i : i + size] for i in range(0, len(items), size)]


def _minute(t: datetime) -> datetime:
    return t.replace(second=0, microsecond=0)


class MonitorMetrics:
    def __init__(
        self,
        credential: TokenCredential,
        *,
        metrics_endpoint: str,
        logs_workspace_id: str | None = None,
        logs_endpoint: str = "https://api.loganalytics.io",
        transport: Any = None,
        log_sample: int = LOG_SAMPLE,
    ) -> None:
        from azure.monitor.querymetrics import MetricsClient

        kwargs: dict[str, Any] = {"transport": transport} if transport is not None else {}
        self._metrics = MetricsClient(metrics_endpoint, credential, **kwargs)
        self._logs: Any = None
        if logs_workspace_id:
            from azure.monitor.query import LogsQueryClient

            self._logs = LogsQueryClient(
                credential,
                endpoint=f"{logs_endpoint.rstrip('/')}/v1",
                audience="https://api.loganalytics.io",
                **kwargs,
            )
        self._workspace_id = logs_workspace_id
        self._log_sample = log_sample
        self.calls = {"metrics": 0, "logs": 0}

    # -- public -----------------------------------------------------------------------------------

    def fetch(self, queries: Sequence[MetricsQuery]) -> list[WindowMetrics | ProviderError]:
        if not queries:
            return []
        start = _minute(min(q.start for q in queries))
        end = max(q.end for q in queries)
        endpoint_ids = sorted({q.endpoint.arm_id for q in queries})
        green_ids = sorted({q.endpoint.deployment_arm_id(q.green) for q in queries})
        percentiles = sorted({int(q.percentile) for q in queries})
        counts, latency, failures = self._endpoint_series(endpoint_ids, percentiles, start, end)
        # Resource metrics are vetoes only: if they fail, the checks see no minutes and never hold.
        resources, _ = self._series(
            green_ids,
            DEPLOYMENT_NAMESPACE,
            ["CpuUtilizationPercentage", "CpuMemoryUtilizationPercentage"],
            ["Average"],
            None,
            start,
            end,
        )
        results: list[WindowMetrics | ProviderError] = []
        for q in queries:
            ep_key = q.endpoint.arm_id.lower()
            failed = failures.get(ep_key)
            if failed:
                results.append(ProviderError(failed))
                continue
            samples = self._request_samples(q)
            blue = self._deployment(q, q.blue, counts, latency, resources, samples) if q.blue else None
            green = self._deployment(q, q.green, counts, latency, resources, samples)
            results.append(WindowMetrics(start=q.start, end=q.end, green=green, blue=blue))
        return results

    def timeline(self, query: MetricsQuery) -> Timeline | ProviderError:
        start, end = _minute(query.start), query.end
        ep_key = query.endpoint.arm_id.lower()
        counts, latency, failures = self._endpoint_series([query.endpoint.arm_id], [query.percentile], start, end)
        failed = failures.get(ep_key)
        if failed:
            return ProviderError(failed)
        minutes = []
        t = start
        while t < end:
            minutes.append(t)
            t += MINUTE

        def per_minute(name: str | None) -> tuple[list[float | None], list[float | None]]:
            if name is None:
                return [None] * len(minutes), [None] * len(minutes)
            total: dict[datetime, float] = defaultdict(float)
            bad: dict[datetime, float] = defaultdict(float)
            for _, dims, t, v in counts.get(ep_key, []):
                if dims.get("deployment") == name.lower():
                    total[t] += v
                    if is_error(dims.get("statuscode", ""), dims.get("modelstatuscode", ""), query.error_codes):
                        bad[t] += v
            lat = {t: v for m, dims, t, v in latency.get(ep_key, []) if dims.get("deployment") == name.lower()}
            return ([lat.get(m) for m in minutes], [bad[m] / total[m] if total.get(m) else None for m in minutes])

        blue_lat, blue_err = per_minute(query.blue)
        green_lat, green_err = per_minute(query.green)
        return Timeline(
            minutes=minutes,
            percentile=query.percentile,
            blue_latency_ms=blue_lat,
            green_latency_ms=green_lat,
            blue_error_rate=blue_err,
            green_error_rate=green_err,
        )

    # -- metrics ----------------------------------------------------------------------------------

    def _endpoint_series(
        self, ids: Sequence[str], percentiles: Sequence[float], start: datetime, end: datetime
    ) -> tuple[Series, Series, dict[str, str]]:
        """Request counts by deployment and status, and latency percentiles by deployment."""
        counts, count_errors = self._series(
            ids,
            ENDPOINT_NAMESPACE,
            ["RequestsPerMinute"],
            ["Total"],
            "deployment eq '*' and statusCode eq '*' and modelStatusCode eq '*'",
            start,
            end,
        )
        latency, latency_errors = self._series(
            ids,
            ENDPOINT_NAMESPACE,
            [f"RequestLatency_P{int(p)}" for p in sorted(set(percentiles))],
            ["Average"],
            "deployment eq '*'",
            start,
            end,
        )
        return counts, latency, {**latency_errors, **count_errors}

    def _series(
        self,
        ids: Sequence[str],
        namespace: str,
        names: list[str],
        aggregations: list[str],
        filt: str | None,
        start: datetime,
        end: datetime,
    ) -> tuple[dict[str, list[tuple[str, dict[str, str], datetime, float]]], dict[str, str]]:
        """{resource id (lower): [(metric, dimensions, minute, value)]}, {resource id: error}."""
        from azure.core.exceptions import AzureError

        out: dict[str, list[tuple[str, dict[str, str], datetime, float]]] = defaultdict(list)
        errors: dict[str, str] = {}
        for chunk in _chunks(ids, BATCH):
            self.calls["metrics"] += 1
            try:
                kwargs: dict[str, Any] = {"filter": filt} if filt else {}
                results = self._metrics.query_resources(
                    resource_ids=list(chunk),
                    metric_namespace=namespace,
                    metric_names=names,
                    timespan=(start, end),
                    granularity=MINUTE,
                    aggregations=aggregations,
                    **kwargs,
                )
            except AzureError as exc:
                status = getattr(exc, "status_code", None)
                for rid in chunk:
                    errors[rid.lower()] = f"metrics query failed ({f'HTTP {status}' if status else type(exc).__name__})"
                continue
            for result in results:
                for metric in result.metrics:
                    # The result names no resource; each metric's id is "{resource id}/providers/...".
                    rid = str(metric.id or "").lower().split("/providers/microsoft.insights/metrics/")[0]
                    for ts in metric.timeseries:
                        dims = {str(k).lower(): str(v).lower() for k, v in (ts.metadata_values or {}).items()}
                        for point in ts.data:
                            value = point.total if point.total is not None else point.average
                            if value is None:
                                continue  # an empty minute carries no value keys: no data, not zero
                            out[rid].append((metric.name, dims, _minute(point.timestamp), float(value)))
        return out, errors

    def _deployment(
        self,
        q: MetricsQuery,
        name: str,
        counts: dict[str, list[tuple[str, dict[str, str], datetime, float]]],
        latency: dict[str, list[tuple[str, dict[str, str], datetime, float]]],
        resources: dict[str, list[tuple[str, dict[str, str], datetime, float]]],
        samples: dict[str, list[float]] | None,
    ) -> DeploymentMetrics:
        ep_key = q.endpoint.arm_id.lower()
        lo, hi = _minute(q.start), q.end
        requests = errors = 0
        for _, dims, t, v in counts.get(ep_key, []):
            if dims.get("deployment") != name.lower() or not lo <= t < hi:
                continue
            requests += int(v)
            if is_error(dims.get("statuscode", ""), dims.get("modelstatuscode", ""), q.error_codes):
                errors += int(v)
        metric = f"RequestLatency_P{int(q.percentile)}"
        per_minute = sorted(
            (t, v)
            for m, dims, t, v in latency.get(ep_key, [])
            if m == metric and dims.get("deployment") == name.lower() and lo <= t < hi
        )
        res = sorted(
            (t, m, v) for m, _, t, v in resources.get(q.endpoint.deployment_arm_id(name).lower(), []) if lo <= t < hi
        )
        cpu = tuple(v for _, m, v in res if m == "CpuUtilizationPercentage")
        memory = tuple(v for _, m, v in res if m == "CpuMemoryUtilizationPercentage")
        kind: Literal["request", "minute"]
        if samples is not None:
            lat: tuple[float, ...] = tuple(samples.get(name.lower(), []))
            kind = "request"
        else:
            lat, kind = tuple(v for _, v in per_minute), "minute"
        return DeploymentMetrics(
            requests=requests,
            errors=errors,
            latency_ms=lat,
            latency_kind=kind,
            cpu_percent=cpu,
            memory_percent=memory,
        )

    # -- traffic log ------------------------------------------------------------------------------

    def _request_samples(self, q: MetricsQuery) -> dict[str, list[float]] | None:
        """Per-request durations by deployment; None (use per-minute percentiles) if unavailable."""
        if self._logs is None or self._workspace_id is None:
            return None
        from azure.core.exceptions import AzureError
        from azure.monitor.query import LogsQueryStatus

        deployments = [d for d in (q.blue, q.green) if d]
        try:
            kql = traffic_log_query(q.endpoint.name, deployments, q.start, q.end, self._log_sample)
        except ValueError:
            return None
        self.calls["logs"] += 1
        try:
            response = self._logs.query_workspace(self._workspace_id, kql, timespan=(q.start, q.end))
        except AzureError:
            return None
        if response.status != LogsQueryStatus.SUCCESS:
            return None  # partial results would bias the comparison: fall back to metrics
        out: dict[str, list[float]] = defaultdict(list)
        for table in response.tables:
            for row in table.rows:
                duration = row["TotalDurationMs"]
                if duration is not None:
                    out[str(row["DeploymentName"]).lower()].append(float(duration))
        return out
