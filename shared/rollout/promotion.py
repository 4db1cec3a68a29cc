"""A person's promote (PROMOTE / PROMOTE_FULL) under the policy's `capacity:` and `cost:` sections:
the same scale-before-step and cost gate the machine applies to its own steps (capacity.step_up),
so a click never puts users on a green sized for a smaller share. Pure: no clock, no Azure.

- Green below the target stage's size: the command does not step; it orders the scale (and notes
  it in `Rollout.scaling`, as step_up does) and says to promote again once it is done.
- Before the bake (full traffic) the cost gate is applied: with `action: refuse` an exceeded gate
  refuses the command with the figures; with `action: approval` the person's promote is that
  approval, and the decision records the figures.
"""

from __future__ import annotations

from datetime import datetime

from shared.rollout.actions import Decision, ScaleDeployment
from shared.rollout.analysis import CheckResult, Verdict
from shared.rollout.cost import gate
from shared.rollout.model import Rollout, RolloutPhase, ScaleOrder
from shared.rollout.observation import EndpointState
from shared.rollout.policy import RolloutPolicy
from shared.rollout.sizing import green_size
from shared.rollout.stages import stage_label
from shared.rollout.transitions import make_decision

P = RolloutPhase


class PromoteRefusedError(ValueError):
    """The promote cannot go ahead (commands.py turns it into a CommandRejectedError)."""


def before_promote(
    rollout: Rollout,
    policy: RolloutPolicy,
    endpoint: EndpointState | None,
    target: tuple[RolloutPhase, int],
    now: datetime,
    *,
    said: str,
    actor: str,
    kind: str,
) -> Decision | tuple[Rollout, tuple[CheckResult, ...]]:
    """A Decision that scales green instead of stepping; else the rollout to step from and the
    evidence to record with the step. Raises PromoteRefusedError with the reason."""
    phase, step = target
    label = stage_label(policy, phase, step)
    if policy.capacity is not None and rollout.blue:
        if endpoint is None:
            raise PromoteRefusedError(
                f"{kind} refused: the endpoint was not read, so green's size before {label} cannot be checked"
            )
        green, blue = endpoint.deployment(rollout.green), endpoint.deployment(rollout.blue)
        base = rollout.blue_instances or (blue.instance_count if blue is not None else None)
        if green is None or green.instance_count is None or base is None:
            raise PromoteRefusedError(
                f"{kind} refused: the instance counts of green {rollout.green} and blue {rollout.blue} are "
                f"unknown, so green's size before {label} cannot be checked"
            )
        autoscale = green.autoscale or (blue.autoscale if blue is not None else None)
        size = green_size(policy.capacity, policy, phase, step, base, autoscale)
        if green.instance_count < size:
            ordered = rollout.model_copy(
                update={
                    "scaling": ScaleOrder(deployment=rollout.green.lower(), instances=size, ordered_at=now),
                    "last_action_error": "",
                }
            )
            why = (
                f"{said}; green is being scaled from {green.instance_count} to {size} instances before {label}; "
                "promote again once it is done"
            )
            scale = ScaleDeployment(name=rollout.green, instances=size)
            return make_decision(rollout, ordered, now, why, actions=[scale], actor=actor, force_record=True)
        if rollout.scaling is not None:
            rollout = rollout.model_copy(update={"scaling": None, "last_action_error": ""})  # done
    if phase != P.BAKING or policy.cost is None:
        return rollout, ()
    finding = gate(rollout, policy, now, rollout.capacity_ratio)
    if finding is None or finding.verdict == Verdict.PASS:
        return rollout, (finding,) if finding is not None else ()
    if policy.cost.action == "refuse":
        raise PromoteRefusedError(f"{kind} refused by the cost gate before {label}: {finding.summary}")
    approved = finding.model_copy(update={"summary": f"{finding.summary}; approved by {actor}'s {kind}"})
    return rollout, (approved,)
