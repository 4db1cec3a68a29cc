"""A business KPI judged through the whole service: the real RolloutService runs the policy's KQL
with the real KpiQueries adapter (azure-monitor-query's LogsQueryClient) against the emulator's Log
Analytics, and the core decides. Conversions per scored request: Count = the users' requests each
deployment served in the window, Successes ~ Binomial(Count, its rate) (emulator/kpi_rows.py)."""

from __future__ import annotations

import json
import re
from datetime import datetime

import pytest

from emulator.kpi_rows import _BINDINGS, unquote
from emulator.records import Fault
from emulator.transport import EmulatorTransport, StaticCredential
from shared.adapters.kpi_queries import KpiQueries
from shared.model_checks import ModelChecks
from shared.rollout.model import RolloutPhase
from tests.emulated import checked_service, make_world

P = RolloutPhase
GREEN = "fraud-model-v2"
QUERY = (
    "AmlOnlineEndpointTrafficLog | where TimeGenerated between (window_start .. window_end)"
    " | where EndpointName =~ endpoint_name and DeploymentName in~ (blue_deployment, green_deployment)"
    " | join kind=leftouter (Conversions | project XRequestId, Converted = true) on XRequestId"
    " | summarize Count = count(), Successes = countif(Converted) by Deployment = DeploymentName"
)


def setup(truth: dict[str, float] | None, *, kpi: dict | None = None, step: dict | None = None, server=None):
    world = make_world(rpm=600)
    if truth is not None:
        world.emu.kpi_truth[QUERY] = truth
    policy = {
        "mirror": None,
        "steps": [{"percent": 50, "min_duration": "5m", "max_duration": "15m"} | (step or {})],
        "kpis": [{"name": "conversion", "query": QUERY, "max_decrease": 0.03, "min_count": 200} | (kpi or {})],
    }
    transport = world.transport if server is None else EmulatorTransport(server(world.emu))
    queries = KpiQueries(_credential(), workspace_id="law-1", transport=transport)
    return world, checked_service(world, policy, ModelChecks(scorer=None, kpis=queries, clock=world.clock)), queries


def _credential():
    return StaticCredential()


class HourlyRows:
    """Log Analytics as the emulator answers it, with every KPI row split in two, as a query
    summarised `by Deployment = DeploymentName, bin(TimeGenerated, 1h)` answers."""

    def __init__(self, emu) -> None:
        self.emu, self.clock = emu, emu.clock

    def handle(self, method, url, headers, body):
        status, out_headers, payload = self.emu.handle(method, url, headers, body)
        if "api.loganalytics.io" not in url or status != 200:
            return status, out_headers, payload
        answer = json.loads(payload)
        for table in answer["tables"]:
            halves = []
            for deployment, count, successes in table["rows"]:
                halves += [
                    [deployment, count // 2, successes // 2],
                    [deployment, count - count // 2, successes - successes // 2],
                ]
            table["rows"] = halves
        return status, out_headers, json.dumps(answer).encode()


def run_until(world, service, done, ticks=60):
    for _ in range(ticks):
        world.advance(1)
        service.reconcile_all()
        (stored,) = service.store.find()
        if done(stored.rollout):
            return stored
    return stored


def kpi_queries_sent(world) -> list[dict]:
    return [
        body
        for method, url, body in world.emu.requests
        if "api.loganalytics.io" in url and str((body or {}).get("query", "")).startswith("let ")
    ]


def test_a_green_that_converts_clearly_worse_is_rolled_back_at_the_canary_with_the_kpi_as_evidence():
    world, service, queries = setup({"blue": 0.10, GREEN: 0.03})
    stored = run_until(world, service, lambda r: r.phase.terminal)
    assert stored.rollout.phase == P.ROLLED_BACK, stored.rollout.last_reason
    decisions = service.store.decisions(stored.rollout.id)
    i, rollback = next((i, d) for i, d in enumerate(decisions) if d.to_phase == P.ROLLING_BACK)
    assert rollback.from_phase == P.CANARY
    assert decisions[i - 1].traffic.live == {"blue": 50, GREEN: 50}  # judged where green served users
    assert rollback.traffic.live == {"blue": 100}
    # The reason names the KPI and its figures; the service itself was fine.
    assert re.search(r"kpi:conversion: conversion: green \d+\.\d\d% vs blue \d+\.\d\d%: proven worse", rollback.reason)
    evidence = {r.check: r for r in rollback.evidence}
    kpi = evidence["kpi:conversion"]
    assert kpi.verdict == "Fail"
    assert kpi.evidence["green"] < 0.05
    assert kpi.evidence["blue"] > 0.08
    assert kpi.evidence["lower"] > kpi.evidence["leave_alone"] == 0.015
    assert kpi.evidence["green_count"] >= 200
    assert kpi.evidence["blue_count"] >= 200
    assert evidence["errors"].verdict != "Fail"
    assert evidence["latency"].verdict != "Fail"
    assert [r.check for r in rollback.evidence if r.verdict == "Fail"] == ["kpi:conversion"]
    assert queries.queries_sent == len(kpi_queries_sent(world)) > 0


def test_a_green_with_an_equal_kpi_passes_the_kpi_check_and_advances_to_the_bake():
    world, service, _ = setup({"blue": 0.05, GREEN: 0.05}, step={"max_duration": "40m"})
    stored = run_until(world, service, lambda r: r.phase not in (P.CANARY, P.PENDING))
    assert stored.rollout.phase == P.BAKING, stored.rollout.last_reason
    decisions = service.store.decisions(stored.rollout.id)
    passed = next(d for d in decisions if d.from_phase == P.CANARY and d.to_phase == P.BAKING)
    assert "canary 50% passed" in passed.reason
    kpi = {r.check: r for r in passed.evidence}["kpi:conversion"]
    assert kpi.verdict == "Pass"  # proven within the margin, not just 'no data'
    assert "proven within +3.00%" in kpi.summary
    assert kpi.evidence["upper"] <= 0.03
    assert kpi.evidence["green_count"] >= 200
    # No KPI query once blue serves nobody (the bake): the KPI needs users on both sides.
    sent = len(kpi_queries_sent(world))
    run_until(world, service, lambda r: False, ticks=3)
    assert len(kpi_queries_sent(world)) == sent


@pytest.mark.parametrize(
    ("fault", "reason", "server"),
    [
        # Log Analytics refuses the query (an error answer the SDK does not retry).
        (Fault("logs", status=403, times=10_000), r"the query failed \(HttpResponseError: .*403", None),
        # A table the workspace does not have: Log Analytics answers 400 BadArgumentError.
        (None, r"the query failed \(HttpResponseError: .*BadArgumentError", None),
        # A partial answer (200 with the rows found and an error) is not judged.
        (Fault("logs", partial=True, times=10_000), r"the query returned .*partial answer is not judged", None),
        # Several rows per deployment: judging one would judge part of the window.
        (None, r"the query must return one row per deployment", HourlyRows),
    ],
    ids=["log-analytics-error", "unknown-table", "partial-answer", "rows-by-hour"],
)
def test_a_kpi_query_that_fails_holds_the_canary_and_never_passes_it_until_the_stage_times_out(fault, reason, server):
    truth = None if fault is None and server is None else {"blue": 0.05, GREEN: 0.05}
    # The same world and max_duration as the green that passes (above): only the KPI can hold it.
    world, service, _ = setup(truth, server=server, step={"max_duration": "40m"})
    if fault is not None:
        world.emu.faults.append(fault)  # only the KPI queries go to Log Analytics here
    canary_seen = []

    def watch(r):
        if r.phase == P.CANARY and r.checks:
            canary_seen.append(r)
        return r.phase not in (P.PENDING, P.CANARY)

    stored = run_until(world, service, watch, ticks=70)
    assert canary_seen
    held = [r for r in canary_seen if any(c[0] == "kpi:conversion" and c[1] == "NoData" for c in r.checks)]
    assert held
    for r in held:
        (kpi,) = [c for c in r.checks if c[0] == "kpi:conversion"]
        assert re.search("cannot read the KPI: " + reason, kpi[2]), kpi
        assert r.step == 0
    assert any("kpi:conversion" in r.last_reason for r in held)
    # Never passed: the stage timed out into the policy's on_stage_timeout (pause), green never went to 100%.
    decisions = service.store.decisions(stored.rollout.id)
    assert not any(d.from_phase == P.CANARY and d.to_phase == P.BAKING for d in decisions)
    assert stored.rollout.phase == P.PAUSED, stored.rollout.last_reason
    timeout = next(d for d in decisions if d.from_phase == P.CANARY and d.to_phase == P.PAUSED)
    assert "reached no verdict within 40m" in timeout.reason
    assert "kpi:conversion: cannot read the KPI" in timeout.reason
    assert all(d.traffic.live.get(GREEN, 0) <= 50 for d in decisions)


def test_deployment_names_and_the_window_reach_the_query_only_as_let_bindings():
    world, service, _ = setup({"blue": 0.05, GREEN: 0.05})
    run_until(world, service, lambda r: r.phase not in (P.CANARY, P.PENDING))
    sent = kpi_queries_sent(world)
    assert sent
    for body in sent:
        text = body["query"]
        m = _BINDINGS.match(text)
        assert m is not None, text
        # The names, each only as a single-quoted literal in its own `let` statement...
        assert text[: m.end()].splitlines()[:3] == [
            "let endpoint_name = 'fraud-scorer';",
            "let blue_deployment = 'blue';",
            f"let green_deployment = '{GREEN}';",
        ]
        assert [unquote(m[i]) for i in (1, 2, 3)] == ["fraud-scorer", "blue", GREEN]
        # ...and the user's query follows unchanged: nothing was pasted into it.
        assert text[m.end() :] == QUERY
        assert GREEN not in text[m.end() :]
        # The window: datetime literals equal to the timespan the SDK sent for the same query.
        start, end = (datetime.fromisoformat(t.replace("Z", "+00:00")) for t in body["timespan"].split("/"))
        assert (m[4], m[5]) == (f"{start:%Y-%m-%dT%H:%M:%SZ}", f"{end:%Y-%m-%dT%H:%M:%SZ}")
        assert end > start
