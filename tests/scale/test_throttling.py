"""Azure's request limits: Retry-After is honoured by the SDKs on the simulated clock, the app paces
itself per subscription, and a 429 that outlasts the retries defers the rollout without counting
as an error."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from emulator.rate_limits import RateLimits
from emulator.records import Fault
from shared.adapters.throttle import ArmLimits, ThrottledError, ThrottledGateway, TokenBucket
from tests.emulated import make_world
from tests.functions.harness import make_harness


def test_an_arm_read_refused_with_retry_after_is_retried_after_that_wait_and_succeeds():
    world = make_world()
    world.emu.rate_limits = RateLimits(arm_reads=(3.0, 0.1))  # three reads, then one every 10 s
    gateway = world.gateway()
    assert gateway.read_endpoint(world.endpoint) is not None  # three reads: the bucket is empty
    before = world.clock.now()
    state = gateway.read_endpoint(world.endpoint)
    assert state is not None
    assert state.traffic.live == {"blue": 100}
    assert world.emu.rate_limits.refused["arm-read"] >= 1
    assert 10.0 in world.transport.sleeps  # azure-core slept what Retry-After said
    assert world.clock.now() - before >= timedelta(seconds=10)


def test_the_gateway_paces_reads_per_subscription_so_azure_never_refuses():
    world = make_world()
    world.emu.rate_limits = RateLimits(arm_reads=(6.0, 1.0))
    clock = world.clock
    paced = ThrottledGateway(
        world.gateway(),
        ArmLimits(reads_per_second=0.9, read_burst=6.0),
        now=lambda: clock.now().timestamp(),
        sleep=clock.sleep,
    )
    start = clock.now()
    for _ in range(4):  # 12 reads: 6 at once, then 6 more at 0.9 per second
        paced.read_endpoint(world.endpoint)
    assert sum(world.emu.rate_limits.refused.values()) == 0
    assert world.transport.sleeps == []  # never needed Azure's Retry-After
    assert paced.waited == pytest.approx(6 / 0.9, rel=1e-6)
    assert clock.now() - start >= timedelta(seconds=6 / 0.9)


def test_log_analytics_refuses_the_201st_query_in_30_seconds_with_retry_after():
    limits = RateLimits()
    now = datetime(2026, 11, 1, 9, tzinfo=UTC)
    url = "https://api.loganalytics.io/v1/workspaces/w/query"
    assert all(limits.check("POST", url, now + timedelta(seconds=i * 0.1)) is None for i in range(200))
    status, headers, _ = limits.check("POST", url, now + timedelta(seconds=20))
    assert status == 429
    assert headers["Retry-After"] == "10"  # the first query leaves the 30-second window at 30 s
    assert limits.check("POST", url, now + timedelta(seconds=30.05)) is None


def test_a_token_bucket_on_a_clock_that_seems_to_go_back_gives_nothing_extra():
    t = [0.0]
    bucket = TokenBucket(2.0, 1.0, lambda: t[0])
    assert (bucket.take(), bucket.take()) == (0.0, 0.0)
    t[0] = 5.0
    assert bucket.take() == 0.0
    t[0] = 1.0  # an earlier time: no refill
    assert bucket.take() == 0.0
    assert bucket.take() == pytest.approx(1.0)


def test_a_429_that_outlasts_the_retries_leaves_the_rollout_for_the_next_tick_without_an_error(
    fns, azurite, table_name, tmp_path
):
    harness = make_harness(fns, azurite, table_name, tmp_path)
    service = harness.service
    clock = harness.world.clock
    paced = ThrottledGateway(service.gateway, now=lambda: clock.now().timestamp(), sleep=clock.sleep)
    service.gateway = paced
    harness.register("2")
    harness.tick()
    before = harness.rollout()
    harness.world.emu.faults.append(Fault("endpoint.get", status=429, times=50, retry_after=1))
    harness.world.advance(1)
    report = service.reconcile_batch([before.id])
    assert report.throttled == 1
    assert (report.reconciled, report.failed, report.deferred) == (0, 0, 0)
    after = harness.rollout()
    assert after.decisions == before.decisions  # nothing decided on a refused read
    assert after.consecutive_errors == before.consecutive_errors == 0
    assert sum(paced.throttled.values()) == 1
    harness.world.emu.faults.clear()
    harness.world.advance(1)
    assert service.reconcile_batch([before.id]).reconciled == 1  # the next tick judges it


def test_a_429_that_lasts_past_the_patience_is_decided_on_so_the_stage_limits_still_apply(
    fns, azurite, table_name, tmp_path
):
    """Waiting out 429s is not an error, but it never holds a rollout for ever: past
    THROTTLE_PATIENCE without a decision, the rollout is decided on as unreadable (the reason says
    so), so the error limit, the stage's timeout and the deadline still end it."""
    from shared.service import THROTTLE_PATIENCE

    harness = make_harness(fns, azurite, table_name, tmp_path)
    service = harness.service
    clock = harness.world.clock
    service.gateway = ThrottledGateway(service.gateway, now=lambda: clock.now().timestamp(), sleep=clock.sleep)
    harness.register("2")
    harness.tick()
    before = harness.rollout()
    harness.world.emu.faults.append(Fault("endpoint.get", status=429, times=10_000, retry_after=1))
    minutes = int(THROTTLE_PATIENCE.total_seconds() // 60)
    for _ in range(minutes - 1):  # within the patience: left alone, nothing counted
        harness.world.advance(1)
        assert service.reconcile_batch([before.id]).throttled == 1
    assert harness.rollout().consecutive_errors == 0
    harness.world.advance(2)  # past it: decided on, the refusal counted with its reason
    report = service.reconcile_batch([before.id])
    assert (report.throttled, report.reconciled) == (0, 1)
    after = harness.rollout()
    assert after.consecutive_errors == 1
    assert "429" in after.last_reason
    assert "cannot read the endpoint" in after.last_reason


def test_a_traffic_order_throttled_for_good_is_handled_like_one_refused_while_azure_is_busy():
    class Refusing:
        def set_traffic(self, endpoint, split):
            from shared.ports import ProviderError

            raise ProviderError("setting traffic: HTTP 429 TooManyRequests: slow down")

    world = make_world()
    paced = ThrottledGateway(Refusing(), now=lambda: 0.0, sleep=lambda s: None)
    with pytest.raises(ThrottledError) as refused:
        paced.set_traffic(world.endpoint, None)
    from shared.ports import OperationInProgressError

    assert isinstance(refused.value, OperationInProgressError)  # the service orders it again later
    assert "429" in str(refused.value)


def test_a_work_item_skips_the_rollouts_judged_since_it_was_enqueued(fns, azurite, table_name, tmp_path):
    """A redelivered (or late) item sends no second round of reads for a rollout another worker
    judged after the item's tick; one judged before it is judged as usual."""
    harness = make_harness(fns, azurite, table_name, tmp_path)
    service = harness.service
    harness.register("2")
    harness.tick()
    tick = harness.world.clock.now()
    harness.world.advance(1)
    (rid,) = [s.rollout.id for s in harness.rollouts()]
    first = service.reconcile_batch([rid], dispatched_at=tick)  # judged after the tick: judged now
    assert (first.reconciled, first.skipped) == (1, 0)
    again = service.reconcile_batch([rid], dispatched_at=tick)  # the same item delivered again
    assert (again.reconciled, again.skipped) == (0, 1)
    assert harness.rollout().updated_at > tick
