"""The policy's `capacity:` and `cost:` sections: green's size per stage, the capacity check, and the
cost gate. Plain data; the decisions live in capacity.py and cost.py.

Sizing is off unless the policy has a `capacity:` section: green is then created as a copy of blue,
instance count included, as before. With it, green starts at the first stage's size and is scaled
to each next stage's size before the step (Argo Rollouts' `setCanaryScale`, sized to the traffic
weight; argo-rollouts.readthedocs.io, "Canary" > "Mimicking Rolling Update" / setCanaryScale).
"""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BeforeValidator, Field, PlainSerializer, model_validator

from shared.rollout.model import Frozen


def _parse(value: Any) -> Any:
    from shared.rollout.policy import _parse_duration  # noqa: PLC0415 - policy.py imports this module

    return _parse_duration(value)


def _check(value: timedelta) -> timedelta:
    from shared.rollout.policy import _check_duration  # noqa: PLC0415 - policy.py imports this module

    return _check_duration(value)


def _show(value: timedelta) -> str:
    from shared.rollout.policy import format_duration  # noqa: PLC0415 - policy.py imports this module

    return format_duration(value)


Duration = Annotated[
    timedelta, BeforeValidator(_parse), AfterValidator(_check), PlainSerializer(_show, return_type=str)
]
Instances = Annotated[int, Field(strict=True, ge=1, le=1000)]
Relative = Annotated[float, Field(strict=True, gt=0, le=10)]


class StageSizes(Frozen):
    """Absolute instance counts per stage (each bounded by blue's count and the autoscale limits)."""

    mirror: Instances | None = None
    steps: tuple[Instances, ...] = ()
    bake: Instances | None = None  # default: blue's count


class CapacityCheck(Frozen):
    """Green's per-instance load against blue's: CPU utilisation (compared, three-way, like the
    other checks) with requests per instance per minute, memory and 429s in the evidence."""

    enabled: Annotated[bool, Field(strict=True)] = True
    max_increase: Relative = 0.25  # green's per-instance CPU may be 25% above blue's at like load
    leave_alone: Relative | None = None  # default: half of max_increase
    # Minutes compared only where green carries at least this share of blue's load per instance
    # (a green idling on many instances says nothing about its capacity).
    min_load_ratio: Annotated[float, Field(strict=True, gt=0, le=1)] = 0.5

    @model_validator(mode="after")
    def _margins(self) -> CapacityCheck:
        if self.leave_alone is not None and self.leave_alone >= self.max_increase:
            raise ValueError(
                f"capacity.check.leave_alone ({self.leave_alone:g}) must be smaller than "
                f"capacity.check.max_increase ({self.max_increase:g})"
            )
        return self

    @property
    def leave(self) -> float:
        return self.leave_alone if self.leave_alone is not None else self.max_increase / 2


class CapacityPolicy(Frozen):
    sizing: Literal["proportional", "absolute"] = "proportional"
    min_instances: Instances = 1  # proportional: the floor
    sizes: StageSizes | None = None  # absolute: the count per stage
    # How long a scale may take before each further tick counts as a provider error (a scale-out
    # provisions new VMs: minutes, like a deployment's creation).
    scale_timeout: Duration = timedelta(minutes=20)
    # After success, blue (kept as OLD_PROD for an undo) shrinks to this many instances until it is
    # deleted; None keeps its size (Argo Rollouts' dynamicStableScale shrinks it to the traffic).
    old_blue_instances: Instances | None = 1
    check: CapacityCheck = CapacityCheck()

    @model_validator(mode="after")
    def _sizes(self) -> CapacityPolicy:
        if self.sizing == "absolute" and self.sizes is None:
            raise ValueError("capacity.sizes: `sizing: absolute` needs the instance count per stage")
        if self.sizing == "proportional" and self.sizes is not None:
            raise ValueError("capacity.sizes is only read with `sizing: absolute`")
        return self


class CostPolicy(Frozen):
    """Prices per instance type (USD an hour, pay-as-you-go), from the price table beside the policy
    file (prices.csv) unless given here; and the gate before green gets all users."""

    prices: dict[str, Annotated[float, Field(strict=False, ge=0)]] = {}
    currency: str = "USD"
    # The gate: green's projected monthly cost at full traffic above blue's by more than this share.
    max_increase: Annotated[float, Field(strict=True, ge=0, le=100)] | None = 0.1
    action: Literal["approval", "refuse"] = "approval"
