"""Azure Monitor `metrics:getBatch` ({region}.metrics.monitor.azure.com) for Azure ML online endpoints
and deployments. A mixin of emulator.azure.Emulator.

What it answers, and where each behaviour comes from:
- The request: `POST /subscriptions/{subscriptionId}/metrics:getBatch` with `starttime`, `endtime`,
  `interval` (default PT1M), `metricnames`, `aggregation`, `filter`, `top`, `orderby` and a body
  `{"resourceids": [...]}` (REST spec Azure/azure-rest-api-specs, specification/monitor/data-plane/
  Microsoft.Insights/stable/2024-02-01/metricBatch.json). "The subscription identifier for the
  resources in this batch" and "The region should match the region of the requested resources":
  a resource of another subscription or region is refused (the exact error Azure sends for these
  is not documented; the emulator answers 400 BadRequest).
- Metric names, aggregations, dimensions and time grains: the supported-metrics reference pages,
  as tabled in shared/adapters/metric_catalogue.py. An unknown metric is a 400 BadRequest worded as
  Azure words it ("Failed to find metric configuration for provider: ..., resource Type: ...,
  metric: ..., Valid metrics: ...", Azure/azure-sdk-for-net#29584); an aggregation the metric does
  not list, a filter on a dimension it does not have, or a grain it is not published at is a 400
  BadRequest too. Error bodies have the shape of the spec's example (`{"error": {"additionalInfo",
  "code": "BadRequest", "message"}}` with `x-ms-error-code: BadRequest`, ../shared/azure-samples/
  monitor/metrics.batch-dataplane.MetricBatchExample*.json). The metric *namespace* is not checked
  (the metric is looked up by the resource's type): a known leniency.
- Values: Azure stores one-minute values per combination of dimension values and computes the
  asked aggregations from them; "Average ... is Sum/Count", recomputed for each grain; dimensions
  not split are collapsed (MicrosoftDocs/azure-monitor-docs, articles/azure-monitor/metrics/
  metrics-aggregation-explained.md). Here each time series of a metric gets one measurement a
  minute per combination (a request count, a latency percentile, a utilization), so an unsplit
  `RequestsPerMinute` Average is the mean over status codes, not the number of requests: only a
  query split by every dimension reads counts. Only the asked aggregations' keys are written, and
  a minute without data has no value keys at all (the batch examples' empty minutes).
- Splitting and `top`: every dimension named in the filter is split (the batch example returns
  `apiname` and `authentication` values for `ApiName eq ... and Authentication eq '*'`); `or` may
  only join values of one dimension (the spec's "Invalid variant"). With a filter, at most `top`
  series per resource and metric come back, default 10 ("Valid only if filter is specified.
  Defaults to 10."), ordered by `orderby` ("The aggregation to use for sorting results and the
  direction of the sort", e.g. `average desc`); without `orderby` the emulator orders by the
  metric's default aggregation, descending (UNVERIFIED: Azure's order then is not documented).
- Settling: minutes newer than `metrics_lag` have no values yet (AZURE-FACTS: metrics settle a few
  minutes late).
"""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Iterable
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

import numpy as np

from emulator.responses import REGION, Response, _iso, _json, _parse_time
from emulator.traffic import MinuteStats
from shared.adapters.metric_catalogue import AGGREGATIONS, CATALOGUE, DEPLOYMENT_NAMESPACE, ENDPOINT_NAMESPACE, lookup

MINUTE = timedelta(minutes=1)
DEFAULT_TOP = 10
MAX_RESOURCES = 50
_RESOURCE = re.compile(
    r"^/subscriptions/(?P<sub>[^/]+)/resourceGroups/[^/]+/providers/Microsoft\.MachineLearningServices"
    r"/workspaces/[^/]+/onlineEndpoints/(?P<endpoint>[^/]+)(?:/deployments/(?P<deployment>[^/]+))?$",
    re.IGNORECASE,
)
_CLAUSE = re.compile(r"\s*(?P<dim>[A-Za-z_][A-Za-z0-9_]*)\s+eq\s+'(?P<value>[^']*)'\s*(?:(?P<op>and|or)\b|$)")
# The spec's MetricUnit enum spells milliseconds "MilliSeconds"; the reference pages "Milliseconds".
_UNITS = {"milliseconds": "MilliSeconds"}

Dims = tuple[tuple[str, str], ...]  # (dimension, value) pairs, dimension names as catalogued


class MetricsError(Exception):
    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


def _bad_request(message: str) -> Response:
    """The error shape of the batch API's examples (default response)."""
    body = {
        "error": {
            "additionalInfo": [
                {"type": "string", "info": "TraceId={00000000-0000-0000-0000-000000000000}"},
                {
                    "type": "string",
                    "info": "ExceptionType=Microsoft.Online.Metrics.MetricsMP.Utilities.RPRequestFormatException",
                },
            ],
            "code": "BadRequest",
            "message": message,
        }
    }
    return _json(400, body, {"x-ms-error-code": "BadRequest"})


def parse_filter(text: str) -> dict[str, set[str] | None]:
    """`A eq 'a1' and B eq 'b1' or B eq 'b2' and C eq '*'` -> {A: {a1}, B: {b1, b2}, C: None (all)}."""
    out: dict[str, set[str] | None] = {}
    rest = text.strip()
    previous: str | None = None
    joined_by_or = False
    while rest:
        m = _CLAUSE.match(rest)
        if not m:
            raise MetricsError(f"The $filter is not valid (or not emulated): {text!r}")
        dim, value = m["dim"], m["value"]
        key = dim.lower()
        if joined_by_or and key != previous:
            raise MetricsError(f"The logical 'or' operator cannot separate two different metadata names: {text!r}")
        if value == "*":
            out[key] = None
        elif out.get(key, set()) is not None:
            values = out.setdefault(key, set())
            assert values is not None
            values.add(value.lower())
        previous, joined_by_or = key, m["op"] == "or"
        rest = rest[m.end() :]
        if m["op"] and not rest.strip():
            raise MetricsError(f"The $filter is not valid: {text!r}")
    return out


def aggregate(values: list[float], aggregation: str) -> float:
    a = aggregation.lower()
    if a == "average":
        return float(sum(values) / len(values))
    if a == "minimum":
        return float(min(values))
    if a == "maximum":
        return float(max(values))
    if a in ("total", "sum"):
        return float(sum(values))
    return float(len(values))  # count


class MonitorMetrics:
    # Whether endpoint-scope metrics (RequestsPerMinute, RequestLatency*) count mirrored copies.
    # Not documented either way (../shared/docs/AZURE-FACTS.md: UNVERIFIED); tests run both.
    mirrored_in_endpoint_metrics: bool = True

    # -- Azure Monitor metrics --------------------------------------------------------------------

    def _metrics(self, method: str, path: str, query: dict[str, str], body: Any) -> Response:
        m = re.fullmatch(r"/subscriptions/([^/]+)/metrics:getBatch", path, re.IGNORECASE)
        if method != "POST" or not m:
            return _json(
                404,
                {"error": {"code": "NotFound", "message": f"the emulator serves only metrics:getBatch, not {path}"}},
            )
        if (fault := self._fault("metrics")) is not None:
            return self._fault_response(fault)
        # A fault on one metric's calls only, e.g. "metrics:CpuUtilizationPercentage".
        for name in query.get("metricnames", "").split(","):
            if name and (fault := self._fault(f"metrics:{name}")) is not None:
                return self._fault_response(fault)
        try:
            return _json(200, {"values": self._batch(m[1], query, body)})
        except MetricsError as exc:
            return _bad_request(exc.message)

    def _host_region(self) -> str | None:
        """The region of the host this request was sent to. The request entry (emulator/azure.py)
        passes the path only; the full URL is the last one it recorded."""
        if not self.requests:
            return None
        host = (urlsplit(self.requests[-1][1]).hostname or "").lower()
        return host.split(".")[0] if host.endswith(".metrics.monitor.azure.com") else None

    def _batch(self, subscription: str, query: dict[str, str], body: Any) -> list[dict[str, Any]]:
        ids = list((body or {}).get("resourceids") or [])
        if not ids or len(ids) > MAX_RESOURCES:
            raise MetricsError(f"resourceids must hold 1 to {MAX_RESOURCES} resource ids")
        start, end = self._timespan(query)
        grain = query.get("interval", "PT1M").upper()
        names = [n.strip() for n in query.get("metricnames", "").split(",") if n.strip()]
        if not names:
            raise MetricsError("metricnames is required")
        asked = [a.strip() for a in query.get("aggregation", "").split(",") if a.strip()]
        unknown = [a for a in asked if a.lower() not in {x.lower() for x in AGGREGATIONS}]
        if unknown:
            raise MetricsError(f"Unknown aggregation type(s): {', '.join(unknown)}")
        filt = query.get("filter", "")
        split = parse_filter(filt) if filt.strip() else {}
        top = DEFAULT_TOP
        if "top" in query:
            try:
                top = int(query["top"])
            except ValueError:
                raise MetricsError(f"top must be an integer, got {query['top']!r}") from None
            if top < 1:
                raise MetricsError("top must be at least 1")
        order = self._orderby(query.get("orderby", ""))
        region = self._host_region()
        out = []
        for rid in ids:
            r = _RESOURCE.match(str(rid))
            if not r:
                raise MetricsError(f"{rid} is not an Azure ML online endpoint or deployment (not emulated)")
            if r["sub"].lower() != subscription.lower():
                raise MetricsError(f"Resource {rid} is not in the batch's subscription {subscription}")
            namespace = DEPLOYMENT_NAMESPACE if r["deployment"] else ENDPOINT_NAMESPACE
            location = self._location(r["endpoint"], r["deployment"])
            if region is not None and location is not None and location.lower() != region:
                raise MetricsError(
                    f"Resource {rid} is in region {location}, not {region}: query that region's endpoint"
                )
            specs = []
            for name in names:
                spec = lookup(namespace, name)
                if spec is None:
                    valid = ",".join(s.name for s in CATALOGUE.values() if s.namespace == namespace)
                    raise MetricsError(
                        "Failed to find metric configuration for provider: Microsoft.MachineLearningServices, "
                        f"resource Type: {namespace.split('/', 1)[1]}, metric: {name}, Valid metrics: {valid}"
                    )
                allowed = {a.lower() for a in spec.aggregations}
                bad = [a for a in asked if a.lower() not in allowed]
                if bad:
                    raise MetricsError(
                        f"Metric {spec.name} does not support aggregation type(s) {', '.join(bad)}; "
                        f"supported: {', '.join(spec.aggregations)}"
                    )
                dims = {d.lower() for d in spec.dimensions}
                missing = [d for d in split if d not in dims]
                if missing:
                    raise MetricsError(f"Metric {spec.name} has no dimension(s) {', '.join(missing)} (filter {filt!r})")
                if grain not in spec.time_grains:
                    raise MetricsError(
                        f"Metric {spec.name} does not support the requested time grain {grain}; "
                        f"supported: {', '.join(spec.time_grains)}"
                    )
                if order is not None and order[0] not in allowed:
                    raise MetricsError(f"orderby {order[0]} is not an aggregation of {spec.name}")
                specs.append(spec)
            value = []
            for spec in specs:
                aggregations = asked or [spec.default_aggregation]
                series = self._series(r["endpoint"], r["deployment"], spec.name, start, end, split, aggregations)
                if split:
                    key = order[0] if order else spec.default_aggregation
                    series.sort(key=lambda s: s[2].get(key.lower(), 0.0), reverse=order is None or order[1])
                    series = series[:top]
                value.append(
                    {
                        "id": f"{rid}/providers/Microsoft.Insights/metrics/{spec.name}",
                        "type": "Microsoft.Insights/metrics",
                        "name": {"value": spec.name, "localizedValue": spec.name},
                        "displayDescription": f"{spec.name} (emulated)",
                        "unit": _UNITS.get(spec.unit.lower(), spec.unit),
                        "timeseries": [{"metadatavalues": meta, "data": data} for meta, data, _ in series],
                        "errorCode": "Success",
                    }
                )
            out.append(
                {
                    "starttime": _iso(start),
                    "endtime": _iso(end),
                    "interval": grain,
                    "value": value,
                    "namespace": namespace.lower(),
                    "resourceregion": location or REGION,
                    "resourceid": rid,
                }
            )
        return out

    def _timespan(self, query: dict[str, str]) -> tuple[datetime, datetime]:
        """starttime/endtime as the spec describes them: endtime needs starttime; starttime alone
        ends now; neither is the last hour."""
        try:
            if "endtime" in query and "starttime" not in query:
                raise MetricsError("starttime is required when endtime is given")
            end = _parse_time(query["endtime"]) if "endtime" in query else self.clock.now()
            start = _parse_time(query["starttime"]) if "starttime" in query else end - timedelta(hours=1)
        except ValueError:
            raise MetricsError("starttime and endtime must be 'yyyy-MM-ddTHH:mm:ss.fffZ'") from None
        if end <= start:
            raise MetricsError("endtime must be after starttime")
        return start, end

    @staticmethod
    def _orderby(text: str) -> tuple[str, bool] | None:
        if not text.strip():
            return None
        parts = text.strip().lower().split()
        names = {a.lower() for a in AGGREGATIONS} | {"sum"}
        if len(parts) > 2 or parts[0] not in names or (len(parts) == 2 and parts[1] not in ("asc", "desc")):
            raise MetricsError(f"orderby must be '<aggregation> [asc|desc]', got {text!r}")
        name = "total" if parts[0] == "sum" else parts[0]
        return name, len(parts) == 1 or parts[1] == "desc"

    def _location(self, endpoint: str, deployment: str | None) -> str | None:
        if deployment:
            found = self.deployments.get((endpoint.lower(), deployment.lower()))
        else:
            found = self.endpoints.get(endpoint.lower())
        return str(found.body.get("location") or REGION) if found is not None else None

    # -- values -----------------------------------------------------------------------------------

    def _series(
        self,
        endpoint: str,
        deployment: str | None,
        metric: str,
        start: datetime,
        end: datetime,
        split: dict[str, set[str] | None],
        aggregations: list[str],
    ) -> list[tuple[list[dict[str, Any]], list[dict[str, Any]], dict[str, float]]]:
        """[(metadatavalues, data points, aggregates over the span)] for one metric of one resource."""
        visible_until = self.clock.now() - self.metrics_lag
        minutes = []
        t = start.replace(second=0, microsecond=0)
        while t < end:
            minutes.append(t)
            t += MINUTE
        # group key (split dimension values) -> minute -> measurements
        groups: dict[Dims, dict[datetime, list[float]]] = defaultdict(lambda: defaultdict(list))
        for minute in minutes:
            if minute >= visible_until:
                continue
            for dims, value in self._measurements(endpoint, deployment, metric, minute):
                lowered = {k.lower(): v for k, v in dims}
                if any(wanted is not None and lowered.get(d, "").lower() not in wanted for d, wanted in split.items()):
                    continue
                key = tuple((d, v) for d, v in dims if d.lower() in split)
                groups[key][minute].append(value)
        if not split and not groups:
            groups[()] = defaultdict(list)  # an unsplit metric always has its one series
        out = []
        for key, by_minute in groups.items():
            data = []
            everything: list[float] = []
            for minute in minutes:
                values = by_minute.get(minute, [])
                point: dict[str, Any] = {"timeStamp": _iso(minute)}
                if values:
                    everything += values
                    point |= {a.lower(): aggregate(values, a) for a in aggregations}
                data.append(point)
            meta = [{"name": {"value": d.lower(), "localizedValue": d}, "value": v} for d, v in key]
            totals = {a.lower(): aggregate(everything, a) for a in AGGREGATIONS} if everything else {}
            out.append((meta, data, totals))
        return out

    def _stats(self, endpoint: str, deployment: str, minute: datetime) -> MinuteStats | None:
        return self.sim.stats.get((endpoint.lower(), deployment.lower()), {}).get(minute)

    def _measurements(
        self, endpoint: str, deployment: str | None, metric: str, minute: datetime
    ) -> Iterable[tuple[Dims, float]]:
        """One minute's values of a metric, one per combination of all its dimensions."""
        endpoint = endpoint.lower()
        name = metric.lower()
        p = re.fullmatch(r"requestlatency_p(\d+)", name)
        if deployment is None:
            for d in sorted({dep for (e, dep) in self.sim.stats if e == endpoint}):
                s = self._stats(endpoint, d, minute)
                if s is None:
                    continue
                by_status = s.by_status if self.mirrored_in_endpoint_metrics else s.live_by_status
                latencies = s.latencies if self.mirrored_in_endpoint_metrics else s.live_latencies
                if name == "requestsperminute":
                    for (code, model_code), n in sorted(by_status.items()):
                        if n:
                            yield (
                                (
                                    ("deployment", d),
                                    ("statusCode", str(code)),
                                    ("statusCodeClass", f"{code // 100}xx"),
                                    ("modelStatusCode", str(model_code)),
                                ),
                                float(n),
                            )
                elif latencies and (p or name == "requestlatency"):
                    value = float(np.percentile(latencies, float(p[1]))) if p else float(np.mean(latencies))
                    yield (("deployment", d),), value
            return
        s = self._stats(endpoint, deployment.lower(), minute)
        if s is None:
            return
        if name in ("cpuutilizationpercentage", "cpumemoryutilizationpercentage"):
            value = s.cpu if name == "cpuutilizationpercentage" else s.memory
            if value is not None:
                yield (("instanceId", f"{deployment.lower()}-0"),), float(value)
        elif name == "requestsperminute":
            # Every request the deployment served, live or mirrored ("sent to online deployment").
            # UNVERIFIED: envoy_response_code is taken to be the model's own status (a model 500
            # that clients see as 424 is a 500 here).
            codes: dict[int, int] = defaultdict(int)
            for (_, model_code), n in s.by_status.items():
                codes[model_code] += n
            for code, n in sorted(codes.items()):
                if n:
                    yield (("envoy_response_code", str(code)),), float(n)
        elif p and s.latencies:
            yield (), float(np.percentile(s.latencies, float(p[1])))
