"""What the emulated Log Analytics query API answers, shared by its query forms (log_analytics.py,
log_batch.py, kpi_rows.py): the refusal of a query it does not run, a partition's sampled
traffic-log rows, and the `PrimaryResult` table with an injected partial error
(Learn, "Azure Monitor Log Analytics API: response format" and "Errors"; docs/AZURE-FACTS-USED.md)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from emulator.responses import Response, _json


def refused_query(message: str) -> Response:
    return _json(
        400,
        {
            "error": {
                "message": "The request had some invalid properties",
                "code": "BadArgumentError",
                "innererror": {"code": "SyntaxError", "message": message},
            }
        },
    )


def sampled_rows(emu: Any, endpoint: str, deployment: str, start: datetime, end: datetime, sample: int) -> list[Any]:
    """One partition's traffic-log rows (mirrored copies only where the emulator logs them), at
    most `sample` of them, chosen at random as KQL's `sample` operator does."""
    found = [
        r for r in emu.sim.log_rows(endpoint, deployment, start, end) if emu.mirrored_in_traffic_log or not r.mirrored
    ]
    if len(found) > sample:
        idx = emu.sim.rng.choice(len(found), sample, replace=False)
        found = [found[i] for i in sorted(idx)]
    return found


def primary_result(columns: list[tuple[str, str]], rows: list[list[Any]], fault: Any = None) -> Response:
    """200 with one `PrimaryResult` table; a partial fault keeps half the rows and adds the error."""
    result: dict[str, Any] = {
        "tables": [
            {
                "name": "PrimaryResult",
                "columns": [{"name": name, "type": kind} for name, kind in columns],
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
