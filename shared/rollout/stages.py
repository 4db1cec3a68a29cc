"""The stage plan: which stages a rollout passes, the split each one orders, the most green may
hold where the rollout stands, and the window each stage is judged on. Pure functions of data."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from shared.rollout.model import (
    EXPOSED_PHASES,
    Rollout,
    RolloutPhase,
    TrafficSplit,
)
from shared.rollout.policy import RolloutPolicy

P = RolloutPhase


# stages and splits


def split_for(rollout: Rollout, policy: RolloutPolicy, phase: RolloutPhase, step: int) -> TrafficSplit:
    blue, green = rollout.blue, rollout.green
    if phase == P.MIRRORING and blue and policy.mirror:
        return TrafficSplit(live={blue: 100}, mirror={green: policy.mirror.percent})
    if phase == P.CANARY and blue:
        pct = policy.steps[step].percent
        return TrafficSplit(live={blue: 100 - pct, green: pct})
    if phase in (P.BAKING, P.SUCCEEDED):
        return TrafficSplit(live={green: 100})
    return safe_split(rollout)


def safe_split(rollout: Rollout) -> TrafficSplit:
    """Where traffic goes on rollback: all to blue; with no blue, nowhere (as before the rollout)."""
    return TrafficSplit(live={rollout.blue: 100}) if rollout.blue else TrafficSplit()


def _bound(policy: RolloutPolicy, phase: RolloutPhase | None, step: int) -> int:
    if phase == P.CANARY and 0 <= step < len(policy.steps):
        return policy.steps[step].percent
    return 100 if phase in (P.BAKING, P.SUCCEEDED) else 0


def max_green_live(rollout: Rollout, policy: RolloutPolicy) -> int:
    """The most live traffic green may be ordered to hold where the rollout stands (an invariant)."""
    if not rollout.blue:
        return 100
    phase = rollout.resume_to if rollout.phase == P.PAUSED else rollout.phase
    if phase == P.AWAITING_APPROVAL:
        phase = rollout.gate_to
    return _bound(policy, phase, rollout.step)


def next_stage(rollout: Rollout, policy: RolloutPolicy, phase: RolloutPhase, step: int) -> tuple[P, int] | None:
    """The stage after (phase, step); None after the bake."""
    if phase == P.PENDING:
        if not rollout.blue:
            return P.BAKING, -1
        if policy.mirror:
            return P.MIRRORING, -1
        return (P.CANARY, 0) if policy.steps else (P.BAKING, -1)
    if phase == P.MIRRORING:
        return (P.CANARY, 0) if policy.steps else (P.BAKING, -1)
    if phase == P.CANARY:
        return (P.CANARY, step + 1) if step + 1 < len(policy.steps) else (P.BAKING, -1)
    return None


def needs_approval(policy: RolloutPolicy, phase: RolloutPhase, step: int) -> bool:
    if phase == P.MIRRORING:
        return bool(policy.mirror and policy.mirror.approval)
    if phase == P.CANARY:
        return policy.steps[step].approval
    return phase == P.BAKING and policy.bake.approval


def stage_label(policy: RolloutPolicy, phase: RolloutPhase, step: int) -> str:
    if phase == P.MIRRORING and policy.mirror:
        return f"mirror {policy.mirror.percent}%"
    if phase == P.CANARY:
        # A step the policy does not have (a rollout isolated on the default policy) is named by number.
        return f"canary {policy.steps[step].percent}%" if 0 <= step < len(policy.steps) else f"canary step {step + 1}"
    if phase == P.BAKING:
        return "bake at 100%"
    return str(phase)


# ---------------------------------------------------------------------------------------------


def stage_limits(policy: RolloutPolicy, rollout: Rollout) -> tuple[Any, Any, int]:
    """(min duration, max duration, min requests) of the current stage."""
    if rollout.phase == P.MIRRORING and policy.mirror:
        return policy.mirror.min_duration, policy.mirror.max_duration, policy.mirror.min_requests
    if rollout.phase == P.CANARY:
        s = policy.steps[rollout.step]
        return s.min_duration, s.max_duration, s.min_requests
    return policy.bake.duration, policy.bake.max_duration, policy.bake.min_requests


# Phases in which green may hold traffic while the rollout waits (a gate, a person's pause): judged
# too, for regressions only.
WATCHED_PHASES = frozenset({P.AWAITING_APPROVAL, P.PAUSED})
MINUTE = timedelta(minutes=1)


def _floor_minute(t: datetime) -> datetime:
    return t.replace(second=0, microsecond=0)


def _ceil_minute(t: datetime) -> datetime:
    floor = _floor_minute(t)
    return floor if floor == t else floor + MINUTE


def analysis_window(rollout: Rollout, policy: RolloutPolicy, now: datetime) -> tuple[datetime, datetime] | None:
    """The one window every source is read over: from the first whole minute after Azure was seen
    holding green's current split, to the last whole minute before `now - ingestion_lag`. None
    before one settled minute exists, while nothing is confirmed, or where nothing is judged."""
    judged = rollout.phase in EXPOSED_PHASES or (
        rollout.phase in WATCHED_PHASES and not paused_out_of_rollback(rollout)
    )
    if not judged or not rollout.traffic_confirmed or rollout.window_started_at is None:
        return None
    start = _ceil_minute(rollout.window_started_at)
    end = _floor_minute(now - policy.analysis.ingestion_lag)
    if end - start < MINUTE:
        return None
    return start, end


def paused_out_of_rollback(rollout: Rollout) -> bool:
    """Paused because a rollback could not be carried out (a person decides what happens next)."""
    return rollout.phase == P.PAUSED and rollout.resume_to == P.ROLLING_BACK
