"""The Monitor adapter through the real azure-monitor-querymetrics and azure-monitor-query SDKs
against the emulator's traffic simulator."""

from __future__ import annotations

from datetime import timedelta

import numpy as np
import pytest

from emulator.azure import Fault
from emulator.traffic import Scenario
from shared.adapters.monitor import traffic_log_query
from shared.ports import MetricsQuery, ProviderError
from shared.rollout.analysis import WindowMetrics
from shared.rollout.model import EndpointRef
from tests.emulated import make_world

CODES = ("5xx", "408", "424")


def add_green(world, scenario: Scenario | None = None, name: str = "green") -> str:
    world.emu.add_deployment("fraud-scorer", name, ("fraud-model", "2"), scenario=scenario)
    return name


def query(world, start, end=None, endpoint: EndpointRef | None = None) -> MetricsQuery:
    return MetricsQuery(
        endpoint=endpoint or world.endpoint,
        blue="blue",
        green="green",
        start=start,
        end=end or world.clock.now() - timedelta(minutes=1),
        error_codes=CODES,
        percentile=90,
    )


def one(world, q, logs=False) -> WindowMetrics:
    (result,) = world.metrics(logs=logs).fetch([q])
    assert isinstance(result, WindowMetrics), result
    return result


def test_mirror_copies_about_the_share_and_users_never_get_greens_answers():
    world = make_world(rpm=2000)
    add_green(world)
    start = world.clock.now()
    world.emu.set_traffic_by_hand("fraud-scorer", {"blue": 100}, {"green": 20})
    world.advance(31)
    m = one(world, query(world, start))
    assert m.green.requests / m.blue.requests == pytest.approx(0.20, abs=0.01)
    assert world.emu.sim.user_answers[("fraud-scorer", "green")] == 0
    # every user answer came from blue (the window leaves out the newest, unsettled minute)
    assert world.emu.sim.user_answers[("fraud-scorer", "blue")] >= m.blue.requests


def test_live_ten_percent_routes_about_ten_percent_to_green():
    world = make_world(rpm=2000)
    add_green(world)
    start = world.clock.now()
    world.emu.set_traffic_by_hand("fraud-scorer", {"blue": 90, "green": 10})
    world.advance(31)
    m = one(world, query(world, start))
    share = m.green.requests / (m.green.requests + m.blue.requests)
    assert share == pytest.approx(0.10, abs=0.01)
    assert world.emu.sim.user_answers[("fraud-scorer", "green")] >= m.green.requests > 0


def test_errors_count_what_the_policy_counts_and_429_is_not_an_error():
    world = make_world(rpm=3000)
    add_green(world, Scenario(error_rate=0.0, model_error_rate=0.05, throttle_rate=0.2))
    start = world.clock.now()
    world.emu.set_traffic_by_hand("fraud-scorer", {"blue": 50, "green": 50})
    world.advance(11)
    m = one(world, query(world, start))
    assert m.green.errors / m.green.requests == pytest.approx(0.05 * 1.0, abs=0.01)
    assert m.green.errors < 0.1 * m.green.requests  # the 20% of 429s are not counted


def test_without_logs_latency_is_per_minute_percentiles_with_empty_minutes_left_out():
    world = make_world(rpm=600)
    add_green(world, Scenario(latency_ms=200))
    start = world.clock.now()
    world.advance(5)  # green idle: its minutes are empty, not zero
    world.emu.set_traffic_by_hand("fraud-scorer", {"blue": 100}, {"green": 50})
    world.advance(6)
    m = one(world, query(world, start))
    assert m.green.latency_kind == "minute"
    assert len(m.green.latency_ms) == 5  # minutes 5..9 settled; 0..4 empty; the newest one still lagging
    assert len(m.blue.latency_ms) == 10
    assert np.median(m.green.latency_ms) > 1.5 * np.median(m.blue.latency_ms)
    assert len(m.green.cpu_percent) == 5


def test_with_logs_latency_is_per_request_samples():
    world = make_world(rpm=600)
    add_green(world, Scenario(latency_ms=200))
    start = world.clock.now()
    world.emu.set_traffic_by_hand("fraud-scorer", {"blue": 100}, {"green": 20})
    world.advance(11)
    m = one(world, query(world, start), logs=True)
    assert m.green.latency_kind == "request"
    assert len(m.green.latency_ms) == m.green.requests
    assert np.median(m.green.latency_ms) == pytest.approx(200, rel=0.15)
    (_, _, body) = next(r for r in world.emu.requests if "loganalytics" in r[1])
    assert "EndpointName =~ 'fraud-scorer'" in body["query"]
    assert f"_ResourceId =~ '{world.endpoint.arm_id}'" in body["query"]


@pytest.mark.parametrize("partial", [True, False])
def test_partial_or_failed_logs_are_provider_errors_never_a_silent_fallback(partial):
    world = make_world()
    add_green(world)
    start = world.clock.now()
    world.emu.set_traffic_by_hand("fraud-scorer", {"blue": 100}, {"green": 20})
    world.advance(11)
    world.emu.faults.append(Fault("logs", status=500, times=5, partial=partial))
    (result,) = world.metrics(logs=True).fetch([query(world, start)])
    assert isinstance(result, ProviderError)
    assert "traffic log" in str(result)
    assert ("PartialError" if partial else "HTTP 500") in str(result)


def test_metrics_failure_is_a_value_not_an_exception():
    world = make_world()
    add_green(world)
    start = world.clock.now()
    world.advance(5)
    world.emu.faults.append(Fault("metrics", status=503, times=10))
    (result,) = world.metrics().fetch([query(world, start)])
    assert isinstance(result, ProviderError)
    assert "HTTP 503" in str(result)


def test_many_rollouts_share_batched_calls():
    world = make_world()
    endpoints = []
    for i in range(120):
        name = f"ep-{i:03d}"
        world.emu.add_endpoint(name, rpm=60)
        world.emu.add_deployment(name, "blue", ("fraud-model", "1"), traffic=100)
        world.emu.add_deployment(name, "green", ("fraud-model", "2"))
        endpoints.append(world.endpoint.model_copy(update={"name": name}))
    start = world.clock.now()
    world.advance(3)
    source = world.metrics()
    results = source.fetch([query(world, start, endpoint=e) for e in endpoints])
    assert all(isinstance(r, WindowMetrics) for r in results)
    # four metric groups (endpoint request counts, endpoint P90, green's CPU and memory, green's
    # requests at deployment scope), ceil(120 / 50) calls each
    assert source.calls["metrics"] == 4 * 3
    assert all(r.blue.requests > 0 for r in results if isinstance(r, WindowMetrics))


@pytest.mark.parametrize("bad", ['x" or 1==1 //', "blue\nunion", "a", "-leading", "ok-name\\"])
def test_kql_refuses_names_that_could_change_the_query(bad):
    with pytest.raises(ValueError, match="invalid name"):
        traffic_log_query("fraud-scorer", [bad], *(np.datetime64("2026-01-01").astype(object),) * 2, 100)
