"""A work item is read with one set of metrics calls and one traffic-log query, whatever the number
of its rollouts, and each rollout's window is the one it would get on its own."""

from __future__ import annotations

import pytest

from bench.scale import build


def _queries(service, stored):
    out = []
    for s in stored:
        q = service._metrics_query(s, service._observe_endpoint(s))
        assert q is not None
        out.append(q)
    return out


@pytest.fixture(scope="module")
def fleet():
    return build(12, instances=1, subscriptions=1)


def test_one_traffic_log_query_and_the_same_metrics_calls_for_a_batch_of_one_or_twelve(fleet):
    service = fleet.services[0]
    stored = fleet.store.inner.find(due_only=True)
    queries = _queries(service, stored)
    calls = service.metrics.calls
    before = dict(calls)
    alone = service.metrics.fetch(queries[:1])
    one = {k: calls[k] - before[k] for k in calls}
    before = dict(calls)
    together = service.metrics.fetch(queries)
    twelve = {k: calls[k] - before[k] for k in calls}
    assert one["logs"] == twelve["logs"] == 1
    assert twelve["metrics"] == one["metrics"] > 0
    assert all(not isinstance(w, Exception) for w in together), together
    assert together[0].green.latency_kind == alone[0].green.latency_kind == "request"
    assert together[0].green.requests == alone[0].green.requests
    assert len(together[0].green.latency_ms) == len(alone[0].green.latency_ms) > 0


def test_each_rollout_gets_its_own_rows_from_the_batched_query(fleet):
    service = fleet.services[0]
    stored = fleet.store.inner.find(due_only=True)
    queries = _queries(service, stored)
    together = service.metrics.fetch(queries)
    for q, window in zip(queries, together, strict=True):
        single = service.metrics.fetch([q])[0]
        assert window.blue.requests == single.blue.requests
        assert len(window.blue.latency_ms) == len(single.blue.latency_ms)
        assert len(window.green.latency_ms) == len(single.green.latency_ms)


def test_a_failed_batched_query_fails_every_rollout_of_the_batch_with_the_reason(fleet):
    from emulator.records import Fault

    service = fleet.services[0]
    queries = _queries(service, fleet.store.inner.find(due_only=True))
    emu = next(iter(fleet.azure.emus.values()))
    emu.faults.append(Fault("logs", status=400, times=1))
    results = service.metrics.fetch(queries)
    assert all(isinstance(r, Exception) and "traffic log query failed" in str(r) for r in results)
    emu.faults.append(Fault("logs", partial=True, times=1))
    results = service.metrics.fetch(queries)
    assert all(isinstance(r, Exception) and "PartialError" in str(r) for r in results)
