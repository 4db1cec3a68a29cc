"""A scale order waited for belongs to the attempt that ordered it: a rollback or a retry starts
without it (a stale order would count as a slow scale, a provider error, at the next step)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from shared.rollout.machine import CommandKind, apply_command
from shared.rollout.model import EndpointRef, ModelRef, Rollout, RolloutPhase, ScaleOrder, TrafficSplit, WorkspaceRef
from shared.rollout.policy import RolloutPolicy

P = RolloutPhase
T0 = datetime(2026, 1, 1, tzinfo=UTC)
POLICY = RolloutPolicy.model_validate({"capacity": {}})


def _rollout(phase: RolloutPhase) -> Rollout:
    return Rollout(
        id="r1",
        endpoint=EndpointRef(
            workspace=WorkspaceRef(subscription_id="s", resource_group="g", workspace="w"), name="ep1"
        ),
        model=ModelRef(name="m", version="2"),
        blue="blue",
        green="green",
        phase=phase,
        step=0,
        created_at=T0,
        updated_at=T0,
        stage_started_at=T0,
        desired=TrafficSplit(live={"blue": 90, "green": 10}),
        scaling=ScaleOrder(deployment="green", instances=5, ordered_at=T0),
    )


def test_a_rollback_drops_the_scale_order_of_the_step():
    now = T0 + timedelta(minutes=5)
    for kind in (CommandKind.ROLLBACK, CommandKind.ABORT):
        decision = apply_command(_rollout(P.CANARY), POLICY, kind, now, actor="alice")
        assert decision.rollout.phase == P.ROLLING_BACK
        assert decision.rollout.scaling is None


def test_a_retry_starts_without_the_old_scale_order():
    decision = apply_command(_rollout(P.ABORTED), POLICY, CommandKind.RETRY, T0 + timedelta(hours=1), actor="alice")
    assert decision.rollout.phase == P.PENDING
    assert decision.rollout.scaling is None
