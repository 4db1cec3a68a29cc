"""KPI queries: user strings reach KQL only as quoted literals; failures hold; verdicts."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from emulator.kpi_rows import _BINDINGS, unquote
from shared.adapters.kpi_queries import KpiQueries
from shared.rollout.analysis import Budget, Verdict
from shared.rollout.kpi import KpiReading, KpiRow, bindings, judge_one, kql_string
from shared.rollout.prediction_policy import KpiCheck
from tests.emulated import make_world

BUDGET = Budget(alpha=0.001, beta=0.05)
QUERY = (
    "AppRequests | where TimeGenerated between (window_start .. window_end)"
    " | summarize Count = count(), Successes = countif(Converted) by Deployment = DeploymentName"
)
START = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    "hostile",
    ["plain", "o'brien", "back\\slash", "'; drop table x; //", "line\nbreak\ttab", "ends with \\", "\\'", "ünïcødé"],
)
def test_kql_strings_round_trip_through_a_kql_parser(hostile):
    literal = kql_string(hostile)
    assert literal.startswith("'")
    assert literal.endswith("'")
    assert "\n" not in literal  # one line: a value never ends the statement
    assert unquote(literal[1:-1]) == hostile


def test_a_control_character_is_refused_not_pasted():
    for bad in ("bell\x07", "carriage\rreturn"):
        with pytest.raises(ValueError, match="control character"):
            kql_string(bad)


def test_bindings_are_let_statements_the_query_can_use():
    text = bindings(endpoint="fraud-scorer", blue="blue", green="o'green", start=START, end=START + timedelta(hours=1))
    m = _BINDINGS.match(text)
    assert m is not None
    assert m.end() == len(text)
    assert unquote(m[3]) == "o'green"
    assert m[4] == "2026-11-02T09:00:00Z"
    assert m[5] == "2026-11-02T10:00:00Z"


def kpi(**kw) -> KpiCheck:
    return KpiCheck.model_validate({"name": "conversion", "query": QUERY, "max_decrease": 0.02} | kw)


def test_kpi_policy_errors_name_the_field():
    from pydantic import ValidationError

    with pytest.raises(ValidationError, match="leave_alone"):
        kpi(leave_alone=0.05)
    with pytest.raises(ValidationError, match="app_insights KPI needs `resource`"):
        kpi(source="app_insights")
    with pytest.raises(ValidationError, match="name"):
        kpi(name="has space")


def test_kpi_verdicts_in_both_directions():
    rows = (KpiRow(deployment="blue", count=5000, successes=500), KpiRow(deployment="green", count=5000, successes=300))
    worse = judge_one(kpi(), KpiReading(name="conversion", rows=rows), "blue", "green", BUDGET)
    assert worse.verdict == Verdict.FAIL
    assert worse.check == "kpi:conversion"
    # The same figures where lower is better: green improved.
    better = judge_one(
        kpi(direction="lower_is_better"), KpiReading(name="conversion", rows=rows), "blue", "green", BUDGET
    )
    assert better.verdict == Verdict.PASS


def test_a_failing_or_thin_kpi_holds_with_the_reason():
    failed = judge_one(
        kpi(), KpiReading(name="conversion", error="the query failed (HttpResponseError: boom)"), "b", "g", BUDGET
    )
    assert failed.verdict == Verdict.NO_DATA
    assert "boom" in failed.summary
    thin = KpiReading(name="conversion", rows=(KpiRow(deployment="b", count=10, successes=1),))
    assert judge_one(kpi(), thin, "b", "g", BUDGET).verdict == Verdict.NO_DATA
    no_column = KpiReading(
        name="conversion", rows=(KpiRow(deployment="b", count=500), KpiRow(deployment="g", count=500))
    )
    assert "Successes" in judge_one(kpi(), no_column, "b", "g", BUDGET).summary


def _queries(world) -> KpiQueries:
    from emulator.transport import StaticCredential

    return KpiQueries(StaticCredential(), workspace_id="law-1", transport=world.transport)


def test_kpi_query_through_the_sdk_against_the_emulator():
    world = make_world(rpm=600)
    world.emu.add_deployment("fraud-scorer", "green", ("fraud-model", "2"))
    world.emu.set_traffic_by_hand("fraud-scorer", {"blue": 50, "green": 50})
    world.emu.kpi_truth[QUERY] = {"blue": 0.10, "green": 0.05}
    start = world.clock.now()
    world.advance(30)
    world.emu.settle()
    reading = _queries(world).read(kpi(), world.endpoint, "blue", "green", start, world.clock.now())
    assert reading.error is None, reading.error
    rows = {r.deployment: r for r in reading.rows}
    assert rows["green"].count > 5000
    assert rows["blue"].count > 5000
    assert judge_one(kpi(), reading, "blue", "green", BUDGET).verdict == Verdict.FAIL
    # The emulator parsed the deployments back out of the literals: a quote in a name cannot escape.
    assert "let green_deployment = 'green';" in str(world.emu.requests[-1][2]["query"])


def test_a_query_log_analytics_refuses_is_a_provider_error_that_holds():
    world = make_world()
    reading = _queries(world).read(kpi(query="not registered | take 1"), world.endpoint, "blue", "green", START, START)
    assert reading.error is not None
    assert "failed" in reading.error
    assert judge_one(kpi(), reading, "blue", "green", BUDGET).verdict == Verdict.NO_DATA


@pytest.mark.parametrize(
    ("green_row", "column", "words"),
    [
        (KpiRow(deployment="green", count=5000, successes=-100), "Successes", "outside [0, Count = 5000]"),
        (KpiRow(deployment="green", count=5000, successes=6000), "Successes", "outside [0, Count = 5000]"),
        (KpiRow(deployment="green", count=-5, successes=0), "Count", "below 0"),
        (KpiRow(deployment="green", count=5000, mean=float("inf"), variance=1.0), "Mean", "not a finite number"),
        (KpiRow(deployment="green", count=5000, mean=1.0, variance=float("nan")), "Variance", "not a finite number"),
        (KpiRow(deployment="green", count=5000, mean=1.0, variance=-2.0), "Variance", "below 0"),
    ],
    ids=["negative-successes", "successes-over-count", "negative-count", "infinite-mean", "nan-variance", "neg-var"],
)
def test_an_impossible_kpi_row_holds_naming_the_kpi_the_deployment_and_the_column(green_row, column, words):
    kind = "proportion" if green_row.successes is not None else "mean"
    blue = (
        KpiRow(deployment="blue", count=5000, successes=500)
        if kind == "proportion"
        else KpiRow(deployment="blue", count=5000, mean=1.0, variance=1.0)
    )
    check = kpi(kind=kind, max_decrease=0.03 if kind == "proportion" else 0.5)
    result = judge_one(check, KpiReading(name="conversion", rows=(blue, green_row)), "blue", "green", BUDGET)
    assert result.verdict == Verdict.NO_DATA, result.summary
    assert "'conversion'" in result.summary
    assert "'green'" in result.summary
    assert column in result.summary, result.summary
    assert words in result.summary, result.summary


class _Rewritten:
    """Log Analytics as the emulator answers it, with green's row replaced by `green`."""

    def __init__(self, emu, green) -> None:
        self.emu, self.clock, self.green = emu, emu.clock, green

    def handle(self, method, url, headers, body):
        import json

        status, out_headers, payload = self.emu.handle(method, url, headers, body)
        if "api.loganalytics.io" not in url or status != 200:
            return status, out_headers, payload
        answer = json.loads(payload)
        for table in answer["tables"]:
            table["rows"] = [[d, *self.green] if d == "green" else [d, c, s] for d, c, s in table["rows"]]
        return status, out_headers, json.dumps(answer).encode()


@pytest.mark.parametrize(
    ("green", "words"),
    [
        ([5000, "many"], "Successes is 'many', not a number"),
        (["5000", 10], "Count is '5000', not a number"),
        ([5000, -3], "Successes is -3, outside [0, Count = 5000]"),
        ([5000, 5001], "Successes is 5001, outside [0, Count = 5000]"),
        ([5000.5, 10], "Count is 5000.5, not a whole number"),
    ],
    ids=["string-successes", "string-count", "negative", "over-count", "fraction"],
)
def test_a_malformed_kpi_answer_is_a_reading_error_naming_the_kpi_the_deployment_and_the_column(green, words):
    from emulator.transport import EmulatorTransport, StaticCredential

    world = make_world(rpm=600)
    world.emu.add_deployment("fraud-scorer", "green", ("fraud-model", "2"))
    world.emu.set_traffic_by_hand("fraud-scorer", {"blue": 50, "green": 50})
    world.emu.kpi_truth[QUERY] = {"blue": 0.10, "green": 0.10}
    start = world.clock.now()
    world.advance(30)
    world.emu.settle()
    queries = KpiQueries(
        StaticCredential(), workspace_id="law-1", transport=EmulatorTransport(_Rewritten(world.emu, green))
    )
    reading = queries.read(kpi(), world.endpoint, "blue", "green", start, world.clock.now())
    assert reading.error is not None
    assert not reading.rows
    assert "KPI 'conversion', deployment 'green'" in reading.error, reading.error
    assert words in reading.error, reading.error
    assert judge_one(kpi(), reading, "blue", "green", BUDGET).verdict == Verdict.NO_DATA
