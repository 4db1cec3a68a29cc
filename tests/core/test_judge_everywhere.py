"""Waiting is no shelter: while green holds traffic, an approval wait and a person's pause are judged
like any stage (for regressions: nothing advances while waiting)."""

from __future__ import annotations

import numpy as np

from shared.rollout.analysis import Verdict, WindowMetrics
from shared.rollout.machine import CommandKind, apply_command, decide
from shared.rollout.model import Rollout, RolloutPhase, TrafficSplit
from shared.rollout.observation import EndpointState, Observation
from shared.rollout.policy import CanaryStep, RolloutPolicy
from tests.builders import T0, deployment_metrics, minutes, observe, started

P = RolloutPhase
GATED = RolloutPolicy(steps=(CanaryStep(percent=10), CanaryStep(percent=50, approval=True)))


def window(latency_ms: float = 100.0, seed: int = 0) -> WindowMetrics:
    rng = np.random.default_rng(seed)
    return WindowMetrics(
        start=T0,
        end=T0 + minutes(10),
        green=deployment_metrics(rng, 20_000, samples=5000, error_rate=0.002, latency_ms=latency_ms),
        blue=deployment_metrics(rng, 100_000, samples=5000, error_rate=0.002),
    )


def at_gate() -> Rollout:
    """Green holds 10% of users, the 10% step passed, the 50% step waits for a person."""
    rollout = started(GATED).model_copy(
        update={
            "phase": P.CANARY,
            "step": 0,
            "desired": TrafficSplit(live={"blue": 90, "green-2": 10}),
            "window_started_at": T0,
        }
    )
    rollout = rollout.model_copy(update={"green": "green-2"})
    gate = decide(rollout, GATED, observe(rollout, metrics=window()), T0 + minutes(12))
    assert gate.rollout.phase == P.AWAITING_APPROVAL
    return gate.rollout


def test_a_regression_while_waiting_for_approval_is_rolled_back():
    waiting = at_gate()
    assert waiting.window_started_at == T0  # the split did not change: its window goes on
    decision = decide(waiting, GATED, observe(waiting, metrics=window(latency_ms=250.0)), T0 + minutes(20))
    assert decision.rollout.phase == P.ROLLING_BACK
    assert decision.rollout.desired == TrafficSplit(live={"blue": 100})
    assert "while AwaitingApproval" in decision.reason
    assert any(r.check == "latency" and r.verdict == Verdict.FAIL for r in decision.evidence)


def test_a_healthy_green_waiting_for_approval_is_judged_but_never_advanced():
    waiting = at_gate()
    decision = decide(waiting, GATED, observe(waiting, metrics=window()), T0 + minutes(20))
    assert decision.rollout.phase == P.AWAITING_APPROVAL
    assert decision.actions == ()
    assert "waiting for approval" in decision.reason
    assert "no regression proven" in decision.reason
    assert decision.evidence  # the interim bounds are recorded


def _paused(policy: RolloutPolicy) -> Rollout:
    rollout = started(policy).model_copy(
        update={
            "phase": P.CANARY,
            "step": 0,
            "desired": TrafficSplit(live={"blue": 90, "green-2": 10}),
            "green": "green-2",
            "window_started_at": T0,
        }
    )
    return apply_command(rollout, policy, CommandKind.PAUSE, T0 + minutes(5), actor="ana").rollout


def test_a_proven_regression_while_paused_rolls_back_by_default():
    paused = _paused(RolloutPolicy())
    decision = decide(paused, RolloutPolicy(), observe(paused, metrics=window(latency_ms=250.0)), T0 + minutes(9))
    assert decision.rollout.phase == P.ROLLING_BACK
    assert "while Paused" in decision.reason


def test_while_paused_hold_only_reports_the_regression():
    policy = RolloutPolicy(while_paused="hold")
    paused = _paused(policy)
    decision = decide(paused, policy, observe(paused, metrics=window(latency_ms=250.0)), T0 + minutes(9))
    assert decision.rollout.phase == P.PAUSED
    assert "held (while_paused: hold)" in decision.reason
    assert decision.actions == ()


def test_a_pause_on_a_split_someone_else_set_is_not_judged():
    paused = _paused(RolloutPolicy())
    foreign = observe(paused, metrics=window(latency_ms=250.0)).endpoint
    assert isinstance(foreign, EndpointState)
    moved = foreign.model_copy(update={"traffic": TrafficSplit(live={"blue": 50, "green-2": 50})})
    decision = decide(paused, RolloutPolicy(), Observation(endpoint=moved, metrics=window(250.0)), T0 + minutes(9))
    assert decision.rollout.phase == P.PAUSED
    assert decision.evidence == ()


def test_resuming_keeps_the_window_looks_spend_nothing():
    policy = RolloutPolicy()
    paused = _paused(policy)
    resumed = apply_command(paused, policy, CommandKind.RESUME, T0 + minutes(30), actor="ana").rollout
    confirmed = decide(resumed, policy, observe(resumed), T0 + minutes(31)).rollout
    assert confirmed.traffic_confirmed
    assert confirmed.window_started_at == T0  # same split, same sequence
    assert confirmed.stage_started_at == T0 + minutes(31)  # the soak time restarts
