"""KPI queries over Log Analytics or Application Insights with azure-monitor-query's LogsQueryClient.

Each policy KPI's KQL runs with the `let` bindings of kpi.bindings() prepended (the deployments,
the endpoint and the window as KQL literals, never pasted into the user's text), over the window
as the query's timespan: `query_workspace` for a Log Analytics workspace, `query_resource` for an
Application Insights resource (its ARM id). Rows: Deployment, Count, and Successes or Mean and
Variance. A failed, partial or malformed answer is a KpiReading with an error (the check holds).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from shared.rollout.kpi import KpiReading, KpiRow, bindings, row_problem
from shared.rollout.model import EndpointRef
from shared.rollout.prediction_policy import KpiCheck


def _reason(exc: Exception) -> str:
    message = str(getattr(exc, "message", "") or exc).strip().splitlines()
    return f"{exc.__class__.__name__}: {message[0][:200] if message else ''}"


class BadValueError(ValueError):
    """A column's value that is not a (finite, for counts whole) number."""


def _number(row: Any, column: str, columns: Sequence[str], *, whole: bool = False) -> float | None:
    """The column's number (None: no such column, or null). Anything else than a finite number (a
    string, a bool, NaN, ±inf; for counts, a fraction) is a BadValueError naming the column."""
    if column not in columns:
        return None
    value = row[column]
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise BadValueError(f"{column} is {value!r}, not a number"[:200])
    number = float(value)
    if not math.isfinite(number):
        raise BadValueError(f"{column} is {number}, not a finite number")
    if whole and not number.is_integer():
        raise BadValueError(f"{column} is {number:g}, not a whole number")
    return number


class KpiQueries:
    def __init__(
        self,
        credential: Any,
        *,
        workspace_id: str | None,
        logs_endpoint: str = "https://api.loganalytics.io",
        audience: str | None = None,
        transport: Any = None,
    ) -> None:
        from azure.monitor.query import LogsQueryClient

        from shared.adapters.monitor import audience_for

        kwargs: dict[str, Any] = {"transport": transport} if transport is not None else {}
        self._client = LogsQueryClient(
            credential,
            endpoint=f"{logs_endpoint.rstrip('/')}/v1",
            audience=audience or audience_for(logs_endpoint),
            **kwargs,
        )
        self._workspace_id = workspace_id
        self.queries_sent = 0

    def read(
        self, kpi: KpiCheck, endpoint: EndpointRef, blue: str, green: str, start: datetime, end: datetime
    ) -> KpiReading:
        from azure.monitor.query import LogsQueryStatus

        try:
            text = bindings(endpoint=endpoint.name, blue=blue, green=green, start=start, end=end) + kpi.query
        except ValueError as exc:
            return KpiReading(name=kpi.name, error=f"the query cannot be built: {exc}")
        try:
            self.queries_sent += 1
            if kpi.source == "app_insights":
                assert kpi.resource is not None  # the policy requires it
                response = self._client.query_resource(kpi.resource, text, timespan=(start, end))
            else:
                workspace = kpi.resource or self._workspace_id
                if not workspace:
                    return KpiReading(
                        name=kpi.name,
                        error="no Log Analytics workspace "
                        "(set SAFE_ROLLOUT_LOG_ANALYTICS_WORKSPACE_ID or the KPI's resource)",
                    )
                response = self._client.query_workspace(workspace, text, timespan=(start, end))
        except Exception as exc:  # HttpResponseError, or the SDK refusing its input
            return KpiReading(name=kpi.name, error=f"the query failed ({_reason(exc)})")
        if response.status != LogsQueryStatus.SUCCESS:
            return KpiReading(
                name=kpi.name, error=f"the query returned {response.status} (a partial answer is not judged)"
            )
        rows: list[KpiRow] = []
        for table in response.tables:
            columns = list(table.columns)
            if "Deployment" not in columns or "Count" not in columns:
                return KpiReading(
                    name=kpi.name, error=f"the query must return Deployment and Count columns, got {columns[:10]}"
                )
            for row in table.rows:
                deployment = str(row["Deployment"])
                try:
                    count = _number(row, "Count", columns, whole=True)
                    successes = _number(row, "Successes", columns, whole=True)
                    parsed = KpiRow(
                        deployment=deployment,
                        count=int(count or 0),
                        successes=None if successes is None else int(successes),
                        mean=_number(row, "Mean", columns),
                        variance=_number(row, "Variance", columns),
                    )
                except BadValueError as exc:
                    problem: str | None = f"KPI {kpi.name!r}, deployment {deployment!r}: {exc}"
                else:
                    problem = row_problem(kpi.name, parsed)
                if problem is not None:  # the check holds with the reason; nothing is judged
                    return KpiReading(name=kpi.name, error=f"the query's answer is invalid: {problem}"[:400])
                rows.append(parsed)
        names = [r.deployment.lower() for r in rows]
        twice = sorted({n for n in names if names.count(n) > 1})
        if twice:  # judging one of them would judge part of the window (e.g. a query summarised by hour)
            return KpiReading(
                name=kpi.name,
                error=f"the query must return one row per deployment, got several for {twice[:3]} "
                "(summarize ... by Deployment only)",
            )
        return KpiReading(name=kpi.name, rows=tuple(rows))
