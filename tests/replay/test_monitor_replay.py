"""The Azure Monitor adapter over what Azure really answered (recorded sessions in
tests/recordings/, listed in its README). The recordings answer other queries than ours (an
Application Insights metric; an empty Log Analytics table), so they are served loosely: every call
to the same path gets Azure's recorded answer. What they prove is that the adapter reads Azure's
real payload shapes without failing, and that an answer it cannot tie to what it asked is never
judged: it is a provider error or a window without data (a hold), never a pass."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from emulator.transport import StaticCredential
from shared.adapters.monitor import MonitorMetrics
from shared.ports import MetricsQuery, ProviderError
from shared.rollout.analysis import WindowMetrics
from shared.rollout.model import EndpointRef, WorkspaceRef
from tests.replay.transport import ReplayTransport

METRICS = "azure-monitor-querymetrics/test_metrics_client.pyTestMetricsClienttest_batch_metrics_filter.json"
LOGS = "azure-monitor-query/test_logs_client.pyTestLogsClienttest_logs_single_query.json"
SUBSCRIPTION = "00000000-0000-0000-0000-000000000000"  # as sanitized in the recordings
ENDPOINT = EndpointRef(
    workspace=WorkspaceRef.parse(
        f"/subscriptions/{SUBSCRIPTION}/resourceGroups/rg/providers/Microsoft.MachineLearningServices/workspaces/ws"
    ),
    name="fraud-scorer",
)
START = datetime(2025, 7, 20, 9, 36, tzinfo=UTC)  # the recorded series' own hour


def query(tail: float | None = None) -> MetricsQuery:
    return MetricsQuery(
        endpoint=ENDPOINT,
        blue="blue",
        green="green",
        start=START,
        end=START + timedelta(minutes=30),
        error_codes=("5xx", "424"),
        percentile=90,
        region="eastus",
        tail_percentile=tail,
    )


def never_judged(result: WindowMetrics | ProviderError) -> None:
    if isinstance(result, ProviderError):
        assert str(result), "a provider error says why"
        return
    assert result.green.requests == 0, "requests read from a metric we did not ask for"
    assert result.green.latency_ms == ()
    assert result.green.minutes == (), "per-minute figures read from a metric we did not ask for"


@pytest.mark.parametrize("tail", [None, 99.0])
def test_a_recorded_metrics_batch_answer_is_read_without_error_and_never_judged(tail):
    """With the tail check too: the recorded answer holds neither percentile (nor any metric tied to
    the resource), so no minute is filled from it."""
    transport = ReplayTransport(METRICS, loose=True)
    adapter = MonitorMetrics(
        StaticCredential(), metrics_endpoint="https://{region}.metrics.monitor.azure.com", transport=transport
    )
    (result,) = adapter.fetch([query(tail)])
    transport.assert_no_misses()
    assert transport.served_for("POST", "metrics:getBatch"), "the recorded answer was served"
    never_judged(result)


def test_a_recorded_empty_traffic_log_answer_is_a_provider_error_when_metrics_saw_traffic():
    """Metrics from the emulator (green served requests), Log Analytics from the recording (an empty
    PrimaryResult table, Azure's real shape): no per-request rows where requests were served is
    a provider error with the reason, never a pass on the per-minute data."""
    from emulator.traffic import Scenario
    from tests.adapters.test_monitor import add_green
    from tests.adapters.test_monitor import query as emulated_query
    from tests.emulated import make_world

    world = make_world(rpm=600)
    add_green(world, Scenario())
    start = world.clock.now()
    world.emu.set_traffic_by_hand("fraud-scorer", {"blue": 100}, {"green": 20})
    world.advance(11)
    replay = ReplayTransport(LOGS, substitutions={SUBSCRIPTION: "law-1"}, loose=True)  # its workspace id
    world.transport.session.mount("https://api.loganalytics.io/", replay.session.get_adapter("https://"))
    (result,) = world.metrics(logs=True).fetch([emulated_query(world, start)])
    assert replay.served_for("POST", "/query"), "the recorded Log Analytics answer was served"
    replay.assert_no_misses()
    assert isinstance(result, ProviderError)
    assert "traffic log" in str(result)
