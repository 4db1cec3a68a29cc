"""Log Analytics workspace queries (`POST /v1/workspaces/{id}/query`, api.loganalytics.io) over
AmlOnlineEndpointTrafficLog. A mixin of emulator.azure.Emulator.

The emulator runs one query form, the one shared/adapters/monitor.py sends, written only with
documented KQL (and refuses every other text, including the forms the adapter used to send):

    AmlOnlineEndpointTrafficLog
    | where TimeGenerated >= datetime(2026-11-22T12:00:00Z) and TimeGenerated < datetime(...)
    | where _ResourceId =~ '/subscriptions/.../onlineEndpoints/{endpoint}'      (optional)
    | where EndpointName =~ '{endpoint}' and DeploymentName in~ ('{blue}', '{green}')
    | partition hint.strategy=native by DeploymentName (sample {n})
    | project DeploymentName, TotalDurationMs = todouble(TotalDurationMs),
              ResponseCode = toint(ResponseCode), ModelStatusCode = toint(ModelStatusCode)

- datetime literals: the ISO 8601 formats of the KQL reference ("It is strongly recommended to use
  only the ISO 8601 formats": `2014-05-25T08:20:03.123456Z`, `2014-05-25T08:20`, `2014-11-08`, ...;
  learn.microsoft.com/kusto/query/scalar-data-types/datetime). An offset such as `+00:00` is not
  among them and is refused.
- `=~` and `in~` are KQL's case-insensitive equality and membership (learn.microsoft.com/kusto/query/
  datatypes-string-operators, .../in-operator); string literals in single quotes (.../scalar-data-
  types/string); `sample` returns up to n random rows of its input (.../sample-operator), and
  `partition hint.strategy=native by Column (sample n)` does so per deployment (`sample` is among
  the native strategy's operators, .../partition-operator).
- columns: AmlOnlineEndpointTrafficLog has TimeGenerated, EndpointName, DeploymentName,
  ResponseCode (int), ModelStatusCode (int), TotalDurationMs and the standard `_ResourceId`
  (learn.microsoft.com/azure/azure-monitor/reference/tables/amlonlineendpointtrafficlog). The
  emulator's rows carry the endpoint's ARM id as `_ResourceId` (UNVERIFIED: the table lists
  workspaces as its resource type, while the diagnostic setting that fills it is on the endpoint).
- errors: `{"error": {"message", "code": "BadArgumentError", "innererror": {"code": "SyntaxError",
  "message"}}}` for a query it will not run, `PathNotFoundError` for other paths (Microsoft Learn,
  "Azure Monitor Log Analytics API Errors", learn.microsoft.com/azure/azure-monitor/logs/api/errors;
  the error schema of specification/operationalinsights/data-plane/.../v1/OperationalInsights.json);
  a partial result is a 200 with the rows found and an `error` (injected fault `partial`).
- results: `{"tables": [{"name": "PrimaryResult", "columns": [...], "rows": [...]}]}` as in
  ../shared/azure-samples/monitor/loganalytics.query-post.oms-post-example.v1.json.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Any

from emulator.kpi_rows import kpi_answer
from emulator.log_answers import primary_result, refused_query, sampled_rows
from emulator.responses import Response, _json

# The ISO 8601 forms of the KQL datetime reference, and nothing else.
_DATETIME = r"\d{4}-\d{2}-\d{2}(?:[T ]\d{2}:\d{2}(?::\d{2}(?:\.\d{1,7})?Z?)?)?"
_NAME = r"[A-Za-z0-9-]+"
_LOG_QUERY = re.compile(
    r"AmlOnlineEndpointTrafficLog"
    rf"\s*\|\s*where\s+TimeGenerated\s*>=\s*datetime\((?P<start>{_DATETIME})\)"
    rf"\s+and\s+TimeGenerated\s*<\s*datetime\((?P<end>{_DATETIME})\)"
    r"(?:\s*\|\s*where\s+_ResourceId\s*=~\s*'(?P<resource>/subscriptions/[^'\\\s]+)')?"
    rf"\s*\|\s*where\s+EndpointName\s*=~\s*'(?P<endpoint>{_NAME})'"
    rf"\s+and\s+DeploymentName\s+in~\s*\((?P<deployments>\s*'{_NAME}'(?:\s*,\s*'{_NAME}')*\s*)\)"
    r"\s*\|\s*partition\s+hint\.strategy\s*=\s*native\s+by\s+DeploymentName\s*\(\s*sample\s+(?P<sample>\d+)\s*\)"
    r"\s*\|\s*project\s+DeploymentName\s*,\s*TotalDurationMs\s*=\s*todouble\(TotalDurationMs\)\s*,"
    r"\s*ResponseCode\s*=\s*toint\(ResponseCode\)\s*,\s*ModelStatusCode\s*=\s*toint\(ModelStatusCode\)\s*"
)


def _kql_datetime(text: str) -> datetime:
    """A documented ISO 8601 datetime literal (always UTC in Kusto)."""
    text = text.rstrip("Z").replace(" ", "T")
    if "." in text:
        head, fraction = text.split(".")
        text = f"{head}.{fraction[:6]}"
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


TRAFFIC_COLUMNS = [
    ("DeploymentName", "string"),
    ("TotalDurationMs", "real"),
    ("ResponseCode", "int"),
    ("ModelStatusCode", "int"),
]


class LogAnalytics:
    # Whether mirrored copies appear in AmlOnlineEndpointTrafficLog (not documented; tests run both).
    mirrored_in_traffic_log: bool = True

    # -- Log Analytics ----------------------------------------------------------------------------

    def _logs(self, method: str, path: str, body: Any) -> Response:
        # A resource-centric query (query_resource: an Application Insights resource's ARM id) runs
        # only the KPI queries (emulator/kpi_rows.py).
        resource_query = re.match(r"^/v1/subscriptions/.+/query$", path) is not None
        if method != "POST" or not (re.match(r"^/v1/workspaces/[^/]+/query$", path) or resource_query):
            return _json(404, {"error": {"message": "The requested path does not exist", "code": "PathNotFoundError"}})
        fault = self._fault("logs")
        if fault is not None and not fault.partial:
            return self._fault_response(fault)
        text = str((body or {}).get("query") or "")
        if text.lstrip().startswith("let ") or resource_query:
            return kpi_answer(self, text, partial=fault is not None and fault.partial)
        if "| extend Key = strcat(" in text:  # several rollouts in one query (emulator/log_batch.py)
            from emulator.log_batch import batched_answer

            return batched_answer(self, text, fault)
        m = _LOG_QUERY.fullmatch(text.strip())
        if not m:
            return refused_query(
                "the emulator runs only the documented query form Safe Rollout sends (see log_analytics.py)"
            )
        start, end = _kql_datetime(m["start"]), _kql_datetime(m["end"])
        end = min(end, self.clock.now() - (self.logs_lag if self.logs_lag is not None else self.metrics_lag))
        endpoint = m["endpoint"]
        resource = m["resource"]
        if resource is not None and resource.lower() != self.endpoint_id(endpoint).lower():
            rows: list[list[Any]] = []
        else:
            wanted = {d.lower() for d in re.findall(r"'([^']+)'", m["deployments"])}
            sample = int(m["sample"])
            rows = []
            for e, d in sorted(self.sim.logs):
                if e != endpoint.lower() or d not in wanted:
                    continue
                found = sampled_rows(self, e, d, start, end, sample)  # per partition (deployment)
                rows += [[r.deployment, r.total_ms, r.response_code, r.model_status_code] for r in found]
        return primary_result(TRAFFIC_COLUMNS, rows, fault)
