"""The per-request traffic log of a whole batch in one Log Analytics query.

Log Analytics limits each user to 5 concurrent queries (more wait in a queue, and are refused with
429 after 3 minutes there or when 200 are queued) and to 200 queries per 30 seconds across all
workspaces (Microsoft Learn, "Azure Monitor service limits", Log queries: "User query throttling";
MicrosoftDocs/azure-docs includes/azure-monitor-limits-log-queries.md). One query per rollout
would spend that budget at 200 rollouts; one per batch of 25 serves 5,000 rollouts a tick with
200 queries spread over the tick.

The query keeps to the documented forms the single-rollout query uses (shared/adapters/monitor.py
`traffic_log_query`): ISO 8601 datetime literals, `=~` / `in~`, string literals of checked names;
each rollout's own window, endpoint and deployments in one `or` clause; and `sample` per
endpoint and deployment through `partition ... by Key`, where Key is `strcat()` of the two
lower-cased names (learn.microsoft.com/kusto/query/partition-operator: one partition column;
.../strcat-function, .../tolower-function). Rows: at most LOG_SAMPLE per deployment, so a batch of
25 rollouts (50 deployments) returns at most 250,000, below the API's 500,000 rows per query
(Azure Monitor service limits, "Log queries", API). A partial or failed answer fails every rollout
of the batch with the reason (never a judgement on part of the log).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from shared.ports import MetricsQuery, ProviderError

Samples = dict[str, list[float]]


def batch_key(q: MetricsQuery) -> tuple[str, datetime, datetime]:
    return (q.endpoint.name.lower(), q.start, q.end)


def batched_traffic_log_query(queries: Sequence[MetricsQuery], sample: int) -> str:
    """One KQL text for every rollout of a batch (names and ids checked as in traffic_log_query)."""
    from shared.adapters.monitor import _ENDPOINT_ID, _kql_datetime
    from shared.rollout.model import is_valid_resource_name

    if not queries:
        raise ValueError("refusing to query the traffic log for no rollout")
    clauses = []
    for q in queries:
        deployments = [d for d in (q.blue, q.green) if d]
        if not deployments:
            raise ValueError("refusing to query the traffic log for no deployment")
        for name in (q.endpoint.name, *deployments):
            if not is_valid_resource_name(name):
                raise ValueError(f"refusing to query the traffic log for an invalid name: {name[:64]!r}")
        if not _ENDPOINT_ID.match(q.endpoint.arm_id):
            raise ValueError(
                f"refusing to query the traffic log for an invalid resource id: {q.endpoint.arm_id[:200]!r}"
            )
        names = ", ".join(f"'{d}'" for d in deployments)
        clauses.append(
            f"(_ResourceId =~ '{q.endpoint.arm_id}' and EndpointName =~ '{q.endpoint.name}'"
            f" and DeploymentName in~ ({names})"
            f" and TimeGenerated >= {_kql_datetime(q.start)} and TimeGenerated < {_kql_datetime(q.end)})"
        )
    start = min(q.start for q in queries)
    end = max(q.end for q in queries)
    return (
        "AmlOnlineEndpointTrafficLog"
        f" | where TimeGenerated >= {_kql_datetime(start)} and TimeGenerated < {_kql_datetime(end)}"
        f" | where {' or '.join(clauses)}"
        " | extend Key = strcat(tolower(EndpointName), '/', tolower(DeploymentName))"
        f" | partition hint.strategy=native by Key (sample {int(sample)})"
        " | project EndpointName, DeploymentName, TotalDurationMs = todouble(TotalDurationMs),"
        " ResponseCode = toint(ResponseCode), ModelStatusCode = toint(ModelStatusCode)"
    )


def fetch_batch_samples(
    client: Any, workspace_id: str, queries: Sequence[MetricsQuery], sample: int
) -> dict[tuple[str, datetime, datetime], Samples | ProviderError]:
    """Per rollout (batch_key): per-request durations by deployment, or the reason there are none."""
    from azure.monitor.query import LogsQueryStatus

    from shared.adapters.monitor import _azure_reason

    keys = [batch_key(q) for q in queries]
    try:
        kql = batched_traffic_log_query(queries, sample)
    except ValueError as exc:
        return dict.fromkeys(keys, ProviderError(f"traffic log not read: {exc}"))
    start = min(q.start for q in queries)
    end = max(q.end for q in queries)
    try:
        response = client.query_workspace(workspace_id, kql, timespan=(start, end))
    except Exception as exc:  # HttpResponseError (a 429 included, after the SDK's retries), or the SDK refusing
        failed = ProviderError(f"traffic log query failed ({_azure_reason(exc)})")
        return dict.fromkeys(keys, failed)
    if response.status != LogsQueryStatus.SUCCESS:
        error = getattr(response, "partial_error", None)
        detail = f": {getattr(error, 'code', '')} {getattr(error, 'message', '')}".rstrip() if error else ""
        partial = ProviderError(f"traffic log query returned {response.status}{detail}"[:400])
        return dict.fromkeys(keys, partial)
    by_endpoint: dict[str, Samples] = defaultdict(lambda: defaultdict(list))
    for table in response.tables:
        for row in table.rows:
            duration = row["TotalDurationMs"]
            if duration is not None:
                by_endpoint[str(row["EndpointName"]).lower()][str(row["DeploymentName"]).lower()].append(
                    float(duration)
                )
    return {batch_key(q): dict(by_endpoint.get(q.endpoint.name.lower(), {})) for q in queries}
