"""Green's instance count per stage and blue's size after success: the sizing rules of the policy's
`capacity:` section (see capacity.py for how they are used). Pure functions of data."""

from __future__ import annotations

import math
from collections.abc import Sequence

from shared.rollout.actions import Action, ScaleDeployment
from shared.rollout.analysis import CheckResult
from shared.rollout.capacity_policy import CapacityPolicy
from shared.rollout.model import Rollout, RolloutPhase
from shared.rollout.observation import EndpointState
from shared.rollout.policy import RolloutPolicy
from shared.rollout.stages import next_stage

P = RolloutPhase


def stage_share(policy: RolloutPolicy, phase: RolloutPhase, step: int) -> int:
    """The percent of the endpoint's load green serves in a stage (mirrored copies included)."""
    if phase == P.MIRRORING and policy.mirror:
        return policy.mirror.percent
    if phase == P.CANARY and 0 <= step < len(policy.steps):
        return policy.steps[step].percent
    return 100 if phase in (P.BAKING, P.SUCCEEDED) else 0


def green_size(
    capacity: CapacityPolicy,
    policy: RolloutPolicy,
    phase: RolloutPhase,
    step: int,
    blue_instances: int,
    autoscale: tuple[int, int] | None = None,
) -> int:
    """Green's instance count for a stage: absolute or proportional (rounded up, with the floor),
    bounded by blue's count, then by the autoscale limits."""
    if capacity.sizing == "absolute" and capacity.sizes is not None:
        sizes = capacity.sizes
        wanted: int | None
        if phase == P.MIRRORING:
            wanted = sizes.mirror
        elif phase == P.CANARY and 0 <= step < len(sizes.steps):
            wanted = sizes.steps[step]
        else:
            wanted = sizes.bake
        n = wanted if wanted is not None else blue_instances
    else:
        share = stage_share(policy, phase, step)
        # Integer arithmetic: 10% of 10 instances is exactly 1, never 1.0000000001 rounded up to 2.
        n = max(capacity.min_instances, -(-blue_instances * share // 100))
    n = max(1, min(n, blue_instances))
    if autoscale is not None:
        low, high = autoscale
        n = min(max(n, low), high)
    return n


def first_size(rollout: Rollout, policy: RolloutPolicy, endpoint: EndpointState) -> int | None:
    """Green's count at creation: the first stage's size; None (copy blue's) when sizing is off or
    blue's count is unknown."""
    blue = endpoint.deployment(rollout.blue)
    if policy.capacity is None or blue is None or blue.instance_count is None:
        return None
    nxt = next_stage(rollout, policy, P.PENDING, -1)
    if nxt is None:
        return None
    return green_size(policy.capacity, policy, nxt[0], nxt[1], blue.instance_count, blue.autoscale)


def shrink_old_blue(rollout: Rollout, policy: RolloutPolicy) -> list[Action]:
    """After success: blue, kept as OLD_PROD for an instant undo, shrinks to the policy's size."""
    cap = policy.capacity
    if cap is None or cap.old_blue_instances is None or not rollout.blue or rollout.blue_instances is None:
        return []
    if rollout.blue_instances <= cap.old_blue_instances:
        return []
    return [ScaleDeployment(name=rollout.blue, instances=cap.old_blue_instances)]


def load_ratio(evidence: Sequence[CheckResult]) -> float | None:
    """Green's CPU per instance over blue's, from this window's capacity check, if it measured one:
    its estimate where the check proved green above blue (lower bound above 0), else 1 (no proven
    need for more instances: noise is never rounded up to a whole instance)."""
    for r in evidence:
        if r.check == "capacity":
            value, lower = r.evidence.get("cpu_ratio"), r.evidence.get("lower")
            if isinstance(value, int | float) and math.isfinite(value):
                proven = isinstance(lower, int | float) and lower > 0
                return float(value) if proven else 1.0
    return None
