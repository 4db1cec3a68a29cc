"""The batched traffic-log query (shared/adapters/traffic_log_batch.py): several rollouts' windows,
endpoints and deployments in one query, sampled per endpoint and deployment. Written with the same
documented KQL as the single query (emulator/log_analytics.py cites each form), plus `or` between
parenthesised conditions, `extend`, `strcat()` and `tolower()` (learn.microsoft.com/kusto/query/
logical-operators, .../extend-operator, .../strcat-function, .../tolower-function) and `partition`
by that one column (.../partition-operator). Any other text is refused as log_analytics.py does."""

from __future__ import annotations

import re
from typing import Any

from emulator.log_analytics import _DATETIME, _NAME, TRAFFIC_COLUMNS, _kql_datetime
from emulator.log_answers import primary_result, refused_query, sampled_rows
from emulator.responses import Response

_CLAUSE = (
    rf"\(\s*_ResourceId\s*=~\s*'(?P<resource>/subscriptions/[^'\\\s]+)'"
    rf"\s+and\s+EndpointName\s*=~\s*'(?P<endpoint>{_NAME})'"
    rf"\s+and\s+DeploymentName\s+in~\s*\((?P<deployments>\s*'{_NAME}'(?:\s*,\s*'{_NAME}')*\s*)\)"
    rf"\s+and\s+TimeGenerated\s*>=\s*datetime\((?P<start>{_DATETIME})\)"
    rf"\s+and\s+TimeGenerated\s*<\s*datetime\((?P<end>{_DATETIME})\)\s*\)"
)
_CLAUSE_RE = re.compile(_CLAUSE)
_HEAD = re.compile(
    r"AmlOnlineEndpointTrafficLog"
    rf"\s*\|\s*where\s+TimeGenerated\s*>=\s*datetime\({_DATETIME}\)\s+and\s+TimeGenerated\s*<\s*datetime\({_DATETIME}\)"
    r"\s*\|\s*where\s+"
)
_TAIL = re.compile(
    r"\s*\|\s*extend\s+Key\s*=\s*strcat\(\s*tolower\(EndpointName\)\s*,\s*'/'\s*,\s*tolower\(DeploymentName\)\s*\)"
    r"\s*\|\s*partition\s+hint\.strategy\s*=\s*native\s+by\s+Key\s*\(\s*sample\s+(?P<sample>\d+)\s*\)"
    r"\s*\|\s*project\s+EndpointName\s*,\s*DeploymentName\s*,\s*TotalDurationMs\s*=\s*todouble\(TotalDurationMs\)\s*,"
    r"\s*ResponseCode\s*=\s*toint\(ResponseCode\)\s*,\s*ModelStatusCode\s*=\s*toint\(ModelStatusCode\)\s*$"
)


def is_batched(text: str) -> bool:
    return "| extend Key = strcat(" in text


def batched_answer(emu: Any, text: str, fault: Any) -> Response:
    text = text.strip()
    head, tail = _HEAD.match(text), _TAIL.search(text)
    if head is None or tail is None:
        return refused_query("the emulator runs only the documented query forms Safe Rollout sends (see log_batch.py)")
    middle = text[head.end() : tail.start()].strip()
    clauses = []
    pos = 0
    while pos < len(middle):
        m = _CLAUSE_RE.match(middle, pos)
        if m is None:
            return refused_query("a batched traffic-log condition is not in the documented form (see log_batch.py)")
        clauses.append(m)
        pos = m.end()
        rest = re.match(r"\s+or\s+", middle[pos:])
        if rest is None:
            if middle[pos:].strip():
                return refused_query("conditions must be joined with `or`")
            break
        pos += rest.end()
    sample = int(tail["sample"])
    lag = emu.logs_lag if emu.logs_lag is not None else emu.metrics_lag
    rows: list[list[Any]] = []
    for m in clauses:
        endpoint = m["endpoint"].lower()
        if m["resource"].lower() != emu.endpoint_id(m["endpoint"]).lower():
            continue
        start, end = _kql_datetime(m["start"]), min(_kql_datetime(m["end"]), emu.clock.now() - lag)
        wanted = {d.lower() for d in re.findall(r"'([^']+)'", m["deployments"])}
        for e, d in sorted(emu.sim.logs):
            if e != endpoint or d not in wanted:
                continue
            found = sampled_rows(emu, e, d, start, end, sample)  # per partition (endpoint and deployment)
            rows += [[m["endpoint"], r.deployment, r.total_ms, r.response_code, r.model_status_code] for r in found]
    return primary_result([("EndpointName", "string"), *TRAFFIC_COLUMNS], rows, fault)
