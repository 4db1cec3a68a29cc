"""Azure Monitor `metrics:getBatch` ({region}.metrics.monitor.azure.com) at one-minute grain. A
mixin of emulator.azure.Emulator."""

from __future__ import annotations

import re
from datetime import datetime, timedelta
from typing import Any

import numpy as np

from emulator.responses import REGION, Response, _error, _iso, _json, _parse_time
from emulator.traffic import MinuteStats


class MonitorMetrics:
    # -- Azure Monitor metrics --------------------------------------------------------------------

    def _metrics(self, method: str, path: str, query: dict[str, str], body: Any) -> Response:
        if method != "POST" or not path.lower().endswith("/metrics:getbatch"):
            return _error(404, "NotFound", f"the emulator serves only metrics:getBatch, not {path}")
        if (fault := self._fault("metrics")) is not None:
            return self._fault_response(fault)
        ids = list((body or {}).get("resourceids") or [])
        if not ids or len(ids) > 50:
            return _error(400, "BadRequest", "resourceids must hold 1 to 50 resource ids")
        try:
            start, end = _parse_time(query["starttime"]), _parse_time(query["endtime"])
        except (KeyError, ValueError):
            return _error(400, "BadRequest", "starttime and endtime are required (ISO 8601)")
        names = [n.strip() for n in query.get("metricnames", "").split(",") if n.strip()]
        namespace = query.get("metricnamespace", "")
        values = [self._metrics_for(rid, namespace, names, start, end, query.get("filter", "")) for rid in ids]
        return _json(200, {"values": values})

    def _metrics_for(
        self, rid: str, namespace: str, names: list[str], start: datetime, end: datetime, filt: str
    ) -> dict[str, Any]:
        m = re.search(r"/onlineEndpoints/([^/]+)(?:/deployments/([^/]+))?$", rid, re.IGNORECASE)
        visible_until = self.clock.now() - self.metrics_lag
        minutes = []
        t = start.replace(second=0, microsecond=0)
        while t < end:
            minutes.append(t)
            t += timedelta(minutes=1)
        value = []
        for metric in names:
            timeseries: list[dict[str, Any]] = []
            if m:
                endpoint = m[1].lower()
                if m[2]:
                    timeseries = self._deployment_series(endpoint, m[2].lower(), metric, minutes, visible_until)
                else:
                    timeseries = self._endpoint_series(endpoint, metric, minutes, visible_until, filt)
            value.append(
                {
                    "id": f"{rid}/providers/Microsoft.Insights/metrics/{metric}",
                    "type": "Microsoft.Insights/metrics",
                    "name": {"value": metric, "localizedValue": metric},
                    "displayDescription": f"{metric} (emulated)",
                    "unit": "Milliseconds"
                    if "Latency" in metric
                    else ("Percent" if "Percentage" in metric else "Count"),
                    "timeseries": timeseries,
                    "errorCode": "Success",
                }
            )
        return {
            "starttime": _iso(start),
            "endtime": _iso(end),
            "interval": "PT1M",
            "value": value,
            "namespace": namespace,
            "resourceregion": REGION,
            "resourceid": rid,
        }

    def _deployments_of(self, endpoint: str) -> list[str]:
        return sorted({d for (e, d) in self.sim.stats if e == endpoint})

    def _endpoint_series(
        self, endpoint: str, metric: str, minutes: list[datetime], visible: datetime, filt: str
    ) -> list[dict[str, Any]]:
        """Split by a dimension only when the filter asks for it (`dim eq '*'` or a value), as Azure does."""
        lowered = filt.lower()
        by_deployment = "deployment eq" in lowered
        by_status = "statuscode eq" in lowered
        wanted = {d.lower() for d in re.findall(r"deployment eq '([^'*]+)'", filt, re.IGNORECASE)}
        span = (minutes[0], minutes[-1] + timedelta(minutes=1)) if minutes else None
        groups: dict[str, list[str]] = {}
        for deployment in self._deployments_of(endpoint):
            if wanted and deployment not in wanted:
                continue
            groups.setdefault(deployment if by_deployment else "", []).append(deployment)

        def merged(members: list[str], t: datetime) -> MinuteStats | None:
            parts = [self.sim.minutes(endpoint, d, t, t + timedelta(minutes=1)).get(t) for d in members]
            parts = [p for p in parts if p is not None]
            if not parts or span is None:
                return None
            out = MinuteStats()
            for p in parts:
                out.requests += p.requests
                out.latencies.extend(p.latencies)
                for code, n in p.by_status.items():
                    out.by_status[code] += n
            return out

        series: list[dict[str, Any]] = []
        for group, members in groups.items():
            stats = {t: s for t in minutes if (s := merged(members, t)) is not None}
            meta = [{"name": {"value": "deployment", "localizedValue": "deployment"}, "value": group}] if group else []
            if metric == "RequestsPerMinute":
                if by_status:
                    keys: list[tuple[int, int] | None] = sorted({c for s in stats.values() for c in s.by_status})
                else:
                    keys = [None]
                for key in keys:
                    data = []
                    for t in minutes:
                        s = stats.get(t)
                        if s is None or t >= visible:
                            count = 0
                        else:
                            count = s.requests if key is None else s.by_status.get(key, 0)
                        data.append({"timeStamp": _iso(t), "total": count} if count else {"timeStamp": _iso(t)})
                    dims = list(meta)
                    if key is not None:
                        code, model_code = key
                        dims += [
                            {
                                "name": {"value": "statuscode", "localizedValue": "statusCode"},
                                "value": str(code),
                            },
                            {
                                "name": {"value": "statuscodeclass", "localizedValue": "statusCodeClass"},
                                "value": f"{code // 100}xx",
                            },
                            {
                                "name": {"value": "modelstatuscode", "localizedValue": "modelStatusCode"},
                                "value": str(model_code),
                            },
                        ]
                    series.append({"metadatavalues": dims, "data": data})
                continue
            mp = re.fullmatch(r"RequestLatency(?:_P(\d+))?", metric)
            if not mp:
                continue
            q = float(mp[1]) if mp[1] else None
            data = []
            for t in minutes:
                s = stats.get(t)
                if s is None or not s.latencies or t >= visible:
                    data.append({"timeStamp": _iso(t)})  # an empty minute: no value keys
                    continue
                v = float(np.mean(s.latencies)) if q is None else s.percentile(q)
                data.append({"timeStamp": _iso(t), "average": v})
            series.append({"metadatavalues": meta, "data": data})
        return series

    def _deployment_series(
        self, endpoint: str, deployment: str, metric: str, minutes: list[datetime], visible: datetime
    ) -> list[dict[str, Any]]:
        attr = {"CpuUtilizationPercentage": "cpu", "CpuMemoryUtilizationPercentage": "memory"}.get(metric)
        if attr is None:
            return []
        stats = (
            self.sim.minutes(endpoint, deployment, minutes[0], minutes[-1] + timedelta(minutes=1)) if minutes else {}
        )
        data = []
        for t in minutes:
            s = stats.get(t)
            v = getattr(s, attr) if s is not None and t < visible else None
            data.append({"timeStamp": _iso(t), "average": v} if v is not None else {"timeStamp": _iso(t)})
        return [{"metadatavalues": [], "data": data}]
