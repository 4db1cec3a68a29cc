"""Log Analytics workspace queries (api.loganalytics.io) over AmlOnlineEndpointTrafficLog. A
mixin of emulator.azure.Emulator."""

from __future__ import annotations

import re
from typing import Any

from emulator.responses import Response, _error, _json, _parse_time


class LogAnalytics:
    # -- Log Analytics ----------------------------------------------------------------------------

    _LOG_QUERY = re.compile(
        r"AmlOnlineEndpointTrafficLog\s*\|\s*where TimeGenerated >= datetime\((?P<start>[^)]+)\) and "
        r"TimeGenerated < datetime\((?P<end>[^)]+)\)\s*\|\s*"
        r'where EndpointName == "(?P<endpoint>[A-Za-z0-9-]+)"'
        r".*?DeploymentName in \((?P<deployments>[^)]*)\).*?sample (?P<sample>\d+)",
        re.DOTALL,
    )

    def _logs(self, method: str, path: str, body: Any) -> Response:
        if method != "POST" or not re.match(r"^/v1/workspaces/[^/]+/query$", path):
            return _error(404, "PathNotFoundError", f"the emulator serves only workspace queries, not {path}")
        fault = self._fault("logs")
        if fault is not None and not fault.partial:
            return self._fault_response(fault)
        text = str((body or {}).get("query") or "")
        m = self._LOG_QUERY.search(text)
        if not m:
            return _error(400, "BadArgumentError", "The request had some invalid properties (query shape not emulated)")
        start, end = _parse_time(m["start"]), _parse_time(m["end"])
        end = min(end, self.clock.now() - self.metrics_lag)
        deployments = re.findall(r'"([A-Za-z0-9-]+)"', m["deployments"])
        sample = int(m["sample"])
        rows: list[list[Any]] = []
        for deployment in deployments:
            found = self.sim.log_rows(m["endpoint"], deployment, start, end)
            if len(found) > sample:
                idx = self.sim.rng.choice(len(found), sample, replace=False)
                found = [found[i] for i in sorted(idx)]
            rows += [[r.deployment, r.total_ms, r.response_code, r.model_status_code] for r in found]
        result: dict[str, Any] = {
            "tables": [
                {
                    "name": "PrimaryResult",
                    "columns": [
                        {"name": "DeploymentName", "type": "string"},
                        {"name": "TotalDurationMs", "type": "real"},
                        {"name": "ResponseCode", "type": "int"},
                        {"name": "ModelStatusCode", "type": "int"},
                    ],
                    "rows": rows,
                }
            ]
        }
        if fault is not None and fault.partial:
            result["tables"][0]["rows"] = rows[: len(rows) // 2]
            result["error"] = {
                "code": "PartialError",
                "message": "There were some errors when processing your query.",
                "details": [{"code": "EngineError", "message": "Query exceeded limits (injected)"}],
            }
        return _json(200, result)
