"""Rollout status, its phases, and the traffic split Azure accepts.

Pure data: no I/O, no clock, no Azure. pydantic gives frozen records with validation and a JSON
round-trip (the store keeps them as JSON strings in Table storage).
"""

from __future__ import annotations

import re
from datetime import datetime
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, ConfigDict, field_validator, model_validator

from shared.rollout.tally import PredictionTally


class Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class RolloutPhase(StrEnum):
    PENDING = "Pending"  # green is being created (and smoke-tested)
    MIRRORING = "Mirroring"  # green gets mirrored copies; no user sees its answers
    CANARY = "Canary"  # green serves policy.steps[step].percent of users
    BAKING = "Baking"  # green at 100%, blue kept at 0 for an instant undo
    AWAITING_APPROVAL = "AwaitingApproval"  # a gate before the next stage
    PAUSED = "Paused"  # held by a person, by drift, by missing data or provider errors
    ABORTED = "Aborted"  # traffic back to blue, green kept; `retry` restarts the analysis
    ROLLING_BACK = "RollingBack"  # traffic ordered back to blue; lands in `finish_as` once confirmed
    SUCCEEDED = "Succeeded"
    ROLLED_BACK = "RolledBack"
    FAILED = "Failed"
    SUPERSEDED = "Superseded"

    @property
    def terminal(self) -> bool:
        return self in TERMINAL_PHASES

    @property
    def active(self) -> bool:
        return self not in TERMINAL_PHASES


TERMINAL_PHASES = frozenset(
    {RolloutPhase.SUCCEEDED, RolloutPhase.ROLLED_BACK, RolloutPhase.FAILED, RolloutPhase.SUPERSEDED}
)
# Phases in which green may be serving users or receiving mirrored copies under analysis.
EXPOSED_PHASES = frozenset({RolloutPhase.MIRRORING, RolloutPhase.CANARY, RolloutPhase.BAKING})


class InvalidSplitError(ValueError):
    """A traffic split that Azure ML would refuse."""


class TrafficSplit(Frozen):
    """An endpoint's live and mirrored traffic, holding only what Azure accepts.

    Azure's rules (AZURE-FACTS.md): live sums to 0 or 100; mirror sums to at most 50 and targets
    one deployment; a deployment is live or mirrored, never both. Names are lower-cased and zero
    entries dropped, as azure-ai-ml does before the PUT, so two splits compare equal exactly when
    Azure would hold the same traffic.
    """

    live: dict[str, int] = {}
    mirror: dict[str, int] = {}

    @field_validator("live", "mirror", mode="before")
    @classmethod
    def _normalise(cls, value: Any) -> Any:
        if value is None:
            return {}
        if not isinstance(value, dict):
            return value
        out: dict[str, Any] = {}
        for name, pct in value.items():
            if isinstance(pct, bool) or not isinstance(pct, int):
                raise InvalidSplitError(f"traffic for {name!r} must be a whole number, got {pct!r}")
            if not 0 <= pct <= 100:
                raise InvalidSplitError(f"traffic for {name!r} must be 0..100, got {pct}")
            if pct:
                key = str(name).lower()
                out[key] = out.get(key, 0) + pct
        return out

    @model_validator(mode="after")
    def _azure_rules(self) -> TrafficSplit:
        live_sum = sum(self.live.values())
        if live_sum not in (0, 100):
            raise InvalidSplitError(f"live traffic must sum to 0 or 100, got {live_sum} ({self.live})")
        mirror_sum = sum(self.mirror.values())
        if mirror_sum > 50:
            raise InvalidSplitError(f"mirrored traffic must be at most 50%, got {mirror_sum}")
        if len(self.mirror) > 1:
            raise InvalidSplitError(f"mirror traffic targets one deployment, got {sorted(self.mirror)}")
        both = set(self.live) & set(self.mirror)
        if both:
            raise InvalidSplitError(f"a deployment is live or mirrored, never both: {sorted(both)}")
        return self

    def live_of(self, deployment: str | None) -> int:
        return self.live.get(deployment.lower(), 0) if deployment else 0

    def mirror_of(self, deployment: str | None) -> int:
        return self.mirror.get(deployment.lower(), 0) if deployment else 0

    def describe(self) -> str:
        live = ", ".join(f"{n} {p}%" for n, p in sorted(self.live.items())) or "none"
        mirror = ", ".join(f"{n} {p}%" for n, p in sorted(self.mirror.items()))
        return f"live: {live}" + (f"; mirror: {mirror}" if mirror else "")


_WORKSPACE_ID = re.compile(
    r"^/subscriptions/(?P<sub>[^/]+)/resourceGroups/(?P<rg>[^/]+)"
    r"/providers/Microsoft\.MachineLearningServices/workspaces/(?P<ws>[^/]+)/?$",
    re.IGNORECASE,
)
# Azure ML endpoint and deployment names: 3-32 chars, start with a letter, letters/digits/hyphens,
# end alphanumeric.
_RESOURCE_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9-]{1,30}[A-Za-z0-9]$")


def is_valid_resource_name(name: str) -> bool:
    return bool(_RESOURCE_NAME.fullmatch(name))  # fullmatch: `$` would accept a trailing newline


class WorkspaceRef(Frozen):
    subscription_id: str
    resource_group: str
    workspace: str

    @classmethod
    def parse(cls, arm_id: str) -> WorkspaceRef:
        match = _WORKSPACE_ID.match(arm_id.strip())
        if not match:
            raise ValueError(
                "expected an Azure ML workspace id "
                "'/subscriptions/{sub}/resourceGroups/{rg}/providers/"
                f"Microsoft.MachineLearningServices/workspaces/{{ws}}', got {arm_id[:200]!r}"
            )
        return cls(subscription_id=match["sub"], resource_group=match["rg"], workspace=match["ws"])

    @property
    def arm_id(self) -> str:
        return (
            f"/subscriptions/{self.subscription_id}/resourceGroups/{self.resource_group}"
            f"/providers/Microsoft.MachineLearningServices/workspaces/{self.workspace}"
        )


class EndpointRef(Frozen):
    workspace: WorkspaceRef
    name: str

    @field_validator("name")
    @classmethod
    def _name_rules(cls, value: str) -> str:
        if not is_valid_resource_name(value):
            raise ValueError(f"not a valid online endpoint name: {value!r}")
        return value

    @property
    def arm_id(self) -> str:
        return f"{self.workspace.arm_id}/onlineEndpoints/{self.name}"

    @property
    def key(self) -> str:
        """Case-insensitive identity (ARM ids are case-insensitive; alerts send them lower-cased)."""
        return self.arm_id.lower()

    def deployment_arm_id(self, deployment: str) -> str:
        return f"{self.arm_id}/deployments/{deployment}"


class ModelRef(Frozen):
    name: str
    version: str
    # The Azure ML registry holding this version; None for a model registered in the workspace.
    registry: str | None = None

    @property
    def label(self) -> str:
        return f"{self.name}:{self.version}"


class PendingDelete(Frozen):
    """A deployment to delete once `not_before` has passed and it carries no traffic."""

    deployment: str
    not_before: datetime
    why: str


# How a refused traffic order starts when Azure answered 409 because another operation on the
# endpoint was still running: the order is repeated once the endpoint is idle, not counted as a fault.
BUSY_REFUSAL = "Azure is still applying another update to the endpoint: "


class ScaleOrder(Frozen):
    """A scale the rollout ordered and waits for (capacity.py): `deployment` to `instances`."""

    deployment: str
    instances: int
    ordered_at: datetime
    purpose: str = "step"  # "step": before a step up; "undo": blue back before traffic returns
    failures: int = 0  # provider errors counted while waiting for it (judging resets the rollout's own count)


class InstanceSpan(Frozen):
    """From `since`, `deployment` was seen with `instances` of `instance_type` (0: gone). The cost
    ledger of a rollout (cost.py)."""

    deployment: str
    instance_type: str
    instances: int
    since: datetime


class FoldedUsage(Frozen):
    """Extra instance-seconds of `deployment`'s `instance_type` from ledger spans folded away to
    keep the status document bounded (ledger.py), as cost.py counted them when folded."""

    deployment: str
    instance_type: str
    extra_seconds: float


class Baseline(Frozen):
    """Blue's figures from the last judged window in which it served, kept for the bake (where blue
    serves nothing): green at 100% is compared with them. Bounds, not raw samples, are kept, each at
    the level the comparison spends (a bound that held then still holds)."""

    start: datetime
    end: datetime
    requests: int
    errors: int
    latency_kind: str = "request"
    # Per-request mode: blue's quantile bounds (lower for a proof, upper for a regression).
    latency_ms: float | None = None
    latency_lower_ms: float | None = None
    latency_upper_ms: float | None = None
    tail_ms: float | None = None
    tail_lower_ms: float | None = None
    tail_upper_ms: float | None = None
    # Blue's minutes from every stage it served beside green, merged by minute (the newest 90):
    # (minute since the epoch, requests, errors, latency percentile, tail percentile).
    minutes: tuple[tuple[int, int, int, float | None, float | None], ...] = ()

    def _usable(self, index: int, floor: int) -> tuple[float, ...]:
        values = (m[index] for m in self.minutes if m[1] >= floor)
        return tuple(float(v) for v in values if v is not None)

    def latency_minutes(self, floor: int) -> tuple[float, ...]:
        return self._usable(3, floor)

    def tail_minutes(self, floor: int) -> tuple[float, ...]:
        return self._usable(4, floor)

    @property
    def error_minutes(self) -> tuple[tuple[int, int], ...]:
        return tuple((m[1], m[2]) for m in self.minutes if m[1] > 0)


class Rollout(Frozen):
    """The status of one rollout: everything decide() needs besides the policy snapshot."""

    id: str
    endpoint: EndpointRef
    model: ModelRef
    blue: str | None  # None: first deployment on the endpoint (absolute checks only)
    green: str
    phase: RolloutPhase
    step: int = -1  # index into policy.steps while in Canary; -1 before the first step
    created_at: datetime
    updated_at: datetime
    stage_started_at: datetime  # when the current stage began (its split confirmed, or its gate reached)
    # When Azure was seen holding the split green serves now: the judged data start here. Kept
    # through approval waits and pauses (the split does not change); None while green holds nothing.
    window_started_at: datetime | None = None
    baseline: Baseline | None = None  # blue's figures for the bake
    predictions: PredictionTally | None = None  # blue's and green's answers compared so far (predictions.py)
    # The last judged window's checks, (check, verdict, summary with the bounds), for people
    # watching; the audit trail keeps them only when a decision is recorded.
    checks: tuple[tuple[str, str, str], ...] = ()
    desired: TrafficSplit  # what the rollout last ordered
    traffic_confirmed: bool = True  # the endpoint was seen holding `desired`
    resume_to: RolloutPhase | None = None  # where Paused / Aborted go back to
    gate_to: RolloutPhase | None = None  # the stage an approval gate leads to (with `step`)
    finish_as: RolloutPhase | None = None  # where RollingBack lands once blue holds the traffic
    consecutive_errors: int = 0  # provider errors and orders not applied, in a row
    last_action_error: str = ""  # what Azure said when it last refused one of our orders
    # Since when the endpoint has been seen busy (an update in flight) while our split was not yet
    # confirmed: waiting on Azure is not an error, for a while (ENDPOINT_UPDATE_PATIENCE).
    endpoint_busy_since: datetime | None = None
    region: str = ""  # the endpoint's Azure region, seen at the start (metrics are regional)
    rollback_reason: str = ""  # why the rollback under way began: its final decision repeats it
    endpoint_missing: int = 0  # reads in a row that found no endpoint (a not-found is confirmed first)
    notes: int = 0  # audit notes that changed nothing (resolved alerts): bounded
    smoke_passed: bool | None = None
    smoke_since: datetime | None = None  # the first tick the smoke test was due and had not run
    cleanup: tuple[PendingDelete, ...] = ()
    last_reason: str = ""
    decisions: int = 0  # audit rows written so far (their sequence numbers)
    finished_at: datetime | None = None
    trigger: str = ""  # the event or actor that started it
    scaling: ScaleOrder | None = None  # a scale ordered and not yet seen done (capacity.py)
    blue_instances: int | None = None  # blue's count while it served (an undo scales it back to this)
    ledger: tuple[InstanceSpan, ...] = ()  # green's and blue's sizes over time (cost.py), the latest few
    ledger_folded: tuple[FoldedUsage, ...] = ()  # older spans' extra instance-seconds (ledger.py)
    capacity_ratio: float | None = None  # green's CPU per instance over blue's, as last measured (capacity.py)

    @property
    def due(self) -> bool:
        """Whether the timer has anything to do for it."""
        return self.phase.active or bool(self.cleanup)
