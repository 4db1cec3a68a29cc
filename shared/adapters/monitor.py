"""MetricsSource over Azure Monitor: metrics:getBatch (azure-monitor-querymetrics) and, when a Log
Analytics workspace is configured, per-request durations from AmlOnlineEndpointTrafficLog
(azure-monitor-query).

How the numbers are read (sources in docs/AZURE-FACTS-USED.md and shared/adapters/metric_catalogue.py):

- Batching. `metrics:getBatch` is `POST https://{region}.metrics.monitor.azure.com/subscriptions/
  {subscriptionId}/metrics:getBatch` and every resource id of a call must be in that subscription
  and region (REST spec metricBatch.json, 2024-02-01). Queries are grouped by subscription and
  region; a group is answered in calls of at most 50 resource ids over one time range (the union
  of the windows, sliced per rollout afterwards).
- Requests. `RequestsPerMinute` ("the number of requests sent to online endpoint within a minute")
  supports only the Average aggregation. Azure keeps one value a minute per combination of
  dimension values and an Average is Sum/Count of the values in the bucket, collapsed over every
  dimension not split (metrics-aggregation-explained). Split by every dimension that partitions
  requests (deployment x statusCode x modelStatusCode; statusCodeClass follows from statusCode) at
  PT1M, each series' Average is that minute's request count for that combination; the window's
  requests are the sum over minutes and series. Unsplit, the Average would be a mean over status
  codes, not a count.
- Truncation. With a filter, Azure returns at most `top` series per resource (default 10). We ask
  for `MAX_SERIES`, ordered by average descending, and treat a metric that comes back with that
  many series as partial: the rollout gets a ProviderError rather than a judgement on some series.
  Where one filtered call asks several metrics (a latency and a tail percentile), the series of all
  of them for a resource are counted against `top` too, in case Azure counts `top` per resource
  (the spec's words) rather than per metric.
- Latency. `RequestLatency_P50/P90/P95/P99` (Average, by deployment). A rollout reads the latency
  check's percentile and, when the tail check runs (`MetricsQuery.tail_percentile`), the tail's, both
  in one call (comma-separated `metricnames`); rollouts asking for the same percentiles share calls,
  so the tail adds a metric name, never a call per rollout, and a refused percentile fails only the
  rollouts that ask for it. A tail percentile Azure does not publish, or a tail metric Azure did not
  answer, is a ProviderError for that rollout: a check that cannot run is never passed.
- Per minute. Each deployment's window is also kept minute by minute (`DeploymentMetrics.minutes`):
  the requests and errors of the minute, counted the same way as the totals (which are their
  sums), and the minute's latency and tail percentiles. Minutes with no requests and no latency
  value are left out.
- Mirrored traffic. Whether endpoint-scope metrics count mirrored copies is not documented. The
  deployment-scope `RequestsPerMinute` ("sent to online deployment", by envoy_response_code) counts
  what the deployment received, and mirrored copies are "copied and submitted to the green
  deployment". When green's deployment-scope count is clearly above its endpoint-scope count, the
  endpoint view misses green's requests: blue and green are then both read at deployment scope
  (counts, errors and latency), so they are still compared like with like.
- Traffic log. Per-request durations come from a KQL query written in documented forms only; a
  failed or partial answer, or no rows where metrics count many requests, is a ProviderError for
  that rollout: never a silent fallback.

Failures come back as ProviderError values, one per query, with a reason; fetch() never raises.
"""

from __future__ import annotations

import math
import re
import threading
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, Literal
from urllib.parse import urlsplit

from shared.adapters.metric_catalogue import (
    DEPLOYMENT_NAMESPACE,
    ENDPOINT_NAMESPACE,
    MetricRequestError,
    latency_metric,
    require,
)
from shared.adapters.traffic_log_batch import batch_key, fetch_batch_samples
from shared.ports import MetricsQuery, ProviderError, Timeline
from shared.rollout.analysis import DeploymentMetrics, MinuteSample, WindowMetrics
from shared.rollout.model import is_valid_resource_name

if TYPE_CHECKING:
    from azure.core.credentials import TokenCredential

__all__ = [
    "DEFAULT_METRICS_ENDPOINT",
    "DEPLOYMENT_NAMESPACE",
    "ENDPOINT_NAMESPACE",
    "MonitorMetrics",
    "audience_for",
    "is_error",
    "metrics_url",
    "traffic_log_query",
]

DEFAULT_METRICS_ENDPOINT = "https://{region}.metrics.monitor.azure.com"
DEFAULT_LOGS_ENDPOINT = "https://api.loganalytics.io"
BATCH = 50  # resource ids per metrics:getBatch call
MAX_SERIES = 1000  # `top`: series asked per resource and metric; this many back means some were cut
MAX_FILTER_NAMES = 20  # deployment names in one call's filter (it travels in the URL)
LOG_SAMPLE = 5000  # traffic-log rows per deployment and query
MINUTE = timedelta(minutes=1)
GRAIN = "PT1M"
# Green's requests at deployment scope above its endpoint-scope count by more than this: the
# endpoint's metrics do not show all of green's requests (mirrored copies). Direct invocations
# (smoke tests) are counted at deployment scope only, hence the allowance.
MIRROR_GAP_MIN = 20
MIRROR_GAP_SHARE = 0.05
# A deployment with this many traffic-log rows expected but none returned: the log does not cover it.
MIN_EXPECTED_LOG_ROWS = 30
# The traffic log must hold at least this share of the requests metrics counted (or of the sample).
LOG_COVERAGE_MIN = 0.8
_REGION = re.compile(r"^[a-z0-9]+$")
_ENDPOINT_ID = re.compile(
    # Resource group names may hold any Unicode letter or digit, `_`, `-`, `.`, `(`, `)` (ARM naming
    # rules); never a quote or a backslash, so the id is safe inside a KQL string literal.
    r"^/subscriptions/[0-9A-Za-z-]+/resourceGroups/[\w.()-]+/providers/"
    r"Microsoft\.MachineLearningServices/workspaces/[A-Za-z0-9_-]+/onlineEndpoints/[A-Za-z0-9-]+\Z",
    re.IGNORECASE,
)

Point = tuple[str, dict[str, str], datetime, float]  # (metric, dimensions lower-cased, minute, value)


def is_error(status: str, model_status: str, codes: Iterable[str]) -> bool:
    for code in codes:
        if code.endswith("xx") and status[:1] == code[:1]:
            return True
        if status == code:
            return True
    return False


def is_deployment_error(envoy_code: str, codes: Iterable[str]) -> bool:
    """An error as the policy counts it, from a deployment-scope `envoy_response_code`. Clients see
    a model's 500 as 424 (AZURE-FACTS); at the deployment it is the model's own 5xx, so a policy that
    counts 424 counts the deployment's 5xx too (UNVERIFIED: the code envoy reports for it)."""
    codes = tuple(codes)
    return is_error(envoy_code, "", codes) or ("424" in codes and envoy_code[:1] == "5")


def metrics_url(template: str, region: str) -> str:
    """The metrics endpoint for a region: `{region}` in the setting is replaced by the endpoint's ARM
    location ("eastus"); a URL without the placeholder is used as it is, for every region."""
    if "{region}" not in template:
        return template.rstrip("/")
    name = region.replace(" ", "").lower()
    if not name:
        raise ValueError(
            "the endpoint's Azure region is unknown, and SAFE_ROLLOUT_METRICS_ENDPOINT needs it ({region})"
        )
    if not _REGION.match(name):
        raise ValueError(f"not an Azure region name: {region[:40]!r}")
    return template.replace("{region}", name).rstrip("/")


def audience_for(endpoint: str) -> str:
    """The token audience of a Log Analytics endpoint is the endpoint itself (the SDK's own default;
    sovereign clouds: https://api.loganalytics.us, ...): scheme and host, without /v1."""
    parts = urlsplit(endpoint)
    return f"{parts.scheme}://{parts.netloc}" if parts.scheme and parts.netloc else endpoint.rstrip("/")


def _kql_datetime(t: datetime) -> str:
    """A datetime literal in the documented ISO 8601 form `2026-11-22T12:00:00Z` (UTC)."""
    if t.tzinfo is None:
        raise ValueError("refusing to query the traffic log with a naive datetime")
    t = t.astimezone(UTC)
    text = t.strftime("%Y-%m-%dT%H:%M:%S")
    return f"datetime({text}.{t.microsecond:06d}Z)" if t.microsecond else f"datetime({text}Z)"


def traffic_log_query(
    endpoint: str,
    deployments: Sequence[str],
    start: datetime,
    end: datetime,
    sample: int,
    *,
    resource_id: str | None = None,
) -> str:
    """KQL for per-request durations, in documented forms only: ISO 8601 datetime literals,
    case-insensitive `=~` / `in~` on names (ARM names are case-insensitive), the endpoint's
    `_ResourceId`, and at most `sample` random rows per deployment. Names are checked against
    Azure's naming rules (letters, digits, hyphens) and the resource id against the shape of an
    online endpoint's id before they are placed in string literals; nothing else varies."""
    for name in (endpoint, *deployments):
        if not is_valid_resource_name(name):
            raise ValueError(f"refusing to query the traffic log for an invalid name: {name[:64]!r}")
    if resource_id is not None and not _ENDPOINT_ID.match(resource_id):
        raise ValueError(f"refusing to query the traffic log for an invalid resource id: {resource_id[:200]!r}")
    if not deployments:
        raise ValueError("refusing to query the traffic log for no deployment")
    names = ", ".join(f"'{d}'" for d in deployments)
    where_resource = f" | where _ResourceId =~ '{resource_id}'" if resource_id is not None else ""
    return (
        "AmlOnlineEndpointTrafficLog"
        f" | where TimeGenerated >= {_kql_datetime(start)} and TimeGenerated < {_kql_datetime(end)}"
        f"{where_resource}"
        f" | where EndpointName =~ '{endpoint}' and DeploymentName in~ ({names})"
        f" | partition hint.strategy=native by DeploymentName (sample {int(sample)})"
        " | project DeploymentName, TotalDurationMs = todouble(TotalDurationMs),"
        " ResponseCode = toint(ResponseCode), ModelStatusCode = toint(ModelStatusCode)"
    )


def _chunks(items: Sequence[str], size: int) -> list[Sequence[str]]:
    return [items[i : i + size] for i in range(0, len(items), size)]


def _minute(t: datetime) -> datetime:
    return t.replace(second=0, microsecond=0)


def _azure_reason(exc: Exception) -> str:
    status = getattr(exc, "status_code", None)
    error = getattr(exc, "error", None)
    code = getattr(error, "code", None)
    message = str(getattr(error, "message", None) or getattr(exc, "message", None) or exc).splitlines()[0][:300]
    what = f"HTTP {status}" if status else type(exc).__name__
    return f"{what}{f' {code}' if code else ''}: {message}"


@dataclass
class _Batch:
    """Points and failures of one metric group, keyed by lower-cased resource id."""

    points: dict[str, list[Point]] = field(default_factory=lambda: defaultdict(list))
    errors: dict[str, str] = field(default_factory=dict)


@dataclass
class _Counts:
    requests: float = 0.0
    errors: float = 0.0
    throttled: float = 0.0  # answered 429


@dataclass(frozen=True)
class _Percentiles:
    """The latency metrics one rollout reads: its latency check's and, when the tail check runs, its
    tail check's (`RequestLatency_Pxx`)."""

    latency: str
    tail: str | None = None

    @property
    def names(self) -> tuple[str, ...]:
        """The metric names of one call (a tail equal to the latency percentile is asked once)."""
        return tuple(sorted({self.latency, *((self.tail,) if self.tail else ())}))

    def what(self) -> str:
        if self.tail is None or self.tail == self.latency:
            return f"latency ({self.latency})" if self.tail is None else f"latency and tail latency ({self.latency})"
        return f"latency ({self.latency}) and tail latency ({self.tail})"


class MonitorMetrics:
    def __init__(
        self,
        credential: TokenCredential,
        *,
        metrics_endpoint: str = DEFAULT_METRICS_ENDPOINT,
        logs_workspace_id: str | None = None,
        logs_endpoint: str = DEFAULT_LOGS_ENDPOINT,
        logs_audience: str | None = None,
        transport: Any = None,
        log_sample: int = LOG_SAMPLE,
        max_series: int = MAX_SERIES,
    ) -> None:
        self._credential = credential
        self._template = metrics_endpoint
        self._kwargs: dict[str, Any] = {"transport": transport} if transport is not None else {}
        self._clients: dict[str, Any] = {}
        self._logs: Any = None
        if logs_workspace_id:
            from azure.monitor.query import LogsQueryClient

            self._logs = LogsQueryClient(
                credential,
                endpoint=f"{logs_endpoint.rstrip('/')}/v1",
                audience=logs_audience or audience_for(logs_endpoint),
                **self._kwargs,
            )
        self._workspace_id = logs_workspace_id
        self._log_sample = log_sample
        self._max_series = max_series
        self.calls: dict[str, int] = {"metrics": 0, "logs": 0}
        self._batch_logs = threading.local()  # one traffic-log query per batch (traffic_log_batch.py)

    # -- public -----------------------------------------------------------------------------------

    def fetch(self, queries: Sequence[MetricsQuery]) -> list[WindowMetrics | ProviderError]:
        results: list[WindowMetrics | ProviderError | None] = [None] * len(queries)
        try:
            # One group per subscription and region (a literal URL serves every region, but a batch
            # still holds one region: a resource Azure refuses there fails its own group only).
            groups: dict[tuple[str, str, str], list[int]] = defaultdict(list)
            for i, q in enumerate(queries):
                try:
                    url = metrics_url(self._template, q.region)
                except ValueError as exc:
                    results[i] = ProviderError(f"metrics not read: {exc}")
                    continue
                region = q.region.replace(" ", "").lower()
                groups[(q.endpoint.workspace.subscription_id.lower(), region, url)].append(i)
            for (_, _, url), indices in groups.items():
                try:
                    found = self._fetch_group(url, [queries[i] for i in indices])
                except Exception as exc:  # a bug or an SDK surprise: this group fails, never the tick
                    reason = f"metrics adapter failed: {type(exc).__name__}: {str(exc)[:300]}"
                    found = [ProviderError(reason) for _ in indices]
                for i, result in zip(indices, found, strict=True):
                    results[i] = result
        except Exception as exc:
            reason = f"metrics adapter failed: {type(exc).__name__}: {str(exc)[:300]}"
            results = [r if r is not None else ProviderError(reason) for r in results]
        return [r if r is not None else ProviderError("metrics adapter answered nothing") for r in results]

    def timeline(self, query: MetricsQuery) -> Timeline | ProviderError:
        try:
            return self._timeline(query)
        except Exception as exc:
            return ProviderError(f"metrics adapter failed: {type(exc).__name__}: {str(exc)[:300]}")

    # -- one subscription and region ----------------------------------------------------------------

    def _client(self, url: str) -> Any:
        client = self._clients.get(url)
        if client is None:
            from azure.monitor.querymetrics import MetricsClient

            client = self._clients[url] = MetricsClient(url, self._credential, **self._kwargs)
        return client

    def _fetch_group(self, url: str, qs: Sequence[MetricsQuery]) -> list[WindowMetrics | ProviderError]:
        self._batch_logs.samples = self._prefetch_logs(qs)
        start = _minute(min(q.start for q in qs))
        end = max(q.end for q in qs)
        counts = self._endpoint_counts(url, qs, start, end)
        # Each rollout's latency (and tail) percentile metrics, read together: one call per distinct
        # set of metric names, shared by every rollout that asks for that set.
        wanted = [self._percentiles(q) for q in qs]
        ok = [i for i, w in enumerate(wanted) if isinstance(w, _Percentiles)]

        def names_of(i: int) -> tuple[str, ...]:
            w = wanted[i]
            assert isinstance(w, _Percentiles)
            return w.names

        latency: dict[tuple[str, ...], _Batch] = {}
        for key in sorted({names_of(i) for i in ok}):
            users = [qs[i] for i in ok if names_of(i) == key]
            latency[key] = self._by_deployment(url, users, ENDPOINT_NAMESPACE, list(key), start, end)
        greens = sorted({q.endpoint.deployment_arm_id(q.green) for q in qs})
        # CPU and memory of each green (a failed read is a provider error for that rollout), and of
        # blue where the capacity check compares them (unread, that check has no data).
        blues_too = {q.endpoint.deployment_arm_id(q.blue) for q in qs if q.blue and q.blue_resources}
        resources = self._series(
            url,
            sorted({*greens, *blues_too}),
            DEPLOYMENT_NAMESPACE,
            ["CpuUtilizationPercentage", "CpuMemoryUtilizationPercentage"],
            {},
            start,
            end,
        )
        served = self._series(
            url, greens, DEPLOYMENT_NAMESPACE, ["RequestsPerMinute"], {"envoy_response_code": None}, start, end
        )
        # Where the endpoint's metrics miss green's requests, read both deployments at deployment scope.
        at_deployment = [i for i in ok if self._endpoint_misses_green(qs[i], counts, served)]
        dep_latency: dict[tuple[str, ...], _Batch] = {}
        if at_deployment:
            blues = sorted({qs[i].endpoint.deployment_arm_id(b) for i in at_deployment if (b := qs[i].blue)})
            extra = self._series(
                url, blues, DEPLOYMENT_NAMESPACE, ["RequestsPerMinute"], {"envoy_response_code": None}, start, end
            )
            served.points.update(extra.points)
            served.errors.update(extra.errors)
            for key in sorted({names_of(i) for i in at_deployment}):
                users = [qs[i] for i in at_deployment if names_of(i) == key]
                ids = sorted({q.endpoint.deployment_arm_id(d) for q in users for d in (q.blue, q.green) if d})
                dep_latency[key] = self._series(url, ids, DEPLOYMENT_NAMESPACE, list(key), {}, start, end)
        out: list[WindowMetrics | ProviderError] = []
        for i, q in enumerate(qs):
            w = wanted[i]
            if not isinstance(w, _Percentiles):
                out.append(w)
                continue
            mode: Literal["endpoint", "deployment"] = "deployment" if i in at_deployment else "endpoint"
            try:
                out.append(
                    self._window(q, w, mode, counts, latency[w.names], served, dep_latency.get(w.names), resources)
                )
            except Exception as exc:
                out.append(ProviderError(f"metrics adapter failed: {type(exc).__name__}: {str(exc)[:300]}"))
        return out

    @staticmethod
    def _percentiles(q: MetricsQuery) -> _Percentiles | ProviderError:
        """The latency metrics a rollout needs, or why they cannot be read (a percentile Azure ML
        does not publish: its check cannot run, so the rollout is not judged)."""
        try:
            latency = latency_metric(q.percentile)
        except (MetricRequestError, ValueError, TypeError, OverflowError) as exc:
            return ProviderError(f"latency percentile P{q.percentile:g} not read: {exc}")
        if q.tail_percentile is None:
            return _Percentiles(latency)
        try:
            tail = latency_metric(q.tail_percentile)
        except (MetricRequestError, ValueError, TypeError, OverflowError) as exc:
            return ProviderError(
                f"tail latency percentile P{q.tail_percentile:g} not read: {exc}; the tail check cannot run"
            )
        return _Percentiles(latency, tail)

    def _window(
        self,
        q: MetricsQuery,
        pct: _Percentiles,
        mode: Literal["endpoint", "deployment"],
        counts: _Batch,
        latency: _Batch,
        served: _Batch,
        dep_latency: _Batch | None,
        resources: _Batch,
    ) -> WindowMetrics | ProviderError:
        ep = q.endpoint.arm_id.lower()
        names = [d for d in (q.blue, q.green) if d]
        tail_note = "; the tail check cannot run" if pct.tail is not None else ""
        if mode == "endpoint":
            for batch, what in ((counts, "request counts"), (latency, pct.what())):
                if ep in batch.errors:
                    return ProviderError(f"{what} not read: {batch.errors[ep]}{tail_note if batch is latency else ''}")
        else:
            if dep_latency is None:
                return ProviderError("latency at deployment scope not read")
            for name in names:
                rid = q.endpoint.deployment_arm_id(name).lower()
                for batch, what in (
                    (served, "deployment-scope request counts"),
                    (dep_latency, f"deployment-scope {pct.what()}"),
                ):
                    if rid in batch.errors:
                        note = tail_note if batch is dep_latency else ""
                        return ProviderError(f"{what} of {name} not read: {batch.errors[rid]}{note}")
        green_rid = q.endpoint.deployment_arm_id(q.green).lower()
        if green_rid in resources.errors:
            # CPU and memory ceilings are checks too: unread, the stage is not judged (never passed).
            return ProviderError(f"green's CPU and memory not read: {resources.errors[green_rid]}")
        samples = self._request_samples(q)
        if isinstance(samples, ProviderError):
            return samples
        metrics: dict[str, DeploymentMetrics] = {}
        lo, hi = _minute(q.start), q.end
        for name in names:
            rid = q.endpoint.deployment_arm_id(name).lower()
            if mode == "endpoint":
                by_minute = self._endpoint_minutes(q, name, counts)
                points = [
                    (m, t, v)
                    for m, dims, t, v in latency.points.get(ep, [])
                    if dims.get("deployment") == name.lower() and lo <= t < hi
                ]
            else:
                by_minute = self._deployment_minutes(q, name, served)
                points = [
                    (m, t, v) for m, _, t, v in (dep_latency.points if dep_latency else {}).get(rid, []) if lo <= t < hi
                ]
            values: dict[str, dict[datetime, float]] = defaultdict(dict)
            for m, t, v in points:
                values[m.lower()][t] = v
            lat_by_minute = values.get(pct.latency.lower(), {})
            tail_by_minute = values.get(pct.tail.lower(), {}) if pct.tail is not None else {}
            minutes = []
            for t in sorted(set(by_minute) | set(lat_by_minute) | set(tail_by_minute)):
                c = by_minute.get(t, _Counts())
                sample = MinuteSample(
                    at=t,
                    requests=round(c.requests),
                    errors=round(c.errors),
                    latency_ms=lat_by_minute.get(t),
                    tail_ms=tail_by_minute.get(t),
                )
                if sample.requests or sample.latency_ms is not None or sample.tail_ms is not None:
                    minutes.append(sample)
            # The totals are the minutes' sums (a minute left out holds no request, hence no error).
            requests = sum(s.requests for s in minutes)
            res = sorted((t, m, v) for m, _, t, v in resources.points.get(rid, []) if lo <= t < hi)
            kind: Literal["request", "minute"]
            if samples is not None:
                lat: tuple[float, ...] = tuple(samples.get(name.lower(), []))
                kind = "request"
                problem = self._log_coverage(name, requests, len(lat))
                if problem:
                    return ProviderError(problem)
            else:
                lat, kind = tuple(lat_by_minute[t] for t in sorted(lat_by_minute)), "minute"
            metrics[name] = DeploymentMetrics(
                requests=requests,
                errors=sum(s.errors for s in minutes),
                latency_ms=lat,
                latency_kind=kind,
                minutes=tuple(minutes),
                cpu_percent=tuple(v for _, m, v in res if m == "CpuUtilizationPercentage"),
                memory_percent=tuple(v for _, m, v in res if m == "CpuMemoryUtilizationPercentage"),
                throttled=round(sum(by_minute[t].throttled for t in by_minute)),
            )
        return WindowMetrics(start=q.start, end=q.end, green=metrics[q.green], blue=metrics[q.blue] if q.blue else None)

    def _log_coverage(self, name: str, requests: int, rows: int) -> str | None:
        """The traffic log must cover the window metrics counted: no rows for a deployment that served
        many requests (diagnostic settings off, mirrored copies not logged), or far fewer rows than
        the requests (Log Analytics has not caught up with the newest minutes; its ingestion delay
        is UNVERIFIED here, see docs/AZURE-FACTS-USED.md). Judging on what it holds would miss
        what happened last, so the window is not judged."""
        expected = min(requests, self._log_sample)
        if expected < MIN_EXPECTED_LOG_ROWS:
            return None
        if rows == 0:
            return (
                f"the traffic log has no rows for {name} although metrics count {requests} requests "
                "(is AmlOnlineEndpointTrafficLog enabled in the endpoint's diagnostic settings?)"
            )
        if rows < LOG_COVERAGE_MIN * expected:
            return (
                f"the traffic log holds {rows} rows for {name} where metrics count {requests} requests "
                f"(at least {LOG_COVERAGE_MIN:.0%} of {expected} expected): Log Analytics has not caught up "
                "with the window; if this persists, raise the policy's analysis.ingestion_lag"
            )
        return None

    def _endpoint_misses_green(self, q: MetricsQuery, counts: _Batch, served: _Batch) -> bool:
        rid = q.endpoint.deployment_arm_id(q.green).lower()
        if rid in served.errors or q.endpoint.arm_id.lower() in counts.errors:
            return False  # the cross-check is unavailable: endpoint scope alone (never more than it shows)
        at_endpoint = self._endpoint_count(q, q.green, counts).requests
        at_deployment = self._deployment_count(q, q.green, served).requests
        return at_deployment - at_endpoint > max(MIRROR_GAP_MIN, MIRROR_GAP_SHARE * at_deployment)

    @classmethod
    def _endpoint_count(cls, q: MetricsQuery, name: str, counts: _Batch) -> _Counts:
        return cls._total(cls._endpoint_minutes(q, name, counts).values())

    @classmethod
    def _deployment_count(cls, q: MetricsQuery, name: str, served: _Batch) -> _Counts:
        return cls._total(cls._deployment_minutes(q, name, served).values())

    @staticmethod
    def _total(minutes: Iterable[_Counts]) -> _Counts:
        out = _Counts()
        for c in minutes:
            out.requests += c.requests
            out.errors += c.errors
        return out

    @staticmethod
    def _endpoint_minutes(q: MetricsQuery, name: str, counts: _Batch) -> dict[datetime, _Counts]:
        """A deployment's requests and errors per minute, from the endpoint's RequestsPerMinute."""
        lo, hi = _minute(q.start), q.end
        out: dict[datetime, _Counts] = defaultdict(_Counts)
        for _, dims, t, v in counts.points.get(q.endpoint.arm_id.lower(), []):
            if dims.get("deployment") != name.lower() or not lo <= t < hi:
                continue
            out[t].requests += v
            if is_error(dims.get("statuscode", ""), dims.get("modelstatuscode", ""), q.error_codes):
                out[t].errors += v
            if dims.get("statuscode", "") == "429":
                out[t].throttled += v
        return out

    @staticmethod
    def _deployment_minutes(q: MetricsQuery, name: str, served: _Batch) -> dict[datetime, _Counts]:
        """A deployment's requests and errors per minute, from its own RequestsPerMinute."""
        lo, hi = _minute(q.start), q.end
        out: dict[datetime, _Counts] = defaultdict(_Counts)
        for _, dims, t, v in served.points.get(q.endpoint.deployment_arm_id(name).lower(), []):
            if not lo <= t < hi:
                continue
            out[t].requests += v
            if is_deployment_error(dims.get("envoy_response_code", ""), q.error_codes):
                out[t].errors += v
            if dims.get("envoy_response_code", "") == "429":
                out[t].throttled += v
        return out

    # -- metrics ----------------------------------------------------------------------------------

    def _endpoint_counts(self, url: str, qs: Sequence[MetricsQuery], start: datetime, end: datetime) -> _Batch:
        """Request counts by deployment and status: split by every dimension that partitions requests."""
        return self._by_deployment(
            url,
            qs,
            ENDPOINT_NAMESPACE,
            ["RequestsPerMinute"],
            start,
            end,
            {"statusCode": None, "modelStatusCode": None},
        )

    def _by_deployment(
        self,
        url: str,
        qs: Sequence[MetricsQuery],
        namespace: str,
        metrics: Sequence[str],
        start: datetime,
        end: datetime,
        more: dict[str, tuple[str, ...] | None] | None = None,
    ) -> _Batch:
        """Endpoint-scope metrics (asked together, one call) split by deployment, filtered to the
        deployments the queries compare. Endpoints go 50 to a call (the batch API's limit)."""
        wanted: dict[str, set[str]] = defaultdict(set)
        for q in qs:
            wanted[q.endpoint.arm_id] |= {d.lower() for d in (q.blue, q.green) if d}
        out = _Batch()
        ids = sorted(wanted)
        for chunk in _chunks(ids, BATCH):
            names: set[str] = set().union(*(wanted[rid] for rid in chunk))
            # Few names: filter to them. Many (endpoints with other deployment names): every
            # deployment ('*'), so 50 endpoints still take one call; `top` and the truncation check
            # keep that safe (an endpoint holds at most 20 deployments).
            self._merge(
                out,
                self._call(
                    url,
                    list(chunk),
                    namespace,
                    metrics,
                    names if len(names) <= MAX_FILTER_NAMES else None,
                    start,
                    end,
                    more,
                ),
            )
        return out

    def _call(
        self,
        url: str,
        ids: list[str],
        namespace: str,
        metrics: Sequence[str],
        names: set[str] | None,
        start: datetime,
        end: datetime,
        more: dict[str, tuple[str, ...] | None] | None,
    ) -> _Batch:
        split: dict[str, tuple[str, ...] | None] = {
            "deployment": tuple(sorted(names)) if names is not None else None,
            **(more or {}),
        }
        return self._series(url, ids, namespace, list(metrics), split, start, end)

    @staticmethod
    def _merge(into: _Batch, batch: _Batch) -> None:
        for rid, points in batch.points.items():
            into.points[rid].extend(points)
        into.errors.update(batch.errors)

    def _series(
        self,
        url: str,
        ids: Sequence[str],
        namespace: str,
        names: list[str],
        split: dict[str, tuple[str, ...] | None],
        start: datetime,
        end: datetime,
    ) -> _Batch:
        """Average values of `names` for `ids`, split by the dimensions in `split` (None: every value)."""
        # Only what the supported-metrics reference allows is ever asked (a bug otherwise, raised here).
        require(namespace, names, ["Average"], split, GRAIN)
        filt = " and ".join(
            f"{dim} eq '*'" if values is None else " or ".join(f"{dim} eq '{v}'" for v in values)
            for dim, values in split.items()
        )
        out = _Batch()
        for chunk in _chunks(list(ids), BATCH):
            self.calls["metrics"] += 1
            kwargs: dict[str, Any] = (
                {"filter": filt, "max_results": self._max_series, "order_by": "average desc"} if filt else {}
            )
            try:
                results = self._client(url).query_resources(
                    resource_ids=list(chunk),
                    metric_namespace=namespace,
                    metric_names=names,
                    timespan=(start, end),
                    granularity=MINUTE,
                    aggregations=["Average"],
                    **kwargs,
                )
            except Exception as exc:  # AzureError, or the SDK refusing its input (ValueError)
                reason = f"metrics query failed ({_azure_reason(exc)})"
                for rid in chunk:
                    out.errors[rid.lower()] = reason
                continue
            answered: dict[str, set[str]] = defaultdict(set)  # resource -> metric names answered
            series: dict[str, int] = defaultdict(int)  # resource -> series returned, every metric
            for result in results:
                wrong_grain = result.granularity is not None and result.granularity != MINUTE
                for metric in result.metrics:
                    # The result names no resource; each metric's id is "{resource id}/providers/...".
                    rid = str(metric.id or "").lower().split("/providers/microsoft.insights/metrics/")[0]
                    answered[rid].add(str(metric.name).lower())
                    series[rid] += len(metric.timeseries)
                    if wrong_grain:
                        out.errors[rid] = f"Azure answered at {result.granularity}, not one minute"
                        continue
                    if filt and len(metric.timeseries) >= self._max_series:
                        out.errors[rid] = (
                            f"{metric.name}: Azure returned {len(metric.timeseries)} series, the most asked for "
                            "(top); the rest were cut, so the counts would be partial"
                        )
                        continue
                    for ts in metric.timeseries:
                        dims = {str(k).lower(): str(v).lower() for k, v in (ts.metadata_values or {}).items()}
                        for point in ts.data:
                            if point.average is None:
                                continue  # an empty minute carries no value keys: no data, not zero
                            value = float(point.average)
                            if math.isfinite(value):
                                out.points[rid].append((metric.name, dims, _minute(point.timestamp), value))
            for rid in chunk:
                key = rid.lower()
                missing = [n for n in names if n.lower() not in answered.get(key, set())]
                if missing:
                    # Every metric asked must come back: one missing (a tail percentile, say) is not a
                    # metric without data, and its check cannot run.
                    out.errors.setdefault(key, f"Azure returned no {', '.join(missing)} for the resource")
                elif filt and len(names) > 1 and series[key] >= self._max_series:
                    # Should `top` count series per resource rather than per metric (the spec says
                    # "per resource ID"), several metrics in one call share it.
                    out.errors.setdefault(
                        key,
                        f"{', '.join(names)}: Azure returned {series[key]} series for the resource, the most "
                        "asked for (top); the rest may have been cut, so the values would be partial",
                    )
        return out

    # -- timeline ---------------------------------------------------------------------------------

    def _timeline(self, query: MetricsQuery) -> Timeline | ProviderError:
        try:
            url = metrics_url(self._template, query.region)
            metric = latency_metric(query.percentile)
        except ValueError as exc:
            return ProviderError(f"metrics not read: {exc}")
        start, end = _minute(query.start), query.end
        ep_key = query.endpoint.arm_id.lower()
        counts = self._endpoint_counts(url, [query], start, end)
        latency = self._by_deployment(url, [query], ENDPOINT_NAMESPACE, [metric], start, end)
        for batch in (counts, latency):
            if ep_key in batch.errors:
                return ProviderError(batch.errors[ep_key])
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
            for _, dims, t, v in counts.points.get(ep_key, []):
                if dims.get("deployment") == name.lower():
                    total[t] += v
                    if is_error(dims.get("statuscode", ""), dims.get("modelstatuscode", ""), query.error_codes):
                        bad[t] += v
            lat = {t: v for _, dims, t, v in latency.points.get(ep_key, []) if dims.get("deployment") == name.lower()}
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

    # -- traffic log ------------------------------------------------------------------------------

    def _prefetch_logs(self, qs: Sequence[MetricsQuery]) -> dict[Any, Any]:
        """Several rollouts of one subscription and region: their traffic log in one query."""
        if self._logs is None or self._workspace_id is None or len(qs) < 2:
            return {}
        self.calls["logs"] += 1
        return fetch_batch_samples(self._logs, self._workspace_id, qs, self._log_sample)

    def _request_samples(self, q: MetricsQuery) -> dict[str, list[float]] | ProviderError | None:
        """Per-request durations by deployment; None when no workspace is configured; a ProviderError
        when the log cannot be read completely (partial results would bias the comparison)."""
        if self._logs is None or self._workspace_id is None:
            return None
        prefetched: dict[Any, dict[str, list[float]] | ProviderError] = getattr(self._batch_logs, "samples", None) or {}
        if (found := prefetched.get(batch_key(q))) is not None:
            return found
        from azure.monitor.query import LogsQueryStatus

        deployments = [d for d in (q.blue, q.green) if d]
        try:
            kql = traffic_log_query(
                q.endpoint.name, deployments, q.start, q.end, self._log_sample, resource_id=q.endpoint.arm_id
            )
        except ValueError as exc:
            return ProviderError(f"traffic log not read: {exc}")
        self.calls["logs"] += 1
        try:
            response = self._logs.query_workspace(self._workspace_id, kql, timespan=(q.start, q.end))
        except Exception as exc:  # HttpResponseError, or the SDK refusing its input
            return ProviderError(f"traffic log query failed ({_azure_reason(exc)})")
        if response.status != LogsQueryStatus.SUCCESS:
            error = getattr(response, "partial_error", None)
            detail = f": {getattr(error, 'code', '')} {getattr(error, 'message', '')}".rstrip() if error else ""
            return ProviderError(f"traffic log query returned {response.status}{detail}"[:400])
        out: dict[str, list[float]] = defaultdict(list)
        for table in response.tables:
            for row in table.rows:
                duration = row["TotalDurationMs"]
                if duration is not None:
                    out[str(row["DeploymentName"]).lower()].append(float(duration))
        return out
