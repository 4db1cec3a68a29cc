"""Commands: a person's or an alert's command (apply_command), a new model version's start
(plan_start) and a newer one superseding it (supersede), and the identities they use. Pure: the
shell reads what a command needs (the endpoint, for commands that send traffic to green) and hands
it over as data."""

from __future__ import annotations

import hashlib
import re
from collections.abc import Sequence
from datetime import datetime
from enum import StrEnum
from typing import Any

from shared.rollout.actions import (
    ROLE_CANDIDATE,
    ROLE_PROD,
    ROLE_TAG,
    ROLLOUT_TAG,
    Action,
    CreateDeployment,
    Decision,
    SetTraffic,
    TagDeployment,
)
from shared.rollout.capacity import scale_back_first
from shared.rollout.model import (
    EXPOSED_PHASES,
    EndpointRef,
    ModelRef,
    Rollout,
    RolloutPhase,
    TrafficSplit,
)
from shared.rollout.observation import (
    PROVISIONING_IN_PROGRESS,
    EndpointState,
)
from shared.rollout.policy import RolloutPolicy
from shared.rollout.promotion import PromoteRefusedError, before_promote
from shared.rollout.sizing import first_size
from shared.rollout.stages import next_stage, paused_out_of_rollback
from shared.rollout.transitions import begin_rollback, enter_stage, event, finish, make_decision, pause, succeed

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

# commands, start, supersede


def _green_can_serve(rollout: Rollout, kind: CommandKind, endpoint: EndpointState) -> None:
    green = endpoint.deployment(rollout.green)
    if rollout.phase == P.PAUSED and rollout.resume_to in (P.PENDING, P.ROLLING_BACK) and kind == CommandKind.RESUME:
        return  # resuming the wait for green, or a rollback, sends nobody to green
    if green is not None and green.provisioning_state in PROVISIONING_IN_PROGRESS and rollout.scaling is not None:
        raise CommandRejectedError(
            f"green {rollout.green} is being scaled to {rollout.scaling.instances} instances "
            f"({green.provisioning_state}); {kind} again once it is done"
        )
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
    return enter_stage(baking, policy, now, P.BAKING, -1, said, actor=actor, gate=False)


def _undo(rollout: Rollout, policy: RolloutPolicy, now: datetime, said: str, actor: str) -> Decision:
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
    undo = begin_rollback(reopened, now, f"{said} (undo of the promotion)", actor=actor)
    undo = scale_back_first(rollout, policy, undo, now)  # a shrunk old blue is scaled back before traffic moves
    return undo.model_copy(update={"actions": (*undo.actions, TagDeployment(name=blue, tags={ROLE_TAG: ROLE_PROD}))})


# Commands that send users (or mirrored copies) to green: refused while green is not ready.
TOWARD_GREEN = frozenset({CommandKind.RESUME, CommandKind.APPROVE, CommandKind.PROMOTE, CommandKind.PROMOTE_FULL})


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
        return _undo(rollout, policy, now, said, actor)
    if phase.terminal:
        raise CommandRejectedError(f"rollout {rollout.id} has finished ({phase}); {kind} is not possible")
    if kind == CommandKind.ROLLBACK:
        if phase == P.ROLLING_BACK and rollout.finish_as == P.ROLLED_BACK:
            raise CommandRejectedError("already rolling back")
        return begin_rollback(rollout, now, said, actor=actor)
    if kind == CommandKind.ABORT:
        if phase in (P.ABORTED, P.ROLLING_BACK):
            raise CommandRejectedError(f"cannot abort while {phase}")
        return begin_rollback(rollout, now, said, finish_as=P.ABORTED, actor=actor)
    if phase == P.ROLLING_BACK:
        raise CommandRejectedError(f"rollout is rolling back; {kind} is not possible")
    if kind in TOWARD_GREEN and endpoint is not None:
        _green_can_serve(rollout, kind, endpoint)
    if kind == CommandKind.PROMOTE_FULL and paused_out_of_rollback(rollout):
        return _keep_green(rollout, policy, now, said, actor, endpoint)
    if kind == CommandKind.PAUSE:
        if phase in (P.PAUSED, P.ABORTED):
            raise CommandRejectedError(f"cannot pause while {phase}")
        return pause(rollout, now, said, actor=actor)
    if kind == CommandKind.RESUME:
        if phase != P.PAUSED or rollout.resume_to is None:
            raise CommandRejectedError(f"only a paused rollout can resume (it is {phase})")
        back_to = rollout.resume_to
        update: dict[str, Any] = {
            "phase": back_to,
            "resume_to": None,
            "consecutive_errors": 0,
            "endpoint_busy_since": None,  # a fresh order gets the full patience with a busy endpoint
            "last_action_error": "",
        }
        reorder = back_to in EXPOSED_PHASES or back_to == P.ROLLING_BACK
        if back_to in EXPOSED_PHASES:
            # Judge afresh from now: the person accepted the stage by resuming.
            update["stage_started_at"] = now
        if reorder:  # and order our split again (a rollback that stalled is tried afresh)
            update["traffic_confirmed"] = False
        resumed = rollout.model_copy(update=update)
        actions: list[Action] = [SetTraffic(split=resumed.desired)] if reorder else []
        return make_decision(
            rollout,
            resumed,
            now,
            said,
            actions=actions,
            events=[event(resumed, "Resumed", said)],
            actor=actor,
            force_record=True,
        )
    if kind == CommandKind.APPROVE:
        if phase != P.AWAITING_APPROVAL or rollout.gate_to is None:
            raise CommandRejectedError(f"nothing awaits approval (the rollout is {phase})")
        return enter_stage(rollout, policy, now, rollout.gate_to, rollout.step, said, actor=actor, gate=False)
    if kind in (CommandKind.PROMOTE, CommandKind.PROMOTE_FULL):
        position = rollout.resume_to if phase == P.PAUSED else phase
        if position == P.AWAITING_APPROVAL and rollout.gate_to is not None:
            target: tuple[RolloutPhase, int] | None = (rollout.gate_to, rollout.step)
        elif position in EXPOSED_PHASES:
            target = next_stage(rollout, policy, position, rollout.step)
        else:
            raise CommandRejectedError(f"cannot {kind} while {phase}: green serves no traffic yet")
        if kind == CommandKind.PROMOTE_FULL and target is not None:
            target = (P.BAKING, -1)
        if target is None:
            return succeed(rollout, policy, now, said, actor=actor)
        try:  # green scaled to the stage's size first, and the cost gate before full traffic
            ready = before_promote(rollout, policy, endpoint, target, now, said=said, actor=actor, kind=str(kind))
        except PromoteRefusedError as exc:
            raise CommandRejectedError(str(exc)) from exc
        if isinstance(ready, Decision):
            return ready
        promoted, found = ready
        return enter_stage(promoted, policy, now, target[0], target[1], said, evidence=found, actor=actor, gate=False)
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
                "smoke_since": None,
                "predictions": None,
                "consecutive_errors": 0,
                "endpoint_busy_since": None,
                "last_action_error": "",
                "scaling": None,  # a scale ordered before the abort is not this attempt's
                "step": -1,
            }
        )
        return make_decision(
            rollout,
            retried,
            now,
            said,
            events=[event(retried, "Retried", said)],
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
    actor: str | None = None,
    note: str = "",
) -> Decision:
    """A new rollout for `model`: find blue (the deployment holding all live traffic), name green.
    `actor`: the person who started it by hand (the audit trail's actor), else the trigger."""
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
    serving = endpoint.deployment(blue)
    if policy.mirror is not None and serving is not None and serving.compute_type == "Kubernetes":
        # Learn, "Perform safe rollout of new deployments for real-time inference": mirrored traffic
        # is not supported for Kubernetes online endpoints. Azure would refuse every mirror order.
        raise StartRejectedError(
            f"endpoint {endpoint.name} is a Kubernetes online endpoint, which cannot mirror traffic, and "
            "this target's policy starts with a mirror stage; give the target a policy with `mirror: null` "
            "to roll out through canary steps only"
        )
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
        region=endpoint.location,
    )
    started = f"started by {actor}" if actor is not None else "registered"
    why = f"{model.label} {started}; green {green} will be a copy of " + (blue or "the policy template")
    size = first_size(rollout, policy, endpoint)
    if size is not None:
        why += f" on {size} instances (sized to its first stage)"
    if note:
        why += f" ({note})"
    create = CreateDeployment(
        name=green,
        model=model,
        copy_from=blue,
        tags={ROLE_TAG: ROLE_CANDIDATE, ROLLOUT_TAG: rollout.id},
        instance_count=size,  # None: blue's count (sizing off)
    )
    return Decision(
        rollout=rollout.model_copy(update={"decisions": 1, "last_reason": why}),
        actions=(create,),
        events=(event(rollout, "Started", why),),
        reason=why,
        actor=actor if actor is not None else trigger,
        record=True,
    )


def annotate(rollout: Rollout, now: datetime, reason: str, actor: str) -> Decision:
    """A note in the audit trail (an alert resolved, a rejected alert) that changes nothing else."""
    return make_decision(rollout, rollout, now, reason, actor=actor, force_record=True)


def supersede(
    rollout: Rollout,
    policy: RolloutPolicy,
    newer: ModelRef,
    now: datetime,
    *,
    blue_gone: bool = False,
    green_serves: bool = False,
) -> Decision:
    """A newer version arrived: traffic back to blue first, then this rollout ends Superseded.
    With no blue to go back to (gone, or a first deployment) it ends at once, leaving the split as
    it is for the newer rollout, which starts from what serves now; a green that serves users is
    then the newer rollout's blue, so it is neither tagged as rolled back nor deleted from here."""
    why = f"superseded by {newer.label}"
    if not blue_gone:
        return begin_rollback(rollout, now, why, finish_as=P.SUPERSEDED)
    gone = f"blue {rollout.blue} is gone" if rollout.blue else "there is no blue"
    ending = rollout.model_copy(update={"phase": P.ROLLING_BACK, "finish_as": P.SUPERSEDED})
    ended = finish(ending, policy, now, P.SUPERSEDED, f"{why}; {gone}, traffic left as found")
    if not green_serves:
        return ended
    kept = ended.rollout.model_copy(update={"cleanup": rollout.cleanup})
    actions = tuple(a for a in ended.actions if not (isinstance(a, TagDeployment) and a.name == rollout.green))
    return ended.model_copy(update={"rollout": kept, "actions": actions})


def unrecorded(rollout: Rollout, now: datetime) -> Decision:
    """Nothing to record or do (a note past its bound): the rollout as it is."""
    return Decision(rollout=rollout, reason=rollout.last_reason, record=False)


# What a person may still do with a rollout whose stored policy cannot be read.
SAFE_WITHOUT_POLICY = frozenset({CommandKind.PAUSE, CommandKind.ROLLBACK, CommandKind.ABORT})
