"""Building decisions: the transitions every part of the state machine uses (enter a stage or its
approval gate, pause, begin a rollback and land it, succeed), each returning a Decision with its
events and audit record. Pure: nothing here reads a clock or touches Azure."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from shared.rollout.actions import (
    ROLE_OLD_PROD,
    ROLE_PROD,
    ROLE_ROLLED_BACK,
    ROLE_TAG,
    Action,
    Decision,
    DomainEvent,
    SetTraffic,
    TagDeployment,
)
from shared.rollout.analysis import CheckResult
from shared.rollout.model import (
    PendingDelete,
    Rollout,
    RolloutPhase,
)
from shared.rollout.policy import RolloutPolicy
from shared.rollout.sizing import shrink_old_blue
from shared.rollout.stages import needs_approval, next_stage, safe_split, split_for, stage_label

P = RolloutPhase

# building decisions


def event(rollout: Rollout, kind: str, reason: str, **data: Any) -> DomainEvent:
    return DomainEvent(
        type=kind,
        rollout_id=rollout.id,
        subject=rollout.endpoint.arm_id,
        data={
            "endpoint": rollout.endpoint.name,
            "model": rollout.model.label,
            "phase": str(rollout.phase),
            "blue": rollout.blue,
            "green": rollout.green,
            "traffic": rollout.desired.model_dump(),
            "reason": reason,
            **data,
        },
    )


def make_decision(
    before: Rollout,
    after: Rollout,
    now: datetime,
    reason: str,
    *,
    actions: Sequence[Action] = (),
    events: Sequence[DomainEvent] = (),
    evidence: Sequence[CheckResult] = (),
    actor: str = "safe-rollout",
    force_record: bool = False,
) -> Decision:
    # Repeating an order (level-triggered traffic, a retried delete) is not news: a row in the audit
    # trail needs a change of phase, step or reason, an event, or a person's command.
    record = (
        force_record
        or bool(events)
        or after.phase != before.phase
        or after.step != before.step
        or reason != before.last_reason
    )
    if record:
        after = after.model_copy(update={"decisions": before.decisions + 1})
    after = after.model_copy(update={"updated_at": now, "last_reason": reason})
    return Decision(
        rollout=after,
        actions=tuple(actions),
        events=tuple(events),
        reason=reason,
        evidence=tuple(evidence),
        actor=actor,
        record=record,
    )


def hold(rollout: Rollout, now: datetime, reason: str, evidence: Sequence[CheckResult] = ()) -> Decision:
    return make_decision(rollout, rollout, now, reason, evidence=evidence)


def enter_stage(
    rollout: Rollout,
    policy: RolloutPolicy,
    now: datetime,
    phase: RolloutPhase,
    step: int,
    reason: str,
    *,
    evidence: Sequence[CheckResult] = (),
    actor: str = "safe-rollout",
    gate: bool = True,
) -> Decision:
    """Move to a stage, or to its approval gate first."""
    if gate and needs_approval(policy, phase, step):
        waiting = rollout.model_copy(
            update={"phase": P.AWAITING_APPROVAL, "gate_to": phase, "step": step, "stage_started_at": now}
        )
        why = f"{reason}; waiting for approval before {stage_label(policy, phase, step)}"
        return make_decision(
            rollout,
            waiting,
            now,
            why,
            events=[event(waiting, "ApprovalRequested", why)],
            evidence=evidence,
            actor=actor,
        )
    split = split_for(rollout, policy, phase, step)
    moved = rollout.model_copy(
        update={
            "phase": phase,
            "step": step,
            "resume_to": None,
            "gate_to": None,
            "stage_started_at": now,
            "desired": split,
            "traffic_confirmed": split == rollout.desired and rollout.traffic_confirmed,
            # A new split starts a new judged window once Azure is seen holding it.
            "window_started_at": rollout.window_started_at if split == rollout.desired else None,
            "consecutive_errors": 0,
            "endpoint_busy_since": None,
            "last_action_error": "",
        }
    )
    why = f"{reason}; starting {stage_label(policy, phase, step)}"
    actions: list[Action] = [] if moved.traffic_confirmed else [SetTraffic(split=split)]
    return make_decision(
        rollout,
        moved,
        now,
        why,
        actions=actions,
        events=[event(moved, "StageStarted", why, stage=stage_label(policy, phase, step))],
        evidence=evidence,
        actor=actor,
    )


def begin_rollback(
    rollout: Rollout,
    now: datetime,
    reason: str,
    *,
    finish_as: RolloutPhase = P.ROLLED_BACK,
    evidence: Sequence[CheckResult] = (),
    actor: str = "safe-rollout",
) -> Decision:
    """Traffic first: order green to 0 live and 0 mirrored, then land in `finish_as` once seen.
    A green that was never ordered any traffic (and seen so) needs no order: the split found on the
    endpoint, a person's included, is left as it is."""
    split = safe_split(rollout)
    held = rollout.desired.live_of(rollout.green) == 0 and rollout.desired.mirror_of(rollout.green) == 0
    moved = rollout.model_copy(
        update={
            "phase": P.ROLLING_BACK,
            "finish_as": finish_as,
            "resume_to": None,
            "gate_to": None,
            "desired": split,
            "traffic_confirmed": held and rollout.traffic_confirmed and split == rollout.desired,
            "window_started_at": None,
            "consecutive_errors": 0,
            "last_action_error": "",
            "endpoint_busy_since": None,
            "scaling": None,  # a scale ordered for a step (or an earlier undo) is no longer waited for
            "rollback_reason": reason,
        }
    )
    return make_decision(
        rollout,
        moved,
        now,
        reason,
        actions=[] if moved.traffic_confirmed else [SetTraffic(split=split)],
        events=[event(moved, "RollbackStarted", reason, finish_as=str(finish_as))],
        evidence=evidence,
        actor=actor,
    )


def finish(rollout: Rollout, policy: RolloutPolicy, now: datetime, phase: RolloutPhase, reason: str) -> Decision:
    """Land a rollback in its final phase: keep green for people to read, then delete it."""
    update: dict[str, Any] = {"phase": phase, "finish_as": None, "traffic_confirmed": True, "endpoint_busy_since": None}
    actions: list[Action] = []
    if phase.terminal:
        update["finished_at"] = now
        update["cleanup"] = (
            *rollout.cleanup,
            PendingDelete(
                deployment=rollout.green,
                not_before=now + policy.keep_failed_green_for,
                why=f"{rollout.model.label} ended {phase}",
            ),
        )
        actions.append(TagDeployment(name=rollout.green, tags={ROLE_TAG: ROLE_ROLLED_BACK}))
    else:
        update["resume_to"] = P.PENDING
    after = rollout.model_copy(update=update)
    kind = {P.ROLLED_BACK: "RolledBack", P.SUPERSEDED: "Superseded", P.FAILED: "Failed"}.get(phase, str(phase))
    return make_decision(rollout, after, now, reason, actions=actions, events=[event(after, kind, reason)])


def fail_before_traffic(rollout: Rollout, policy: RolloutPolicy, now: datetime, reason: str) -> Decision:
    """Green never got traffic: straight to Failed, green deleted after the retention time."""
    moved = rollout.model_copy(update={"finish_as": P.FAILED, "phase": P.ROLLING_BACK})
    return finish(moved, policy, now, P.FAILED, reason)


def pause(
    rollout: Rollout,
    now: datetime,
    reason: str,
    *,
    evidence: Sequence[CheckResult] = (),
    actor: str = "safe-rollout",
) -> Decision:
    paused = rollout.model_copy(update={"phase": P.PAUSED, "resume_to": rollout.phase})
    return make_decision(
        rollout,
        paused,
        now,
        reason,
        events=[event(paused, "Paused", reason)],
        evidence=evidence,
        actor=actor,
    )


def on_policy_action(
    action: str, rollout: Rollout, now: datetime, reason: str, evidence: Sequence[CheckResult] = ()
) -> Decision:
    if action == "rollback":
        return begin_rollback(rollout, now, reason, evidence=evidence)
    return pause(rollout, now, reason, evidence=evidence)


def succeed(
    rollout: Rollout,
    policy: RolloutPolicy,
    now: datetime,
    reason: str,
    evidence: Sequence[CheckResult] = (),
    actor: str = "safe-rollout",
) -> Decision:
    actions: list[Action] = [TagDeployment(name=rollout.green, tags={ROLE_TAG: ROLE_PROD})]
    cleanup = rollout.cleanup
    if rollout.blue:
        actions.append(TagDeployment(name=rollout.blue, tags={ROLE_TAG: ROLE_OLD_PROD}))
        actions += shrink_old_blue(rollout, policy)  # kept for an undo, at the policy's size
        cleanup = (
            *cleanup,
            PendingDelete(
                deployment=rollout.blue,
                not_before=now + policy.keep_old_blue_for,
                why=f"replaced by {rollout.green} ({rollout.model.label})",
            ),
        )
    done = rollout.model_copy(update={"phase": P.SUCCEEDED, "finished_at": now, "cleanup": cleanup, "resume_to": None})
    return make_decision(
        rollout,
        done,
        now,
        reason,
        actions=actions,
        events=[event(done, "Succeeded", reason)],
        evidence=evidence,
        actor=actor,
    )


def advance(
    rollout: Rollout,
    policy: RolloutPolicy,
    now: datetime,
    reason: str,
    *,
    evidence: Sequence[CheckResult] = (),
    actor: str = "safe-rollout",
    gate: bool = True,
) -> Decision:
    nxt = next_stage(rollout, policy, rollout.phase, rollout.step)
    if nxt is None:
        return succeed(rollout, policy, now, reason, evidence, actor)
    return enter_stage(rollout, policy, now, nxt[0], nxt[1], reason, evidence=evidence, actor=actor, gate=gate)


# ---------------------------------------------------------------------------------------------
# decide
