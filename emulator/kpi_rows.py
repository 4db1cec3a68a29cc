"""KPI rows for the policy's KPI queries (Log Analytics / Application Insights), for the emulator.

The emulator cannot run arbitrary KQL. It runs a KPI query whose text is the `let` bindings Safe
Rollout prepends (shared/rollout/kpi.py: endpoint_name, blue_deployment, green_deployment as KQL
string literals, window_start, window_end as ISO 8601 datetime literals) followed by a query text a
test or the demo registered (`Emulator.kpi_truth[text] = {deployment: rate}`). String literals are
parsed with KQL's documented escapes (learn.microsoft.com/kusto/query/scalar-data-types/string:
the enclosing quote, `\\"`, `\\n`, `\\t`, `\\\\`); anything else is refused as a syntax error, as
Log Analytics refuses a malformed query (400 BadArgumentError / SyntaxError,
learn.microsoft.com/azure/azure-monitor/logs/api/errors). The answer, per deployment: Count = the
users' requests it served in the window (from the traffic simulator) and Successes ~ Binomial(Count,
its rate); or, for a registered mean, Mean and Variance of normal values around it.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Any

from emulator.log_answers import refused_query
from emulator.responses import Response, _json

_STRING = r"'((?:[^'\\\n]|\\.)*)'"
_DATETIME = r"datetime\((\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z)\)"
_BINDINGS = re.compile(
    rf"let endpoint_name = {_STRING};\n"
    rf"let blue_deployment = {_STRING};\n"
    rf"let green_deployment = {_STRING};\n"
    rf"let window_start = {_DATETIME};\n"
    rf"let window_end = {_DATETIME};\n"
)
_ESCAPES = {"\\": "\\", "'": "'", '"': '"', "n": "\n", "t": "\t"}


class KqlSyntaxError(ValueError):
    pass


def unquote(body: str) -> str:
    """The value of a single-quoted KQL string literal's body."""
    out = []
    i = 0
    while i < len(body):
        ch = body[i]
        if ch == "\\":
            nxt = body[i + 1] if i + 1 < len(body) else ""
            if nxt not in _ESCAPES:
                raise KqlSyntaxError(f"unknown escape \\{nxt} in a string literal")
            out.append(_ESCAPES[nxt])
            i += 2
            continue
        out.append(ch)
        i += 1
    return "".join(out)


def kpi_answer(emu: Any, text: str, *, partial: bool = False) -> Response:
    """`partial`: an injected partial result, as log_analytics.py answers one (the rows found and an `error`)."""
    m = _BINDINGS.match(text)
    if m is None:
        return refused_query(
            "the emulator runs KPI queries only after Safe Rollout's let bindings (emulator/kpi_rows.py)"
        )
    try:
        endpoint, blue, green = (unquote(m[i]) for i in (1, 2, 3))
    except KqlSyntaxError as exc:
        return refused_query(str(exc))
    start = datetime.fromisoformat(m[4].rstrip("Z")).replace(tzinfo=UTC)
    end = datetime.fromisoformat(m[5].rstrip("Z")).replace(tzinfo=UTC)
    query = text[m.end() :]
    truth: dict[str, Any] | None = getattr(emu, "kpi_truth", {}).get(query)
    if truth is None:
        return refused_query("the emulator knows no KPI query with this text (register it in Emulator.kpi_truth)")
    mean_kind = bool(truth.get("__mean__"))
    rows: list[list[Any]] = []
    for deployment in (blue, green):
        served = 0
        for minute in emu.sim.minutes(endpoint, deployment, start, end).values():
            served += sum(minute.live_by_status.values())
        value = float(truth.get(deployment.lower(), 0.0))
        if mean_kind:
            spread = float(truth.get("__sd__", 1.0))
            values = emu.sim.rng.normal(value, spread, served) if served else []
            mean = float(sum(values) / served) if served else None
            var = (
                float(sum((v - mean) ** 2 for v in values) / (served - 1)) if served > 1 and mean is not None else None
            )
            rows.append([deployment, served, mean, var])
        else:
            rows.append([deployment, served, int(emu.sim.rng.binomial(served, value)) if served else 0])
    columns = [{"name": "Deployment", "type": "string"}, {"name": "Count", "type": "long"}]
    columns += (
        [{"name": "Mean", "type": "real"}, {"name": "Variance", "type": "real"}]
        if mean_kind
        else [{"name": "Successes", "type": "long"}]
    )
    result: dict[str, Any] = {"tables": [{"name": "PrimaryResult", "columns": columns, "rows": rows}]}
    if partial:
        result["tables"][0]["rows"] = rows[: len(rows) // 2]
        result["error"] = {
            "code": "PartialError",
            "message": "There were some errors when processing your query.",
            "details": [{"code": "EngineError", "message": "Query exceeded limits (injected)"}],
        }
    return _json(200, result)
