"""Scoring inputs on both deployments is paced like every other Azure call and bounded per tick:
the scoring URI and key (ARM requests) are read through the paced gateway and kept a few minutes,
a late tick does not burst, and a slow endpoint cannot hold the tick past its time budget."""

from __future__ import annotations

from datetime import timedelta

from emulator.predictor import Predictor, sample_inputs
from emulator.traffic import Scenario
from shared.adapters.paired_scoring import TARGET_CACHE, PairedScorer, Sample
from shared.adapters.throttle import ArmLimits, ThrottledGateway
from shared.rollout.predictions import inputs_due
from shared.rollout.tally import PredictionTally
from tests.emulated import make_world
from tests.predictions.helpers import T0, check

CHECK = check(score="/score")


def _world():
    world = make_world(blue=Scenario(predictor=Predictor()))
    world.emu.add_deployment("fraud-scorer", "green", ("fraud-model", "2"), scenario=Scenario(predictor=Predictor()))
    return world


def test_a_late_tick_scores_at_most_two_minutes_budget_not_five():
    c = check(max_requests_per_minute=60, max_requests_per_stage=100_000)
    t = PredictionTally(scored=10, last_at=T0)
    assert inputs_due(c, t, T0 + timedelta(minutes=1)) == 60
    assert inputs_due(c, t, T0 + timedelta(minutes=10)) == 120  # not 10 (or 5) minutes' worth at once
    assert inputs_due(c, t, T0 + timedelta(hours=3)) == 120


class _SlowPipeline:
    """The real scoring pipeline against the emulator, with each request taking `seconds` on the clock."""

    def __init__(self, inner, clock, seconds: float) -> None:
        self.inner, self.clock, self.seconds = inner, clock, seconds

    def send_request(self, request, **kwargs):
        self.clock.advance(timedelta(seconds=self.seconds))
        return self.inner.send_request(request, **kwargs)


class _Slow:
    def __init__(self, gateway, clock, seconds: float) -> None:
        self.gateway, self.clock, self.seconds = gateway, clock, seconds

    def scoring_target(self, endpoint):
        target = self.gateway.scoring_target(endpoint)
        return target._replace(pipeline=_SlowPipeline(target.pipeline, self.clock, self.seconds))


def test_scoring_stops_at_the_time_budget_and_counts_only_what_was_scored():
    world = _world()
    scorer = PairedScorer(_Slow(world.gateway(), world.clock, 1.0), clock=world.clock)
    samples = [Sample(b) for b in sample_inputs(60, seed=1)]
    pairs = scorer.score(world.endpoint, "blue", "green", CHECK, samples, time_budget=timedelta(seconds=20))
    assert len(pairs) == 10  # two requests of a second each per input: 20 s hold ten inputs
    assert scorer.requests_sent == 20
    assert all(not p.blue_error and not p.green_error for p in pairs)


def test_the_scoring_uri_and_key_are_read_once_per_endpoint_for_a_few_minutes():
    world = _world()
    scorer = PairedScorer(world.gateway(), clock=world.clock)
    samples = [Sample(b) for b in sample_inputs(3, seed=2)]
    for _ in range(4):  # four ticks within the cache's time
        assert len(scorer.score(world.endpoint, "blue", "green", CHECK, samples)) == 3
        world.clock.advance(timedelta(minutes=1))
    assert scorer.targets_read == 1
    world.clock.advance(TARGET_CACHE)
    scorer.score(world.endpoint, "blue", "green", CHECK, samples)
    assert scorer.targets_read == 2


def test_reading_the_scoring_target_through_the_paced_gateway_takes_arm_tokens():
    world = _world()
    waits: list[float] = []
    limits = ArmLimits(reads_per_second=1.0, writes_per_second=1.0, read_burst=1.0, write_burst=1.0)
    paced = ThrottledGateway(world.gateway(), limits, now=lambda: world.clock.now().timestamp(), sleep=waits.append)
    paced.scoring_target(world.endpoint)
    paced.scoring_target(world.endpoint)  # the buckets (one read, one write) are empty: it waits
    assert waits
    assert paced.waited > 0


def test_the_service_scores_through_the_paced_gateway(azurite, table_name, tmp_path):
    from shared.bootstrap import build_service
    from shared.settings import Settings

    (tmp_path / "policy.yaml").write_text("targets: [{model: m, endpoint: fraud-scorer}]\n")
    settings = Settings.from_env(
        {
            "SAFE_ROLLOUT_STORAGE_CONNECTION": azurite,
            "SAFE_ROLLOUT_TABLE_NAME": table_name,
            "SAFE_ROLLOUT_METRICS_ENDPOINT": "https://eastus.metrics.monitor.azure.com",
            "SAFE_ROLLOUT_CREDENTIAL": "emulator",
        },
        root=tmp_path,
    )
    world = make_world()
    service = build_service(settings, transport=world.transport, clock=world.clock)
    scorer = service.model_checks._scorer
    assert isinstance(scorer._gateway, ThrottledGateway)
    assert scorer._gateway is service.gateway


def test_a_tick_stopped_by_the_time_budget_moves_the_cursor_only_past_the_inputs_scored():
    from shared.model_checks import SCORING_TIME_BUDGET, ModelChecks
    from shared.ports import StoredRollout
    from shared.rollout.policy import RolloutPolicy
    from tests.builders import observe, started

    rows = [{"input": body} for body in sample_inputs(80, seed=4)]
    policy = RolloutPolicy.model_validate(
        {"predictions": {"inputs": {"rows": rows}, "prediction": "/label", "before_mirror": True}}
    )
    world = _world()
    rollout = started(policy).model_copy(update={"endpoint": world.endpoint, "green": "green"})
    checks = ModelChecks(
        scorer=PairedScorer(_Slow(world.gateway(), world.clock, 1.0), clock=world.clock), clock=world.clock
    )
    seen = checks.observe(StoredRollout(rollout=rollout, policy=policy, etag="*"), observe(rollout))
    batch = seen.predictions
    assert batch is not None, seen.predictions_error
    assert inputs_due(policy.predictions, None, T0) == 60  # due this tick...
    scored = int(SCORING_TIME_BUDGET.total_seconds() // 2)
    assert len(batch.pairs) == scored  # ...but only what the time budget allowed was scored
    assert batch.next_cursor == scored
    assert not batch.exhausted
