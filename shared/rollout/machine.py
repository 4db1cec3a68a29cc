"""decide(): the rollout state machine as a pure function of data.

decide(rollout, policy, observation, now) -> Decision(next rollout, actions, events, reason,
evidence). Commands from people and alerts go through apply_command(); a new model version goes
through plan_start() and supersede(). Nothing here reads a clock or touches Azure.

Traffic is level-triggered: the rollout keeps the split it last ordered (`desired`) and whether the
endpoint was seen holding it (`traffic_confirmed`). Until confirmed, the order is repeated, which
finishes a tick that died half way. Once confirmed, a different split on the endpoint was made by
someone else: the rollout pauses and reports instead of fighting them.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Sequence
from datetime import datetime
from enum import StrEnum
from typing import Any

from shared.rollout import analysis
from shared.rollout.actions import (
    ROLE_CANDIDATE,
    ROLE_OLD_PROD,
    ROLE_PROD,
    ROLE_ROLLED_BACK,
    ROLE_TAG,
    ROLLOUT_TAG,
    Action,
    CreateDeployment,
    Decision,
    DeleteDeployment,
    DomainEvent,
    SetTraffic,
    TagDeployment,
)
from shared.rollout.analysis import CheckResult, Verdict
from shared.rollout.model import (
    EXPOSED_PHASES,
    EndpointRef,
    ModelRef,
    PendingDelete,
    Rollout,
    RolloutPhase,
    TrafficSplit,
)
from shared.rollout.observation import (
    PROVISIONING_FAILED,
    PROVISIONING_IN_PROGRESS,
    EndpointState,
    Observation,
)
from shared.rollout.policy import RolloutPolicy, format_duration

P = RolloutPhase


class CommandKind(StrEnum):
    PAUSE = "pause"
    RESUME = "resume"
    APPROVE = "approve"
    PROMOTE = "promote"
    PROMOTE_FULL = "promote-full"
    ROLLBACK = "rollback"
    ABORT = "abort"
    RETRY = "retry"


class CommandRejectedError(ValueError):
    """A command that the rollout's phase does not allow (HTTP 409)."""


# ---------------------------------------------------------------------------------------------
# identities and names


def rollout_id_for(endpoint: EndpointRef, model: ModelRef) -> str:
    """Deterministic, so the same model version on the same endpoint never starts twice."""
    digest = hashlib.sha256(f"{endpoint.key}|{model.name.lower()}|{model.version}".encode()).hexdigest()
    return f"r-{digest[:20]}"


def green_name_for(model: ModelRef, existing: Sequence[str]) -> str:
    """A valid Azure ML deployment name (3-32 chars, letter first, alphanumeric last, a-z0-9-)."""
    slug = re.sub(r"[^a-z0-9]+", "-", model.name.lower()).strip("-")
    if not slug or not slug[0].isalpha():
        slug = f"m-{slug}".strip("-")
    version = re.sub(r"[^a-z0-9]+", "-", model.version.lower()).strip("-") or "0"
    suffix = f"-v{version}"[:12]
    base = f"{slug[: 32 - len(suffix)].rstrip('-')}{suffix}".strip("-")
    taken = {e.lower() for e in existing}
    name, n = base, 2
    while name in taken:
        tail = f"-{n}"
        name = f"{base[: 32 - len(tail)].rstrip('-')}{tail}"
        n += 1
    return name


# ---------------------------------------------------------------------------------------------
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


def _next_stage(rollout: Rollout, policy: RolloutPolicy, phase: RolloutPhase, step: int) -> tuple[P, int] | None:
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


def _needs_approval(policy: RolloutPolicy, phase: RolloutPhase, step: int) -> bool:
    if phase == P.MIRRORING:
        return bool(policy.mirror and policy.mirror.approval)
    if phase == P.CANARY:
        return policy.steps[step].approval
    return phase == P.BAKING and policy.bake.approval


def stage_label(policy: RolloutPolicy, phase: RolloutPhase, step: int) -> str:
    if phase == P.MIRRORING and policy.mirror:
        return f"mirror {policy.mirror.percent}%"
    if phase == P.CANARY:
        return f"canary {policy.steps[step].percent}%"
    if phase == P.BAKING:
        return "bake at 100%"
    return str(phase)


# ---------------------------------------------------------------------------------------------
# building decisions


def _event(rollout: Rollout, kind: str, reason: str, **data: Any) -> DomainEvent:
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


def _decision(
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


def _hold(rollout: Rollout, now: datetime, reason: str, evidence: Sequence[CheckResult] = ()) -> Decision:
    return _decision(rollout, rollout, now, reason, evidence=evidence)


def _enter_stage(
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
    if gate and _needs_approval(policy, phase, step):
        waiting = rollout.model_copy(
            update={"phase": P.AWAITING_APPROVAL, "gate_to": phase, "step": step, "stage_started_at": now}
        )
        why = f"{reason}; waiting for approval before {stage_label(policy, phase, step)}"
        return _decision(
            rollout,
            waiting,
            now,
            why,
            events=[_event(waiting, "ApprovalRequested", why)],
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
            "consecutive_errors": 0,
        }
    )
    why = f"{reason}; starting {stage_label(policy, phase, step)}"
    actions: list[Action] = [] if moved.traffic_confirmed else [SetTraffic(split=split)]
    return _decision(
        rollout,
        moved,
        now,
        why,
        actions=actions,
        events=[_event(moved, "StageStarted", why, stage=stage_label(policy, phase, step))],
        evidence=evidence,
        actor=actor,
    )


def _begin_rollback(
    rollout: Rollout,
    now: datetime,
    reason: str,
    *,
    finish_as: RolloutPhase = P.ROLLED_BACK,
    evidence: Sequence[CheckResult] = (),
    actor: str = "safe-rollout",
) -> Decision:
    """Traffic first: order green to 0 live and 0 mirrored, then land in `finish_as` once seen."""
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
            "consecutive_errors": 0,
            "last_action_error": "",
        }
    )
    return _decision(
        rollout,
        moved,
        now,
        reason,
        actions=[SetTraffic(split=split)],
        events=[_event(moved, "RollbackStarted", reason, finish_as=str(finish_as))],
        evidence=evidence,
        actor=actor,
    )


def _finish(rollout: Rollout, policy: RolloutPolicy, now: datetime, phase: RolloutPhase, reason: str) -> Decision:
    """Land a rollback in its final phase: keep green for people to read, then delete it."""
    update: dict[str, Any] = {"phase": phase, "finish_as": None, "traffic_confirmed": True}
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
    return _decision(rollout, after, now, reason, actions=actions, events=[_event(after, kind, reason)])


def _fail_before_traffic(rollout: Rollout, policy: RolloutPolicy, now: datetime, reason: str) -> Decision:
    """Green never got traffic: straight to Failed, green deleted after the retention time."""
    moved = rollout.model_copy(update={"finish_as": P.FAILED, "phase": P.ROLLING_BACK})
    return _finish(moved, policy, now, P.FAILED, reason)


def _pause(
    rollout: Rollout,
    now: datetime,
    reason: str,
    *,
    evidence: Sequence[CheckResult] = (),
    actor: str = "safe-rollout",
) -> Decision:
    paused = rollout.model_copy(update={"phase": P.PAUSED, "resume_to": rollout.phase})
    return _decision(
        rollout,
        paused,
        now,
        reason,
        events=[_event(paused, "Paused", reason)],
        evidence=evidence,
        actor=actor,
    )


def _on_policy_action(
    action: str, rollout: Rollout, now: datetime, reason: str, evidence: Sequence[CheckResult] = ()
) -> Decision:
    if action == "rollback":
        return _begin_rollback(rollout, now, reason, evidence=evidence)
    return _pause(rollout, now, reason, evidence=evidence)


def _succeed(
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
        cleanup = (
            *cleanup,
            PendingDelete(
                deployment=rollout.blue,
                not_before=now + policy.keep_old_blue_for,
                why=f"replaced by {rollout.green} ({rollout.model.label})",
            ),
        )
    done = rollout.model_copy(update={"phase": P.SUCCEEDED, "finished_at": now, "cleanup": cleanup, "resume_to": None})
    return _decision(
        rollout,
        done,
        now,
        reason,
        actions=actions,
        events=[_event(done, "Succeeded", reason)],
        evidence=evidence,
        actor=actor,
    )


def _advance(
    rollout: Rollout,
    policy: RolloutPolicy,
    now: datetime,
    reason: str,
    *,
    evidence: Sequence[CheckResult] = (),
    actor: str = "safe-rollout",
    gate: bool = True,
) -> Decision:
    nxt = _next_stage(rollout, policy, rollout.phase, rollout.step)
    if nxt is None:
        return _succeed(rollout, policy, now, reason, evidence, actor)
    return _enter_stage(rollout, policy, now, nxt[0], nxt[1], reason, evidence=evidence, actor=actor, gate=gate)


# ---------------------------------------------------------------------------------------------
# decide


# A not-found is believed only when this many reads in a row agree (ARM can answer a transient 404).
ENDPOINT_GONE_AFTER = 3


def decide(rollout: Rollout, policy: RolloutPolicy, observation: Observation, now: datetime) -> Decision:
    """One reconcile step. Every branch returns data; nothing is carried out here.

    Ways out come before any early return: the deadline first, then (wherever the rollout cannot
    make progress this tick) the stage's own timeout, then the limit on errors in a row. So every
    active phase ends, or is handed to a person, in bounded time whatever Azure answers.
    """
    if rollout.phase.terminal:
        return _cleanup(rollout, observation, now)
    if _past_deadline(rollout, policy, now):
        return _begin_rollback(rollout, now, f"the rollout passed its {format_duration(policy.deadline)} deadline")
    if observation.endpoint_error is not None:
        return _stalled(rollout, policy, now, f"cannot read the endpoint: {observation.endpoint_error}")
    endpoint = observation.endpoint
    if endpoint is None:
        return _endpoint_missing(rollout, policy, now)
    if rollout.endpoint_missing:
        rollout = rollout.model_copy(update={"endpoint_missing": 0})

    actual = endpoint.traffic
    if rollout.phase == P.ROLLING_BACK:
        return _rolling_back(rollout, policy, endpoint, now)

    green = endpoint.deployment(rollout.green)
    green_broken = green is None or green.provisioning_state in PROVISIONING_FAILED
    if rollout.phase in (P.PAUSED, P.AWAITING_APPROVAL) and green_broken and _green_touched(rollout, actual):
        # Waiting is no shelter: a green that failed while it holds traffic is rolled back now.
        state = "is gone" if green is None else f"is {green.provisioning_state}"
        return _begin_rollback(rollout, now, f"green {rollout.green} {state} while {rollout.phase}")

    if not rollout.traffic_confirmed:
        if actual == rollout.desired:
            rollout = rollout.model_copy(
                update={"traffic_confirmed": True, "last_action_error": "", "consecutive_errors": 0}
            )
        elif rollout.phase == P.PAUSED:
            # A pause orders nothing: the split is ordered again when a person resumes.
            return _hold(rollout, now, rollout.last_reason)
        else:
            return _overdue(rollout, policy, now) or _order_again(rollout, policy, now, actual)
    elif actual != rollout.desired and rollout.phase != P.PAUSED:
        why = (
            f"traffic was changed outside Safe Rollout: expected {rollout.desired.describe()}, "
            f"found {actual.describe()}; paused without touching it"
        )
        paused = rollout.model_copy(update={"phase": P.PAUSED, "resume_to": rollout.phase})
        return _decision(
            rollout,
            paused,
            now,
            why,
            events=[_event(paused, "DriftDetected", why, found=actual.model_dump())],
        )

    if rollout.phase == P.PENDING:
        return _pending(rollout, policy, endpoint, observation, now)
    if rollout.phase in EXPOSED_PHASES:
        return _judge(rollout, policy, endpoint, observation, now)
    if rollout.phase == P.AWAITING_APPROVAL:
        return _overdue(rollout, policy, now) or _hold(rollout, now, rollout.last_reason)
    return _hold(rollout, now, rollout.last_reason)  # Paused, Aborted: a person decides


def _green_touched(rollout: Rollout, actual: TrafficSplit) -> bool:
    """Whether green holds, or was last ordered to hold, any live or mirrored traffic."""
    return any(
        split.live_of(rollout.green) or split.mirror_of(rollout.green) for split in (actual, rollout.desired)
    )


def _paused_out_of_rollback(rollout: Rollout) -> bool:
    return rollout.phase == P.PAUSED and rollout.resume_to == P.ROLLING_BACK


def _past_deadline(rollout: Rollout, policy: RolloutPolicy, now: datetime) -> bool:
    """The whole rollout's deadline. A rollback under way, or one that could not be carried out and
    was handed to a person, is not started again (that would loop)."""
    if rollout.phase == P.ROLLING_BACK or _paused_out_of_rollback(rollout):
        return False
    return now - rollout.created_at > policy.deadline


def _overdue(rollout: Rollout, policy: RolloutPolicy, now: datetime) -> Decision | None:
    """The current stage's own time limit, checked wherever a tick cannot make progress."""
    waited = now - rollout.stage_started_at
    if rollout.phase == P.PENDING and waited > policy.provisioning_timeout:
        return _fail_before_traffic(
            rollout,
            policy,
            now,
            f"green {rollout.green} was not ready within {format_duration(policy.provisioning_timeout)}",
        )
    if rollout.phase == P.AWAITING_APPROVAL:
        timeout = policy.approval_timeout
        if timeout is not None and waited > timeout:
            why = f"no approval within {format_duration(timeout)}"
            if policy.on_approval_timeout == "rollback":
                return _begin_rollback(rollout, now, why)
            return _pause(rollout, now, why)
    if rollout.phase in EXPOSED_PHASES:
        _, max_duration, _ = _stage_limits(policy, rollout)
        if waited > max_duration:
            label = stage_label(policy, rollout.phase, rollout.step)
            why = f"{label} reached no verdict within {format_duration(max_duration)} ({rollout.last_reason})"
            return _on_policy_action(policy.on_stage_timeout, rollout, now, why)
    return None


def _stalled(rollout: Rollout, policy: RolloutPolicy, now: datetime, why: str) -> Decision:
    """A tick that cannot act (Azure unreadable, an order not applied): counted, and past the limit
    handed to the policy (exposed phases) or to a person (everywhere else green may hold traffic)."""
    overdue = _overdue(rollout, policy, now)
    if overdue is not None:
        return overdue
    errors = rollout.consecutive_errors + 1
    counted = rollout.model_copy(update={"consecutive_errors": errors})
    evidence = [
        CheckResult(
            check="provider",
            verdict=Verdict.ERROR,
            summary=why,
            evidence={"consecutive_errors": errors, "limit": policy.consecutive_error_limit},
        )
    ]
    if errors >= policy.consecutive_error_limit:
        reason = f"{errors} provider errors in a row (limit {policy.consecutive_error_limit}): {why}"
        if rollout.phase in EXPOSED_PHASES:
            return _on_policy_action(policy.on_provider_errors, counted, now, reason, evidence)
        if rollout.phase == P.ROLLING_BACK:
            why = f"{reason}; the rollback could not be completed, a person must decide"
            return _pause(counted, now, why, evidence=evidence)
    return _decision(rollout, counted, now, f"provider error, will retry: {why}", evidence=evidence)


def _order_again(rollout: Rollout, policy: RolloutPolicy, now: datetime, actual: TrafficSplit) -> Decision:
    """Our split is not on the endpoint yet: order it again, counting each miss as an error."""
    refused = f": Azure said {rollout.last_action_error}" if rollout.last_action_error else ""
    why = f"traffic not applied yet (ordered {rollout.desired.describe()}, found {actual.describe()}){refused}"
    stalled = _stalled(rollout, policy, now, why)
    if stalled.rollout.phase != rollout.phase:
        return stalled
    return _decision(
        rollout,
        stalled.rollout,
        now,
        f"applying traffic ({rollout.desired.describe()})",
        actions=[SetTraffic(split=rollout.desired)],
        evidence=stalled.evidence,
    )


def _endpoint_missing(rollout: Rollout, policy: RolloutPolicy, now: datetime) -> Decision:
    missing = rollout.endpoint_missing + 1
    if missing < ENDPOINT_GONE_AFTER:
        counted = rollout.model_copy(update={"endpoint_missing": missing})
        overdue = _overdue(counted, policy, now)
        if overdue is not None:
            return overdue
        why = f"endpoint {rollout.endpoint.name} not found ({missing} of {ENDPOINT_GONE_AFTER} reads); looking again"
        return _decision(rollout, counted, now, why)
    after = rollout.model_copy(update={"phase": P.FAILED, "finished_at": now, "endpoint_missing": missing})
    why = f"endpoint {rollout.endpoint.name} no longer exists ({missing} reads in a row found none)"
    return _decision(rollout, after, now, why, events=[_event(after, "Failed", why)])


def _rolling_back(rollout: Rollout, policy: RolloutPolicy, endpoint: EndpointState, now: datetime) -> Decision:
    actual = endpoint.traffic
    if actual.live_of(rollout.green) == 0 and actual.mirror_of(rollout.green) == 0:
        finish_as = rollout.finish_as or P.ROLLED_BACK
        return _finish(rollout, policy, now, finish_as, f"{rollout.last_reason} (green holds no traffic)")
    if rollout.blue and endpoint.deployment(rollout.blue) is None:
        why = (
            f"cannot roll back: blue {rollout.blue} no longer exists and green {rollout.green} serves "
            f"{actual.describe()}; a person must decide (promote-full keeps green, or restore blue and resume)"
        )
        return _pause(rollout, now, why)
    return _order_again(rollout, policy, now, actual)


def _pending(
    rollout: Rollout, policy: RolloutPolicy, endpoint: EndpointState, observation: Observation, now: datetime
) -> Decision:
    green = endpoint.deployment(rollout.green)
    waited = now - rollout.stage_started_at
    if green is None or green.provisioning_state in PROVISIONING_IN_PROGRESS:
        if waited > policy.provisioning_timeout:
            return _fail_before_traffic(
                rollout,
                policy,
                now,
                f"green {rollout.green} was not ready within {format_duration(policy.provisioning_timeout)}",
            )
        if green is None:
            create = CreateDeployment(
                name=rollout.green,
                model=rollout.model,
                copy_from=rollout.blue,
                tags={ROLE_TAG: ROLE_CANDIDATE, ROLLOUT_TAG: rollout.id},
            )
            return _decision(rollout, rollout, now, f"creating green {rollout.green}", actions=[create])
        return _hold(rollout, now, f"waiting for green {rollout.green} to be provisioned")
    if green.provisioning_state in PROVISIONING_FAILED or green.provisioning_state == "Deleting":
        return _fail_before_traffic(
            rollout, policy, now, f"green {rollout.green} provisioning ended {green.provisioning_state}"
        )
    if green.provisioning_state != "Succeeded":  # a state we do not know is never taken for ready
        if waited > policy.provisioning_timeout:
            return _fail_before_traffic(
                rollout,
                policy,
                now,
                f"green {rollout.green} was not ready within {format_duration(policy.provisioning_timeout)} "
                f"(state {green.provisioning_state})",
            )
        return _hold(rollout, now, f"waiting for green {rollout.green} ({green.provisioning_state})")
    if rollout.blue and endpoint.deployment(rollout.blue) is None:
        return _pause(rollout, now, f"blue {rollout.blue} no longer exists; a person must decide")
    if policy.smoke_test is not None and rollout.smoke_passed is None:
        smoke = observation.smoke
        if smoke is None:
            return _hold(rollout, now, f"smoke-testing green {rollout.green}")
        evidence = [
            CheckResult(
                check="smoke",
                verdict=Verdict.FAIL if smoke.failed > policy.smoke_test.max_failures else Verdict.PASS,
                summary=f"{smoke.failed} of {smoke.sent} sample requests failed"
                + (f": {smoke.detail}" if smoke.detail else ""),
                evidence={
                    "sent": smoke.sent,
                    "failed": smoke.failed,
                    "max_failures": policy.smoke_test.max_failures,
                },
            )
        ]
        if smoke.failed > policy.smoke_test.max_failures:
            failed = _fail_before_traffic(rollout, policy, now, f"smoke test failed: {evidence[0].summary}")
            return failed.model_copy(update={"evidence": tuple(evidence)})
        rollout = rollout.model_copy(update={"smoke_passed": True})
        return _advance(
            rollout, policy, now, f"green ready; smoke test passed ({smoke.sent} requests)", evidence=evidence
        )
    return _advance(rollout, policy, now, f"green {rollout.green} is ready")


def _stage_limits(policy: RolloutPolicy, rollout: Rollout) -> tuple[Any, Any, int]:
    """(min duration, max duration, min requests) of the current stage."""
    if rollout.phase == P.MIRRORING and policy.mirror:
        return policy.mirror.min_duration, policy.mirror.max_duration, policy.mirror.min_requests
    if rollout.phase == P.CANARY:
        s = policy.steps[rollout.step]
        return s.min_duration, s.max_duration, s.min_requests
    return policy.bake.duration, policy.bake.max_duration, policy.bake.min_requests


def analysis_window(
    rollout: Rollout, policy: RolloutPolicy, now: datetime, endpoint_traffic: TrafficSplit | None = None
) -> tuple[datetime, datetime] | None:
    """The settled window to judge, once the stage has run its minimum time; None before that.
    Traffic counts as confirmed when the endpoint is seen holding it, as decide() would confirm it."""
    confirmed = rollout.traffic_confirmed or endpoint_traffic == rollout.desired
    if rollout.phase not in EXPOSED_PHASES or not confirmed:
        return None
    min_duration, _, _ = _stage_limits(policy, rollout)
    end = now - policy.analysis.ingestion_lag
    if end - rollout.stage_started_at < min_duration:
        return None
    return rollout.stage_started_at, end


def _judge(
    rollout: Rollout, policy: RolloutPolicy, endpoint: EndpointState, observation: Observation, now: datetime
) -> Decision:
    green = endpoint.deployment(rollout.green)
    if green is None or green.provisioning_state in PROVISIONING_FAILED:
        state = "is gone" if green is None else f"is {green.provisioning_state}"
        return _begin_rollback(rollout, now, f"green {rollout.green} {state}")
    if rollout.blue and endpoint.deployment(rollout.blue) is None and rollout.phase != P.BAKING:
        return _pause(rollout, now, f"blue {rollout.blue} no longer exists; a person must decide")
    blue = endpoint.deployment(rollout.blue)
    if blue is not None and blue.provisioning_state in PROVISIONING_FAILED:
        # Rolling back onto a broken blue could hurt users more than holding: a person decides.
        return _pause(rollout, now, f"blue {rollout.blue} is {blue.provisioning_state}; a person must decide")
    min_duration, max_duration, min_requests = _stage_limits(policy, rollout)
    label = stage_label(policy, rollout.phase, rollout.step)
    window = analysis_window(rollout, policy, now)
    if window is None:
        return _hold(
            rollout,
            now,
            f"observing {label} for at least {format_duration(min_duration)} "
            f"(+{format_duration(policy.analysis.ingestion_lag)} lag)",
        )
    if observation.metrics_error is not None:
        return _stalled(rollout, policy, now, f"cannot read metrics: {observation.metrics_error}")
    rollout = rollout.model_copy(update={"consecutive_errors": 0})
    if observation.metrics is None:
        results: tuple[CheckResult, ...] = (
            CheckResult(check="metrics", verdict=Verdict.NO_DATA, summary="no metrics for the window"),
        )
    else:
        compare = rollout.blue is not None and rollout.phase != P.BAKING
        results = analysis.analyse(policy, observation.metrics, min_requests, compare)
    verdict = analysis.overall(results)
    if verdict == Verdict.FAIL:
        failed = [r for r in results if r.verdict == Verdict.FAIL]
        return _begin_rollback(
            rollout,
            now,
            f"{label} failed: " + "; ".join(f"{r.check}: {r.summary}" for r in failed),
            evidence=results,
        )
    if verdict == Verdict.PASS:
        return _advance(rollout, policy, now, f"{label} passed", evidence=results)
    if now - rollout.stage_started_at > max_duration:
        why = (
            f"{label} reached no verdict within {format_duration(max_duration)} "
            f"({verdict}: {analysis.summarise(results)})"
        )
        return _on_policy_action(policy.on_stage_timeout, rollout, now, why, results)
    return _hold(rollout, now, f"holding {label}: {verdict}", evidence=results)


def _final_roles(rollout: Rollout) -> dict[str, str]:
    if rollout.phase == P.SUCCEEDED:
        roles = {rollout.green: ROLE_PROD}
        if rollout.blue:
            roles[rollout.blue] = ROLE_OLD_PROD
        return roles
    return {rollout.green: ROLE_ROLLED_BACK}


def _cleanup(rollout: Rollout, observation: Observation, now: datetime) -> Decision:
    """Terminal phases absorb every input; only retained deployments are deleted when due, and
    role tags a crash may have lost are re-applied (never over a tag someone else has set since)."""
    if not rollout.cleanup or observation.endpoint_error is not None:
        return _decision(rollout, rollout, now, rollout.last_reason)
    endpoint = observation.endpoint
    keep: list[PendingDelete] = []
    actions: list[Action] = []
    notes: list[str] = []
    if endpoint is not None:
        for name, role in _final_roles(rollout).items():
            dep = endpoint.deployment(name)
            if dep is not None and dep.tags.get(ROLE_TAG) in (None, ROLE_CANDIDATE) and name == rollout.green:
                actions.append(TagDeployment(name=name, tags={ROLE_TAG: role}))
    for item in rollout.cleanup:
        dep = endpoint.deployment(item.deployment) if endpoint else None
        if dep is None:
            notes.append(f"{item.deployment} deleted")
            continue
        assert endpoint is not None
        if now < item.not_before:
            keep.append(item)
        elif endpoint.traffic.live_of(item.deployment) or endpoint.traffic.mirror_of(item.deployment):
            notes.append(f"kept {item.deployment}: it carries traffic again")
        else:
            keep.append(item)
            if dep.provisioning_state != "Deleting":
                actions.append(DeleteDeployment(name=item.deployment))
    after = rollout.model_copy(update={"cleanup": tuple(keep)})
    reason = "; ".join(notes) if notes else rollout.last_reason
    deletes = [a.name for a in actions if isinstance(a, DeleteDeployment)]
    if deletes:
        reason = "deleting " + ", ".join(deletes)
    return _decision(rollout, after, now, reason, actions=actions)


# ---------------------------------------------------------------------------------------------
# commands, start, supersede


def _green_can_serve(rollout: Rollout, kind: CommandKind, endpoint: EndpointState) -> None:
    green = endpoint.deployment(rollout.green)
    if rollout.phase == P.PAUSED and rollout.resume_to in (P.PENDING, P.ROLLING_BACK) and kind == CommandKind.RESUME:
        return  # resuming the wait for green, or a rollback, sends nobody to green
    if green is None or green.provisioning_state != "Succeeded":
        state = "gone" if green is None else green.provisioning_state
        raise CommandRejectedError(
            f"green {rollout.green} is {state}; {kind} would send traffic to it (roll back or abort instead)"
        )


def _keep_green(
    rollout: Rollout,
    policy: RolloutPolicy,
    now: datetime,
    said: str,
    actor: str,
    endpoint: EndpointState | None,
) -> Decision:
    """A rollback that could not reach blue was handed to a person, who keeps green: it bakes at
    100% under the usual checks and then succeeds (the way out when blue is gone)."""
    if endpoint is None or endpoint.traffic.live_of(rollout.green) != 100:
        found = endpoint.traffic.describe() if endpoint is not None else "unknown"
        raise CommandRejectedError(f"promote-full keeps green only while it serves all users (found {found})")
    baking = rollout.model_copy(update={"finish_as": None, "resume_to": P.BAKING})
    return _enter_stage(baking, policy, now, P.BAKING, -1, said, actor=actor, gate=False)


def _undo(rollout: Rollout, now: datetime, said: str, actor: str) -> Decision:
    """A rollback just after success, while the old blue is kept at 0% for exactly this: traffic
    goes back to it and the rollout ends RolledBack. Once blue's retention has passed (it is
    deleted), the success stands and a new rollout is the way forward."""
    blue = rollout.blue
    if not blue or not any(item.deployment == blue for item in rollout.cleanup):
        raise CommandRejectedError(
            f"rollout {rollout.id} has finished (Succeeded) and its old blue is no longer kept; "
            "a rollback is not possible"
        )
    reopened = rollout.model_copy(
        update={
            "phase": P.BAKING,
            "finished_at": None,
            "cleanup": tuple(item for item in rollout.cleanup if item.deployment != blue),
        }
    )
    undo = _begin_rollback(reopened, now, f"{said} (undo of the promotion)", actor=actor)
    return undo.model_copy(
        update={"actions": (*undo.actions, TagDeployment(name=blue, tags={ROLE_TAG: ROLE_PROD}))}
    )


# Commands that send users (or mirrored copies) to green: refused while green is not ready.
_TOWARD_GREEN = frozenset({"resume", "approve", "promote", "promote-full"})


def apply_command(
    rollout: Rollout,
    policy: RolloutPolicy,
    kind: CommandKind,
    now: datetime,
    *,
    actor: str,
    reason: str = "",
    endpoint: EndpointState | None = None,
) -> Decision:
    """A person's or an alert's command. Raises CommandRejectedError when the phase forbids it.

    `endpoint`, when the shell has read it, lets a command that moves traffic toward green check
    that green can take it (a Failed green never gets users by a person's click)."""
    phase = rollout.phase
    said = f"{kind} by {actor}" + (f": {reason}" if reason else "")
    if kind == CommandKind.ROLLBACK and phase == P.SUCCEEDED:
        return _undo(rollout, now, said, actor)
    if phase.terminal:
        raise CommandRejectedError(f"rollout {rollout.id} has finished ({phase}); {kind} is not possible")
    if kind == CommandKind.ROLLBACK:
        if phase == P.ROLLING_BACK and rollout.finish_as == P.ROLLED_BACK:
            raise CommandRejectedError("already rolling back")
        return _begin_rollback(rollout, now, said, actor=actor)
    if kind == CommandKind.ABORT:
        if phase in (P.ABORTED, P.ROLLING_BACK):
            raise CommandRejectedError(f"cannot abort while {phase}")
        return _begin_rollback(rollout, now, said, finish_as=P.ABORTED, actor=actor)
    if phase == P.ROLLING_BACK:
        raise CommandRejectedError(f"rollout is rolling back; {kind} is not possible")
    if str(kind) in _TOWARD_GREEN and endpoint is not None:
        _green_can_serve(rollout, kind, endpoint)
    if kind == CommandKind.PROMOTE_FULL and _paused_out_of_rollback(rollout):
        return _keep_green(rollout, policy, now, said, actor, endpoint)
    if kind == CommandKind.PAUSE:
        if phase in (P.PAUSED, P.ABORTED):
            raise CommandRejectedError(f"cannot pause while {phase}")
        return _pause(rollout, now, said, actor=actor)
    if kind == CommandKind.RESUME:
        if phase != P.PAUSED or rollout.resume_to is None:
            raise CommandRejectedError(f"only a paused rollout can resume (it is {phase})")
        back_to = rollout.resume_to
        update: dict[str, Any] = {"phase": back_to, "resume_to": None, "consecutive_errors": 0}
        reorder = back_to in EXPOSED_PHASES or back_to == P.ROLLING_BACK
        if back_to in EXPOSED_PHASES:
            # Judge afresh from now: the person accepted the stage by resuming.
            update["stage_started_at"] = now
        if reorder:  # and order our split again (a rollback that stalled is tried afresh)
            update["traffic_confirmed"] = False
        resumed = rollout.model_copy(update=update)
        actions: list[Action] = [SetTraffic(split=resumed.desired)] if reorder else []
        return _decision(
            rollout,
            resumed,
            now,
            said,
            actions=actions,
            events=[_event(resumed, "Resumed", said)],
            actor=actor,
            force_record=True,
        )
    if kind == CommandKind.APPROVE:
        if phase != P.AWAITING_APPROVAL or rollout.gate_to is None:
            raise CommandRejectedError(f"nothing awaits approval (the rollout is {phase})")
        return _enter_stage(rollout, policy, now, rollout.gate_to, rollout.step, said, actor=actor, gate=False)
    if kind in (CommandKind.PROMOTE, CommandKind.PROMOTE_FULL):
        position = rollout.resume_to if phase == P.PAUSED else phase
        if position == P.AWAITING_APPROVAL and rollout.gate_to is not None:
            target: tuple[RolloutPhase, int] | None = (rollout.gate_to, rollout.step)
        elif position in EXPOSED_PHASES:
            target = _next_stage(rollout, policy, position, rollout.step)
        else:
            raise CommandRejectedError(f"cannot {kind} while {phase}: green serves no traffic yet")
        if kind == CommandKind.PROMOTE_FULL and target is not None:
            target = (P.BAKING, -1)
        if target is None:
            return _succeed(rollout, policy, now, said, actor=actor)
        return _enter_stage(rollout, policy, now, target[0], target[1], said, actor=actor, gate=False)
    if kind == CommandKind.RETRY:
        if phase != P.ABORTED:
            raise CommandRejectedError(f"only an aborted rollout can be retried (it is {phase}; paused ones resume)")
        retried = rollout.model_copy(
            update={
                "phase": P.PENDING,
                "resume_to": None,
                "gate_to": None,
                "stage_started_at": now,
                "smoke_passed": None,
                "consecutive_errors": 0,
                "step": -1,
            }
        )
        return _decision(
            rollout,
            retried,
            now,
            said,
            events=[_event(retried, "Retried", said)],
            actor=actor,
            force_record=True,
        )
    raise CommandRejectedError(f"unknown command {kind!r}")


class StartRejectedError(ValueError):
    """The endpoint is not in a state a rollout can start from."""


def plan_start(
    endpoint_ref: EndpointRef,
    model: ModelRef,
    endpoint: EndpointState,
    policy: RolloutPolicy,
    now: datetime,
    *,
    trigger: str,
    blue_hint: str | None = None,
) -> Decision:
    """A new rollout for `model`: find blue (the deployment holding all live traffic), name green."""
    live = endpoint.traffic.live
    if blue_hint is not None:
        blue: str | None = blue_hint
    elif not live:
        blue = None
    elif len(live) == 1:
        blue = next(iter(live))
    else:
        raise StartRejectedError(
            f"endpoint {endpoint.name} splits live traffic ({endpoint.traffic.describe()}); "
            "a rollout needs one deployment at 100%"
        )
    if endpoint.traffic.mirror and blue_hint is None:
        raise StartRejectedError(f"endpoint {endpoint.name} already mirrors traffic ({endpoint.traffic.describe()})")
    green = green_name_for(model, list(endpoint.deployments))
    rollout = Rollout(
        id=rollout_id_for(endpoint_ref, model),
        endpoint=endpoint_ref,
        model=model,
        blue=blue,
        green=green,
        phase=P.PENDING,
        created_at=now,
        updated_at=now,
        stage_started_at=now,
        desired=TrafficSplit(live={blue: 100}) if blue else TrafficSplit(),
        traffic_confirmed=blue_hint is None,
        trigger=trigger,
    )
    why = f"{model.label} registered; green {green} will be a copy of " + (blue or "the policy template")
    create = CreateDeployment(
        name=green, model=model, copy_from=blue, tags={ROLE_TAG: ROLE_CANDIDATE, ROLLOUT_TAG: rollout.id}
    )
    return Decision(
        rollout=rollout.model_copy(update={"decisions": 1, "last_reason": why}),
        actions=(create,),
        events=(_event(rollout, "Started", why),),
        reason=why,
        actor=trigger,
        record=True,
    )


def annotate(rollout: Rollout, now: datetime, reason: str, actor: str) -> Decision:
    """A note in the audit trail (an alert resolved, a rejected alert) that changes nothing else."""
    return _decision(rollout, rollout, now, reason, actor=actor, force_record=True)


def supersede(rollout: Rollout, newer: ModelRef, now: datetime) -> Decision:
    """A newer version arrived: traffic back to blue first, then this rollout ends Superseded."""
    return _begin_rollback(rollout, now, f"superseded by {newer.label}", finish_as=P.SUPERSEDED)


def unrecorded(rollout: Rollout, now: datetime) -> Decision:
    """Nothing to record or do (a note past its bound): the rollout as it is."""
    return Decision(rollout=rollout, reason=rollout.last_reason, record=False)


# What a person may still do with a rollout whose stored policy cannot be read.
SAFE_WITHOUT_POLICY = frozenset({CommandKind.PAUSE, CommandKind.ROLLBACK, CommandKind.ABORT})


def decide_isolated(rollout: Rollout, observation: Observation, now: datetime, error: str) -> Decision:
    """A rollout whose stored policy snapshot cannot be read: it cannot be judged, so it is paused
    for a person (a rollback under way finishes, a pause stays one) under the default policy's
    limits, which only ever end it safely. The other rollouts never notice."""
    if rollout.phase.terminal or rollout.phase in (P.ROLLING_BACK, P.PAUSED, P.ABORTED):
        return decide(rollout, RolloutPolicy(), observation, now)
    why = f"its stored policy cannot be read ({error}); paused: a person can roll back or abort"
    return _pause(rollout, now, why)
