"""The workbook, the health alert rules and the notification wiring in infra/, checked on the parsed
Bicep, and the log queries checked against the lines the app really logs.

Sources for the shapes used:
- Workbooks: `Microsoft.Insights/workbooks` 2023-06-01 (`kind`, `properties.serializedData`: the
  workbook's JSON as a string, `sourceId`, `category: 'workbook'`), Azure/azure-rest-api-specs
  specification/applicationinsights/resource-manager/Microsoft.Insights/stable/2023-06-01/workbooks_API.json.
- Log alerts: `Microsoft.Insights/scheduledQueryRules` 2022-06-15 (`kind: LogAlert`, `criteria.allOf[]`
  with `query`, `timeAggregation`, `operator`, `threshold`, `dimensions`, `failingPeriods`;
  `windowSize` at most 2 days), specification/monitor/resource-manager/Microsoft.Insights/stable/
  2022-06-15/scheduledQueryRule_API.json.
- The Kusto `parse` operator (simple mode: each column takes the text up to the next literal; the
  last one, or `*`, the rest): https://learn.microsoft.com/kusto/query/parse-operator
"""

from __future__ import annotations

import json
import logging
import re
from pathlib import Path
from typing import Any

import pytest

from tests.infra.bicep import INFRA, ROOT, body, condition, mentions, parse, resources

# -- the log lines the app writes, from its own source ----------------------------------------------


def _format_string(path: Path, starts_with: str) -> str:
    """A log call's format string in the app's source: the test breaks if the app changes it."""
    text = path.read_text()
    found = re.findall(r'log\.\w+\(\s*"(' + re.escape(starts_with) + r'[^"]*)"', text)
    assert found, f"no log line starting {starts_with!r} in {path.name}"
    return found[0]


DECISION = _format_string(ROOT / "shared" / "shell" / "acting.py", "rollout %s [%s]")
STARTED = _format_string(ROOT / "shared" / "shell" / "starting.py", "rollout %s started")
TICK = _format_string(ROOT / "functions" / "judge_queue.py", "tick: ")  # one per work item
DISPATCH = _format_string(ROOT / "functions" / "reconcile_timer.py", "tick: ")  # one per timer tick
NOT_DELIVERED_FROM = ROOT / "shared" / "adapters" / "notify_webhook.py"


def kusto_parse(clause: str) -> re.Pattern[str]:
    """`parse message with "lit" col:type "lit" ... [*]` as a regex (Kusto's simple mode): each column
    or `*` takes the shortest text up to the next literal (a typed column only what its type reads:
    digits for long/int); the last one takes the rest."""
    tokens = re.findall(r'"((?:[^"\\]|\\.)*)"|(\*)|(\w+)(?::(\w+))?', clause)
    pattern = "^"
    for i, (literal, star, column, kind) in enumerate(tokens):
        rest = ".*" if i == len(tokens) - 1 else ".*?"
        if star:
            pattern += rest
        elif column:
            pattern += f"(?P<{column}>" + (r"-?\d+" if kind in ("long", "int") else rest) + ")"
        else:
            pattern += re.escape(literal)
    return re.compile(pattern + "$", re.S)


def parse_clauses(kql: str) -> list[str]:
    return [m.group(1) for m in re.finditer(r"\|\s*parse message with (.+)", kql)]


def parse_with(kql_clause: str, line: str) -> dict[str, str] | None:
    match = kusto_parse(kql_clause).match(line)
    return match.groupdict() if match else None


WORKBOOK = json.loads((INFRA / "workbook.json").read_text())


def _workbook_queries(items: list[dict[str, Any]]) -> list[tuple[str, str]]:
    found = []
    for item in items:
        content = item.get("content", {})
        if item["type"] == 3:
            found.append((item["name"], content["query"]))
        if item["type"] == 12:
            found += _workbook_queries(content["items"])
    return found


QUERIES = {
    **{f"workbook:{name}": q for name, q in _workbook_queries(WORKBOOK["items"])},
    **{f"alert:{p.name}": p.read_text() for p in (INFRA / "queries").glob("*.kql")},
}


def test_the_kusto_parse_model_is_right_on_the_documented_example():
    """The Kusto docs' own example: `parse EventText with * "resourceName=" resourceName ", totalSlices=" ...`."""
    clause = '* "resourceName=" resourceName ", totalSlices=" totalSlices:long * ", sliceNumber=" sliceNumber:long *'
    line = "Event: NotifySliceRelease (resourceName=PipelineScheduler, totalSlices=27, sliceNumber=23, lockTime=02/17)"
    assert parse_with(clause, line) == {"resourceName": "PipelineScheduler", "totalSlices": "27", "sliceNumber": "23"}
    assert parse_with('"tick: " due:long " due, " *', "something else") is None


def test_every_query_parses_the_decision_lines_the_app_logs():
    line = DECISION % ("r-0fa7696ebae57ad20004", "fraud-scorer", "Canary", "RollingBack", "failed: latency [x -> y]")
    clauses = [c for q in QUERIES.values() for c in parse_clauses(q) if '" -> "' in c]
    assert len(clauses) >= 3  # the workbook's tables and drill-down, and the stuck-rollout alert
    for clause in clauses:
        fields = parse_with(clause, line)
        assert fields is not None, clause
        assert (fields["rolloutId"], fields["endpoint"], fields["fromPhase"], fields["toPhase"]) == (
            "r-0fa7696ebae57ad20004",
            "fraud-scorer",
            "Canary",
            "RollingBack",
        )


def test_every_query_parses_the_start_and_tick_lines_the_app_logs():
    started = STARTED % ("r-0fa7696ebae57ad20004", "fraud-model:2 registered; green fraud-model-v2 will be a copy")
    tick = TICK % (3, 2, 0, 1, 0, 4)
    start_clauses = [c for q in QUERIES.values() for c in parse_clauses(q) if '" started: "' in c]
    tick_clauses = [c for q in QUERIES.values() for c in parse_clauses(q) if c.startswith('"tick: "')]
    assert start_clauses
    assert tick_clauses
    for clause in start_clauses:
        fields = parse_with(clause, started)
        assert fields is not None, clause
        assert fields["rolloutId"] == "r-0fa7696ebae57ad20004", clause
        assert fields.get("model", "fraud-model:2") == "fraud-model:2"
    for clause in tick_clauses:
        fields = parse_with(clause, tick)
        assert fields is not None, clause
        assert (fields["due"], fields["failed"]) == ("3", "1")


def test_the_queries_filter_on_what_the_lines_start_with():
    """`startswith` filters run before `parse`; they must match the logged prefixes exactly."""
    assert DECISION.startswith("rollout %s [")
    assert STARTED.startswith("rollout %s started: ")
    assert TICK.startswith("tick: ")
    for name, query in QUERIES.items():
        for prefix in re.findall(r'message startswith "([^"]+)"', query):
            assert prefix in ("rollout r-", "tick: ", "notification "), (name, prefix)
    assert "NOT delivered" in NOT_DELIVERED_FROM.read_text()


def test_the_queries_parse_a_real_rollouts_log(tmp_path, caplog):
    """A whole rollout on the simulated clock (the dry run's in-process service): every decision
    line it logged is read by the workbook's parse, and the phases read back are the real ones."""
    from demo.dryrun import simulate

    scenario = tmp_path / "healthy.yaml"
    scenario.write_text("rpm: 600\nminutes: 240\n")
    with caplog.at_level(logging.INFO, logger="safe_rollout"):
        result = simulate(ROOT / "policy.yaml", scenario)
    assert str(result.phase) == "Succeeded"
    lines = [r.getMessage() for r in caplog.records if r.getMessage().startswith("rollout r-")]
    (clause,) = {c for c in parse_clauses(QUERIES["workbook:in-flight"]) if '" -> "' in c}
    read = [f for f in (parse_with(clause, line) for line in lines) if f is not None]
    phases = [f["toPhase"] for f in read]
    assert phases[-1] == "Succeeded"
    assert {"Mirroring", "Canary", "Baking"} <= set(phases)
    (start_clause,) = {c for c in parse_clauses(QUERIES["workbook:in-flight"]) if '" started: "' in c}
    starts = [f for f in (parse_with(start_clause, line) for line in lines) if f is not None]
    assert [s["model"] for s in starts] == ["fraud-model:2"]
    assert {f["rolloutId"] for f in read} == {starts[0]["rolloutId"]}


# -- the workbook ------------------------------------------------------------------------------------


def test_the_workbook_is_deployed_from_its_json_on_the_app_insights_component():
    ((_sym, res),) = resources("main.bicep", "Microsoft.Insights/workbooks").items()
    props = body(res)["properties"]
    assert body(res)["kind"] == "shared"
    assert props["category"] == "workbook"
    assert mentions(props["sourceId"], "insights")
    assert mentions(props["serializedData"], "workbook.json")
    assert mentions(props["serializedData"], "__APP_INSIGHTS_ID__")
    assert WORKBOOK["version"] == "Notebook/1.0"
    assert WORKBOOK["fallbackResourceIds"] == ["__APP_INSIGHTS_ID__"]


def test_the_workbook_shows_rollouts_in_flight_and_recent_decisions_over_time_and_a_drill_down():
    names = {name.removeprefix("workbook:") for name in QUERIES if name.startswith("workbook:")}
    assert {"in-flight", "recent", "decisions-over-time", "ticks", "drill-decisions", "drill-log"} <= names
    params = next(i for i in WORKBOOK["items"] if i["type"] == 9)["content"]["parameters"]
    assert {p["name"] for p in params} == {"TimeRange", "RolloutId"}
    drill = next(i for i in WORKBOOK["items"] if i["type"] == 12)
    assert drill["conditionalVisibility"]["parameterName"] == "RolloutId"
    for name, query in QUERIES.items():
        if name.startswith("workbook:drill-"):
            assert "{RolloutId}" in query, name
    for item in WORKBOOK["items"]:  # clicking a rollout in a table opens its drill-down
        if item.get("name") in ("in-flight", "recent"):
            assert item["content"]["exportParameterName"] == "RolloutId"
            assert item["content"]["exportFieldName"] == "rolloutId"
    decisions_over_time = next(i for i in WORKBOOK["items"] if i.get("name") == "decisions-over-time")
    assert decisions_over_time["content"]["visualization"] in ("barchart", "timechart")


def test_every_workbook_query_targets_application_insights():
    def items(nodes: list[dict[str, Any]]) -> list[dict[str, Any]]:
        out = []
        for node in nodes:
            if node["type"] == 3:
                out.append(node["content"])
            if node["type"] == 12:
                out += items(node["content"]["items"])
        return out

    for content in items(WORKBOOK["items"]):
        assert content["queryType"] == 0  # Logs
        assert content["resourceType"] == "microsoft.insights/components"
        assert content["crossComponentResources"] == ["__APP_INSIGHTS_ID__"]


# -- health alerts -----------------------------------------------------------------------------------

_DURATION = re.compile(r"^P(?:(\d+)D)?(?:T(?:(\d+)H)?(?:(\d+)M)?)?$")


def _minutes(iso: str) -> int:
    match = _DURATION.match(iso)
    assert match, iso
    assert iso not in ("P", "PT"), iso
    return int(match[1] or 0) * 1440 + int(match[2] or 0) * 60 + int(match[3] or 0)


def _log_alerts() -> dict[str, dict[str, Any]]:
    return resources("main.bicep", "Microsoft.Insights/scheduledQueryRules")


def test_there_are_log_alerts_for_failed_ticks_missing_ticks_and_stuck_rollouts():
    alerts = _log_alerts()
    queries = {}
    for sym, res in alerts.items():
        (criterion,) = body(res)["properties"]["criteria"]["allOf"]
        text = json.dumps(criterion["query"])
        (file,) = re.findall(r"queries/([\w-]+\.kql)", text)
        queries[sym] = file
        assert (INFRA / "queries" / file).exists()
        assert mentions(condition(res), "enableHealthAlerts")
    assert sorted(queries.values()) == ["failed-ticks.kql", "stuck-rollouts.kql", "ticks.kql"]


@pytest.mark.parametrize("sym", sorted(_log_alerts()))
def test_each_log_alert_is_a_valid_rule_on_app_insights(sym):
    rule = body(_log_alerts()[sym])
    props = rule["properties"]
    assert rule["kind"] == "LogAlert"
    assert [mentions(s, "insights") for s in props["scopes"]] == [True]
    window, every = _minutes(props["windowSize"]), _minutes(props["evaluationFrequency"])
    assert every <= window <= 2 * 1440  # at most 2 days
    (criterion,) = props["criteria"]["allOf"]
    assert criterion["timeAggregation"] == "Count"
    assert criterion["operator"] in ("GreaterThan", "LessThan")
    assert props["severity"] in range(5)


def test_the_stuck_rollout_alert_splits_by_columns_its_query_returns_and_knows_the_final_phases():
    rule = body(_log_alerts()["stuckRollouts"])
    (criterion,) = rule["properties"]["criteria"]["allOf"]
    query = (INFRA / "queries" / "stuck-rollouts.kql").read_text()
    projected = re.search(r"\| project (.+)$", query.strip().splitlines()[-1])[1]
    columns = {part.split("=")[0].strip() for part in projected.split(",")}
    assert {d["name"] for d in criterion["dimensions"]} <= columns
    from shared.rollout.model import TERMINAL_PHASES

    for phase in TERMINAL_PHASES:
        assert f'"{phase}"' in query
    assert "__STUCK_AFTER__" in query
    assert "${stuckAfterHours}h" in json.dumps(criterion["query"])
    stuck = parse("main.bicep")["parameters"]["stuckAfterHours"]
    assert 24 < int(stuck["default"]) <= 46  # after the default 24 h deadline, within the 2-day window


def test_dead_lettered_events_raise_alerts_on_both_topics():
    alerts = {sym: body(r) for sym, r in resources("main.bicep", "Microsoft.Insights/metricAlerts").items()}
    dead = {
        c["metricNamespace"]: sym
        for sym, rule in alerts.items()
        for c in rule["properties"]["criteria"]["allOf"]
        if c["metricName"] == "DeadLetteredCount"
    }
    assert set(dead) == {"Microsoft.EventGrid/topics", "Microsoft.EventGrid/systemTopics"}
    assert mentions(alerts[dead["Microsoft.EventGrid/topics"]]["properties"]["scopes"], "lifecycleTopic")
    assert mentions(alerts[dead["Microsoft.EventGrid/systemTopics"]]["properties"]["scopes"], "workspace")
    assert "systemTopicId" in parse("workspace.bicep")["outputs"]


# -- notifications -----------------------------------------------------------------------------------


def test_the_lifecycle_topic_feeds_the_notify_function_with_cloudevents():
    ((_sym, res),) = resources("main.bicep", "Microsoft.EventGrid/topics/eventSubscriptions").items()
    sub = body(res)
    assert sub["parent"] == "lifecycleTopic"
    cond = condition(res)
    assert mentions(cond, "wireEvents")
    assert mentions(cond, "enableLifecycleTopic")
    destination = sub["properties"]["destination"]
    assert destination["endpointType"] == "AzureFunction"
    source = (ROOT / "functions" / "notify.py").read_text()
    name = re.search(r'function_name\("(\w+)"\)', source)[1]
    assert "event_grid_trigger" in source
    assert destination["properties"]["resourceId"] == "${app.id}/functions/" + name
    assert sub["properties"]["eventDeliverySchema"] == "CloudEventSchemaV1_0"
    topic = body(resources("main.bicep", "Microsoft.EventGrid/topics")["lifecycleTopic"])
    assert topic["properties"]["inputSchema"] == "CloudEventSchemaV1_0"
    retry = sub["properties"]["retryPolicy"]
    assert int(retry["eventTimeToLiveInMinutes"]) <= 60  # a day-old notification helps nobody
    dead_letter = sub["properties"]["deadLetterWithResourceIdentity"]
    assert dead_letter["deadLetterDestination"]["properties"]["blobContainerName"] == "deadLetterContainer"
    writers = [
        body(r)
        for r in resources("main.bicep", "Microsoft.Authorization/roleAssignments").values()
        if mentions(body(r)["properties"]["principalId"], "lifecycleTopic")
    ]
    assert len(writers) == 1
    assert "storageBlobDataContributor" in json.dumps(writers[0]["properties"])


def test_webhook_urls_reach_the_app_as_secure_app_settings_never_as_plain_parameters():
    main = parse("main.bicep")
    param = main["parameters"]["notificationSettings"]
    assert param["type"] == "object"
    assert any("secure" in json.dumps(d) for d in param.get("decorators", [])), param
    text = (INFRA / "main.bicep").read_text()
    assert "notificationAppSettings)" in text  # appended to the app's settings
    assert "hooks.slack.com" not in text
    assert "webhook.office.com" not in text
    policy = (ROOT / "policy.yaml").read_text()
    assert "https://" not in policy.split("targets:")[1]


def test_the_timers_own_tick_line_counts_as_a_tick_but_never_as_a_failure():
    """The dispatcher logs `tick: ...` every minute (the missing-ticks alert sees it) in a form the
    failed-ticks parse does not read: only the worker's per-item lines report failures."""
    line = DISPATCH % (3, 1, 0, "")
    assert line.startswith("tick: ")
    for clause in [c for q in QUERIES.values() for c in parse_clauses(q) if c.startswith('"tick: "')]:
        assert parse_with(clause, line) is None, clause
