"""Findings of a review of the Azure Monitor adapter: each window is judged on data that covers it,
or not judged at all."""

from __future__ import annotations

from datetime import timedelta

from emulator.azure import Fault
from emulator.traffic import Scenario
from shared.ports import ProviderError
from shared.rollout.model import is_valid_resource_name
from tests.adapters.test_monitor import add_green, query
from tests.emulated import make_world


def test_a_traffic_log_that_has_not_caught_up_with_the_window_is_not_judged():
    """Log Analytics ingests minutes after metrics settle: a window whose newest minutes are missing
    from the log would be judged on old requests only (a late regression unseen)."""
    world = make_world(rpm=2000)
    world.emu.logs_lag = timedelta(minutes=4)
    add_green(world, Scenario(latency_ms=200))
    start = world.clock.now()
    world.emu.set_traffic_by_hand("fraud-scorer", {"blue": 100}, {"green": 20})
    world.advance(8)
    (result,) = world.metrics(logs=True).fetch([query(world, start)])
    assert isinstance(result, ProviderError)
    assert "has not caught up" in str(result)
    assert "analysis.ingestion_lag" in str(result)


def test_a_traffic_log_that_covers_the_window_is_judged():
    world = make_world(rpm=2000)
    add_green(world, Scenario(latency_ms=200))
    start = world.clock.now()
    world.emu.set_traffic_by_hand("fraud-scorer", {"blue": 100}, {"green": 20})
    world.advance(8)
    (result,) = world.metrics(logs=True).fetch([query(world, start)])
    assert not isinstance(result, ProviderError), result
    assert result.green.latency_kind == "request"


def test_green_cpu_and_memory_unread_is_a_provider_error_not_a_pass():
    world = make_world()
    add_green(world)
    start = world.clock.now()
    world.emu.set_traffic_by_hand("fraud-scorer", {"blue": 90, "green": 10})
    world.advance(8)
    world.emu.faults.append(Fault("metrics:CpuUtilizationPercentage", status=429, times=10, retry_after=1))
    (result,) = world.metrics().fetch([query(world, start)])
    assert isinstance(result, ProviderError)
    assert "CPU and memory not read" in str(result)


def test_a_name_with_a_trailing_newline_is_not_a_valid_resource_name():
    assert is_valid_resource_name("green")
    assert not is_valid_resource_name("green\n")


def test_endpoints_with_their_own_deployment_names_still_share_batched_calls():
    """120 endpoints whose blues and greens all have different names: still ceil(120 / 50) calls per
    metric group (the filter becomes every deployment rather than splitting the batch)."""
    from shared.rollout.analysis import WindowMetrics
    from tests.adapters.test_monitor import CODES

    world = make_world()
    for i in range(120):
        name = f"ep-{i:03d}"
        world.emu.add_endpoint(name, rpm=60)
        world.emu.add_deployment(name, f"blue-{i:03d}", ("fraud-model", "1"), traffic=100)
        world.emu.add_deployment(name, f"green-{i:03d}", ("fraud-model", "2"))
    start = world.clock.now()
    world.advance(3)
    queries = []
    for i in range(120):
        endpoint = world.endpoint.model_copy(update={"name": f"ep-{i:03d}"})
        q = query(world, start, endpoint=endpoint)
        queries.append(
            q.__class__(**{**q.__dict__, "blue": f"blue-{i:03d}", "green": f"green-{i:03d}", "error_codes": CODES})
        )
    source = world.metrics()
    results = source.fetch(queries)
    assert all(isinstance(r, WindowMetrics) for r in results), [r for r in results if not isinstance(r, WindowMetrics)][
        :2
    ]
    assert source.calls["metrics"] == 4 * 3
    assert all(r.blue is not None and r.blue.requests > 0 for r in results if isinstance(r, WindowMetrics))
