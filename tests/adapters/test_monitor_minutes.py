"""Per-minute figures (`DeploymentMetrics.minutes`) and the tail percentile, through the real
azure-monitor-querymetrics and azure-monitor-query SDKs against the emulator: each minute's requests
and errors are counted as the totals are (the totals are their sums), its latency and tail
percentiles are what Azure Monitor served for that minute, the tail rides in the latency call (no
call per rollout), and a tail that cannot be read is a provider error, never a pass."""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime, timedelta
from urllib.parse import parse_qs, urlsplit

import numpy as np
import pytest

from emulator.azure import Fault
from emulator.traffic import Scenario
from shared.adapters import metric_catalogue
from shared.adapters.monitor import is_deployment_error, is_error
from shared.ports import MetricsQuery, ProviderError
from shared.rollout.analysis import DeploymentMetrics, WindowMetrics
from tests.emulated import World, make_world

CODES = ("5xx", "408", "424")


def q_for(world: World, start: datetime, *, endpoint=None, percentile=90.0, tail=99.0) -> MetricsQuery:
    return MetricsQuery(
        endpoint=endpoint or world.endpoint,
        blue="blue",
        green="green",
        start=start,
        end=world.clock.now() - timedelta(minutes=1),
        error_codes=CODES,
        percentile=percentile,
        tail_percentile=tail,
    )


def fetch_one(world: World, q: MetricsQuery, *, logs: bool = False) -> WindowMetrics:
    (m,) = world.metrics(logs=logs).fetch([q])
    assert isinstance(m, WindowMetrics), m
    return m


def canary(*, mirrored_in_endpoint_metrics: bool = True, mirror: bool = False) -> tuple[World, datetime]:
    """Green idle for 3 minutes (empty minutes), then a 10% canary (or a 20% mirror), with errors."""
    world = make_world(rpm=1500, blue=Scenario(error_rate=0.01, timeout_rate=0.01))
    world.emu.mirrored_in_endpoint_metrics = mirrored_in_endpoint_metrics
    world.emu.add_deployment(
        "fraud-scorer",
        "green",
        ("fraud-model", "2"),
        scenario=Scenario(latency_ms=150, error_rate=0.02, model_error_rate=0.03, throttle_rate=0.05),
    )
    start = world.clock.now()
    world.advance(3)
    if mirror:
        world.emu.set_traffic_by_hand("fraud-scorer", {"blue": 100}, {"green": 20})
    else:
        world.emu.set_traffic_by_hand("fraud-scorer", {"blue": 90, "green": 10})
    world.advance(9)
    return world, start


def settled_minutes(world: World, deployment: str, q: MetricsQuery) -> dict[datetime, object]:
    visible = world.clock.now() - world.emu.metrics_lag
    lo = q.start.replace(second=0, microsecond=0)
    stats = world.emu.sim.stats.get(("fraud-scorer", deployment), {})
    return {t: s for t, s in stats.items() if lo <= t < q.end and t < visible and s.latencies}


def endpoint_truth(s, codes=CODES, *, live_only=False) -> tuple[int, int]:
    by_status = s.live_by_status if live_only else s.by_status
    requests = sum(by_status.values())
    errors = sum(n for (code, model), n in by_status.items() if is_error(str(code), str(model), codes))
    return requests, errors


def deployment_truth(s, codes=CODES) -> tuple[int, int]:
    """What deployment-scope RequestsPerMinute counts: every request served, by the model's status."""
    requests = sum(s.by_status.values())
    errors = sum(n for (_, model), n in s.by_status.items() if is_deployment_error(str(model), codes))
    return requests, errors


def assert_sums(d: DeploymentMetrics) -> None:
    assert d.minutes, "per-minute figures are filled"
    assert d.requests == sum(s.requests for s in d.minutes)
    assert d.errors == sum(s.errors for s in d.minutes)
    times = [s.at for s in d.minutes]
    assert times == sorted(times), "oldest first"
    assert len(set(times)) == len(times), "one per minute"
    assert all(s.at.second == 0 and s.at.microsecond == 0 and s.at.utcoffset() == timedelta(0) for s in d.minutes)
    assert all(s.requests or s.latency_ms is not None for s in d.minutes), "empty minutes are left out"


def getbatch_params(world: World) -> list[dict[str, str]]:
    out = []
    for _, url, _ in world.emu.requests:
        if "metrics:getbatch" in url.lower():
            out.append({k: v[0] for k, v in parse_qs(urlsplit(url).query).items()})
    return out


# -- (a) and (b): endpoint scope ------------------------------------------------------------------


def test_minutes_at_endpoint_scope_sum_to_the_totals_and_match_what_azure_served_each_minute():
    world, start = canary()
    q = q_for(world, start)
    m = fetch_one(world, q)
    assert m.blue is not None
    for name, d in (("blue", m.blue), ("green", m.green)):
        assert_sums(d)
        truth = settled_minutes(world, name, q)
        assert [s.at for s in d.minutes] == sorted(truth)  # every settled minute with traffic, no other
        for sample in d.minutes:
            s = truth[sample.at]
            assert (sample.requests, sample.errors) == endpoint_truth(s)
            assert sample.latency_ms == pytest.approx(np.percentile(s.latencies, 90))
            assert sample.tail_ms == pytest.approx(np.percentile(s.latencies, 99))
        # the minute-kind latency is the latency check's percentile, never the tail's
        assert d.latency_kind == "minute"
        assert d.latency_ms == tuple(s.latency_ms for s in d.minutes)
    assert len(m.green.minutes) < len(m.blue.minutes)  # green's idle minutes are left out, not zero
    assert m.green.errors > 0
    assert m.blue.errors > 0


def test_a_known_minute_reads_the_percentiles_the_emulator_served_for_it():
    world, start = canary()
    q = q_for(world, start, percentile=50, tail=95)
    m = fetch_one(world, q)
    minute = m.green.minutes[2].at
    s = world.emu.sim.stats[("fraud-scorer", "green")][minute]
    sample = m.green.minutes[2]
    assert sample.latency_ms == pytest.approx(s.percentile(50))
    assert sample.tail_ms == pytest.approx(s.percentile(95))
    assert sample.tail_ms > sample.latency_ms
    assert sample.requests == sum(s.by_status.values())


def test_without_a_tail_check_the_minutes_carry_no_tail_and_the_call_asks_one_percentile():
    world, start = canary()
    m = fetch_one(world, q_for(world, start, tail=None))
    assert_sums(m.green)
    assert all(s.tail_ms is None and s.latency_ms is not None for s in m.green.minutes)
    latency_calls = [p for p in getbatch_params(world) if "RequestLatency" in p["metricnames"]]
    assert [p["metricnames"] for p in latency_calls] == ["RequestLatency_P90"]


def test_a_tail_at_the_latency_percentile_is_asked_once_and_fills_both():
    world, start = canary()
    m = fetch_one(world, q_for(world, start, percentile=99, tail=99))
    assert all(s.tail_ms == s.latency_ms for s in m.green.minutes)
    latency_calls = [p for p in getbatch_params(world) if "RequestLatency" in p["metricnames"]]
    assert [p["metricnames"] for p in latency_calls] == ["RequestLatency_P99"]


# -- (a) and (b): deployment scope (mirrored copies missing from the endpoint's metrics) -------------


def test_minutes_at_deployment_scope_sum_to_the_totals_and_match_what_each_deployment_served():
    world, start = canary(mirrored_in_endpoint_metrics=False, mirror=True)
    q = q_for(world, start)
    m = fetch_one(world, q)
    assert m.blue is not None
    # the mode really was deployment scope: both percentiles asked there, in one call
    dep_calls = [
        p
        for p in getbatch_params(world)
        if p["metricnamespace"] == metric_catalogue.DEPLOYMENT_NAMESPACE and "RequestLatency" in p["metricnames"]
    ]
    assert [p["metricnames"] for p in dep_calls] == ["RequestLatency_P90,RequestLatency_P99"]
    for name, d in (("blue", m.blue), ("green", m.green)):
        assert_sums(d)
        truth = settled_minutes(world, name, q)
        assert [s.at for s in d.minutes] == sorted(truth)
        for sample in d.minutes:
            s = truth[sample.at]
            assert (sample.requests, sample.errors) == deployment_truth(s)
            assert sample.latency_ms == pytest.approx(np.percentile(s.latencies, 90))
            assert sample.tail_ms == pytest.approx(np.percentile(s.latencies, 99))
    # the mirrored copies, which the endpoint's metrics leave out here: 20% of blue's minute by minute
    blue_then = sum(s.requests for s in m.blue.minutes if s.at >= m.green.minutes[0].at)
    assert m.green.requests / blue_then == pytest.approx(0.20, abs=0.02)


# -- (a): with the traffic log -----------------------------------------------------------------------


@pytest.mark.parametrize("in_endpoint_metrics", [True, False])
def test_with_the_traffic_log_latency_stays_per_request_and_the_minutes_come_from_metrics(in_endpoint_metrics):
    world, start = canary(mirrored_in_endpoint_metrics=in_endpoint_metrics, mirror=True)
    q = q_for(world, start)
    with_log = fetch_one(world, q, logs=True)
    without_log = fetch_one(world, q)
    assert with_log.blue is not None
    assert without_log.blue is not None
    for d, same in ((with_log.green, without_log.green), (with_log.blue, without_log.blue)):
        assert_sums(d)
        assert d.latency_kind == "request"
        assert len(d.latency_ms) == min(d.requests, 5000)  # per-request durations (sampled), as before
        assert d.minutes == same.minutes  # the minutes are the metrics' in both modes
        assert all(s.tail_ms is not None for s in d.minutes)


# -- (c): a tail percentile Azure does not publish, or cannot be read --------------------------------


def two_endpoints(world: World) -> object:
    world.emu.add_endpoint("second", rpm=600)
    world.emu.add_deployment("second", "blue", ("fraud-model", "1"), traffic=100)
    for name in ("fraud-scorer", "second"):
        world.emu.add_deployment(name, "green", ("fraud-model", "2"))
        world.emu.set_traffic_by_hand(name, {"blue": 90, "green": 10})
    return world.endpoint.model_copy(update={"name": "second"})


@pytest.mark.parametrize("tail", [75.0, 99.9, float("nan")])
def test_a_tail_percentile_azure_does_not_publish_is_a_provider_error_for_that_rollout_only(tail):
    world = make_world()
    second = two_endpoints(world)
    start = world.clock.now()
    world.advance(8)
    ok, odd = world.metrics().fetch([q_for(world, start), q_for(world, start, endpoint=second, tail=tail)])
    assert isinstance(ok, WindowMetrics), ok
    assert all(s.tail_ms is not None for s in ok.green.minutes)
    assert isinstance(odd, ProviderError)
    assert f"tail latency percentile P{tail:g} not read" in str(odd)
    assert "P50, P90, P95, P99" in str(odd)
    assert "tail check cannot run" in str(odd)


@pytest.mark.parametrize("status", [400, 503])
def test_a_tail_metric_that_cannot_be_read_is_a_provider_error_never_a_pass(status):
    world = make_world()
    second = two_endpoints(world)
    start = world.clock.now()
    world.advance(8)
    world.emu.faults.append(Fault("metrics:RequestLatency_P99", status=status, times=20))
    with_tail, without_tail = world.metrics().fetch(
        [q_for(world, start), q_for(world, start, endpoint=second, tail=None)]
    )
    assert isinstance(with_tail, ProviderError)
    assert "tail latency (RequestLatency_P99)" in str(with_tail)
    assert f"HTTP {status}" in str(with_tail)
    assert "tail check cannot run" in str(with_tail)
    assert isinstance(without_tail, WindowMetrics), without_tail  # a rollout without the tail check


def test_a_tail_metric_missing_from_azures_answer_is_a_provider_error(monkeypatch):
    """Azure answers the call but leaves the tail metric out for the resource: not a metric without
    data (that would hold an empty series), so the tail check cannot run."""
    world = make_world()
    world.emu.add_deployment("fraud-scorer", "green", ("fraud-model", "2"))
    world.emu.set_traffic_by_hand("fraud-scorer", {"blue": 90, "green": 10})
    start = world.clock.now()
    world.advance(8)
    real = world.emu._batch

    def without_p99(subscription, query, body):
        values = real(subscription, query, body)
        for v in values:
            v["value"] = [m for m in v["value"] if m["name"]["value"] != "RequestLatency_P99"]
        return values

    monkeypatch.setattr(world.emu, "_batch", without_p99)
    (result,) = world.metrics().fetch([q_for(world, start)])
    assert isinstance(result, ProviderError)
    assert "Azure returned no RequestLatency_P99" in str(result)
    assert "tail check cannot run" in str(result)


def test_a_tail_metric_unread_at_deployment_scope_is_a_provider_error():
    world, start = canary(mirrored_in_endpoint_metrics=False, mirror=True)
    source = world.metrics()
    original = source._series

    def refuse_deployment_latency(url, ids, namespace, names, split, start, end):
        out = original(url, ids, namespace, names, split, start, end)
        if namespace == metric_catalogue.DEPLOYMENT_NAMESPACE and "RequestLatency_P99" in names:
            out.errors.update({i.lower(): "HTTP 429 TooManyRequests: throttled" for i in ids})
        return out

    source._series = refuse_deployment_latency
    (result,) = source.fetch([q_for(world, start)])
    assert isinstance(result, ProviderError)
    assert "deployment-scope latency (RequestLatency_P90) and tail latency (RequestLatency_P99)" in str(result)
    assert "tail check cannot run" in str(result)


# -- (d): no extra call per rollout -------------------------------------------------------------------


def many_endpoints(world: World, n: int) -> list:
    endpoints = []
    for i in range(n):
        name = f"ep-{i:03d}"
        world.emu.add_endpoint(name, rpm=60)
        world.emu.add_deployment(name, "blue", ("fraud-model", "1"), traffic=100)
        world.emu.add_deployment(name, "green", ("fraud-model", "2"))
        endpoints.append(world.endpoint.model_copy(update={"name": name}))
    return endpoints


@pytest.mark.parametrize("tail", [None, 99.0, 90.0])
def test_the_tail_adds_no_getbatch_call(tail):
    world = make_world()
    endpoints = many_endpoints(world, 120)
    start = world.clock.now()
    world.advance(3)
    source = world.metrics()
    results = source.fetch([q_for(world, start, endpoint=e, tail=tail) for e in endpoints])
    assert all(isinstance(r, WindowMetrics) for r in results)
    # endpoint request counts, endpoint percentiles, green's CPU and memory, green's requests at
    # deployment scope: ceil(120 / 50) calls each, with or without the tail
    assert source.calls["metrics"] == 4 * 3
    latency_calls = [p for p in getbatch_params(world) if "RequestLatency" in p["metricnames"]]
    assert len(latency_calls) == 3
    expected = "RequestLatency_P90,RequestLatency_P99" if tail == 99 else "RequestLatency_P90"
    assert {p["metricnames"] for p in latency_calls} == {expected}
    if tail is not None:
        assert all(
            s.tail_ms is not None
            for r in results
            if isinstance(r, WindowMetrics)
            for s in r.green.minutes
            if s.requests
        )


def test_rollouts_with_and_without_the_tail_cost_one_call_per_set_of_percentiles_not_per_rollout():
    world = make_world()
    endpoints = many_endpoints(world, 40)
    start = world.clock.now()
    world.advance(3)
    source = world.metrics()
    queries = [q_for(world, start, endpoint=e, tail=99 if i % 2 else None) for i, e in enumerate(endpoints)]
    results = source.fetch(queries)
    assert all(isinstance(r, WindowMetrics) for r in results)
    assert source.calls["metrics"] == 5  # counts, P90, P90+P99, CPU and memory, deployment-scope requests
    for q, r in zip(queries, results, strict=True):
        assert isinstance(r, WindowMetrics)
        assert all((s.tail_ms is None) == (q.tail_percentile is None) for s in r.green.minutes if s.requests)


def test_the_tail_shares_the_single_latency_call_of_one_rollout():
    world, start = canary()
    source = world.metrics()
    fetch = source.fetch([q_for(world, start)])
    assert isinstance(fetch[0], WindowMetrics)
    with_tail = source.calls["metrics"]
    source = world.metrics()
    source.fetch([replace(q_for(world, start), tail_percentile=None)])
    assert source.calls["metrics"] == with_tail == 4
    (body,) = [b for _, url, b in world.emu.requests if "RequestLatency_P99" in url]
    assert body["resourceids"] == [world.endpoint.arm_id]
