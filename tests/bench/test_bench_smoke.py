"""The detection benchmark's policies and simulator behave as documented on single runs (keeps
bench/ from rotting; the numbers themselves come from `make bench`, not from tests)."""

from __future__ import annotations

from datetime import datetime, timedelta

import numpy as np
import pytest

from bench.baselines import READY_AFTER
from bench.detection import (
    CASES,
    FLAGGER_DOCS,
    FLAGGER_EQUAL,
    POLICIES,
    RSETHUR,
    SR_MINUTE,
    SR_REQUEST,
    T0,
    MetricsReader,
    Run,
    case_index,
    run_one,
    upper95,
)
from bench.simulator import BLUE, LATENT_RHO, Load, Simulator
from shared.rollout.model import TrafficSplit
from shared.rollout.policy import RolloutPolicy


def run(policy: str, scenario: str, seed: int = 0) -> Run:
    return run_one((policy, case_index(scenario), seed))


@pytest.mark.parametrize(
    ("policy", "scenario", "outcome"),
    [
        (FLAGGER_DOCS, "healthy, 1,200 rpm", "promoted"),
        (FLAGGER_DOCS, "latency 2x", "rolled back"),
        # The builtin request-success-rate counts non-5xx as success: a model's 500 reaches users as 424.
        (FLAGGER_DOCS, "model errors (424) +1 point", "promoted"),
        (FLAGGER_EQUAL, "healthy, 1,200 rpm", "promoted"),
        (FLAGGER_EQUAL, "latency 2x", "rolled back"),
        (FLAGGER_EQUAL, "throttling (429) +1.5 points", "rolled back"),
        (RSETHUR, "errors +2 points", "stopped"),
        (RSETHUR, "provisioning fails", "failed"),
    ],
)
def test_each_baseline_does_what_its_source_says(policy: str, scenario: str, outcome: str) -> None:
    result = run(policy, scenario)
    assert result.outcome == outcome, result


def test_flagger_rolls_back_only_after_five_failed_one_minute_checks() -> None:
    result = run(FLAGGER_DOCS, "latency 2x")
    assert result.detected_at is not None
    assert result.exposed_at is not None
    assert result.detected_at - result.exposed_at >= 5
    assert result.bad_user_requests > 0  # live steps: users met the slow green


def test_flagger_mirror_pre_stage_keeps_users_away_from_a_slow_green() -> None:
    result = run(FLAGGER_EQUAL, "latency 2x")
    assert result.outcome == "rolled back"
    assert result.bad_user_requests == 0


def test_a_stopped_rsethur_workflow_leaves_green_serving() -> None:
    result = run(RSETHUR, "errors +2 points")
    assert result.outcome == "stopped"
    assert result.bad_user_requests > 10_000  # 10% of users for the rest of the horizon


@pytest.mark.parametrize("policy", [SR_REQUEST, SR_MINUTE])
def test_safe_rollout_promotes_a_healthy_green(policy: str) -> None:
    result = run(policy, "healthy, 1,200 rpm")
    assert result.outcome == "promoted", result
    assert result.full_at is not None
    assert result.full_at > READY_AFTER


@pytest.mark.parametrize("policy", [SR_REQUEST, SR_MINUTE])
def test_safe_rollout_rolls_back_latency_2x_before_users_see_it(policy: str) -> None:
    result = run(policy, "latency 2x")
    assert result.outcome == "rolled back", result
    assert result.bad_user_requests == 0


def test_splits_apply_from_the_next_minute_and_the_endpoint_reads_updating_meanwhile() -> None:
    sim = Simulator(0, BLUE)
    sim.advance(3)
    split = TrafficSplit(live={"blue": 90, "green": 10})
    sim.order(3, split)
    seen, state = sim.observed(3)
    assert seen == TrafficSplit(live={"blue": 100})
    assert state == "Updating"
    sim.advance(4)
    assert sim.minute("green", 3) is None  # minute 3 still ran on the old split
    sim.advance(6)
    assert sim.minute("green", 5) is not None
    assert sim.observed(6) == (split, "Succeeded")


def test_the_environment_depends_on_the_seed_only() -> None:
    a, b = Simulator(7, BLUE), Simulator(7, BLUE.scaled(latency_ms=160))
    assert np.array_equal(a.env.rpm, b.env.rpm)
    assert np.array_equal(a.env.error_burst, b.env.error_burst)
    assert not np.array_equal(a.env.rpm, Simulator(8, BLUE).env.rpm)


def test_mirrored_copies_share_their_originals_difficulty() -> None:
    # A mirrored copy is answered from the same latent difficulty as the live request it copies, so
    # its latency correlates with the original's (LATENT_RHO on the log scale).
    sim = Simulator(1, BLUE, load=Load(rpm=600))
    seen: dict[str, list[np.ndarray]] = {"blue": [], "green": []}
    serve = sim._serve

    def spy(name: str, m: int, z: np.ndarray, live: int) -> None:
        seen[name].append(z.copy())
        serve(name, m, z, live)

    sim._serve = spy  # type: ignore[method-assign]
    sim.order(0, TrafficSplit(live={"blue": 100}, mirror={"green": 50}))
    sim.advance(10)
    blue, green = np.concatenate(seen["blue"]), np.concatenate(seen["green"])
    assert 0.4 < len(green) / len(blue) < 0.6
    assert np.isin(green, blue).all()  # every copy is one of the live requests
    assert 0 < LATENT_RHO < 1


def test_the_window_is_read_the_way_production_reads_it() -> None:
    sim = Simulator(2, BLUE)
    sim.order(0, TrafficSplit(live={"blue": 50, "green": 50}))
    sim.advance(30)
    policy = RolloutPolicy()
    per_request = MetricsReader(sim, policy, "request").window(*_window(5, 25))
    per_minute = MetricsReader(sim, policy, "minute").window(*_window(5, 25))
    assert len(per_request.green.latency_ms) == 5000  # LOG_SAMPLE rows of about 12,000
    assert len(per_minute.green.latency_ms) == 20 == len(per_minute.green.minutes)
    assert per_minute.green.latency_kind == "minute"
    assert per_request.green.latency_kind == "request"
    first = per_minute.green.minutes[0]
    assert first.latency_ms == pytest.approx(np.percentile(sim.minute("green", 5).latencies, 90))  # type: ignore[union-attr]
    assert per_request.green.requests == sum(m.requests for m in per_request.green.minutes)


def _window(start: int, end: int) -> tuple[datetime, datetime]:
    return T0 + timedelta(minutes=start), T0 + timedelta(minutes=end)


def test_clopper_pearson_bound_of_zero_in_500_is_below_one_percent() -> None:
    assert upper95(0, 500) == pytest.approx(1 - 0.025 ** (1 / 500), rel=1e-6)
    assert upper95(0, 500) < 0.01 < upper95(2, 500)


def test_every_policy_and_the_required_scenarios_are_there() -> None:
    assert set(POLICIES) == {SR_REQUEST, SR_MINUTE, FLAGGER_EQUAL, FLAGGER_DOCS, RSETHUR}
    names = " | ".join(c.name for c in CASES)
    for needed in ("healthy, 60 rpm", "latency 1.5x", "tail only", "(424)", "(429)", "provisioning", "leak", "spikes"):
        assert needed in names
