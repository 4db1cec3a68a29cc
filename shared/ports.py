"""The shell's view of the outside world: one small Protocol per kind of dependency.

Adapters in shared/adapters/ implement these over the Azure SDKs; tests use in-memory fakes or the
emulator. The core never sees any of them.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

from shared.rollout.actions import CreateDeployment, DomainEvent
from shared.rollout.analysis import CheckResult, WindowMetrics
from shared.rollout.model import EndpointRef, Frozen, Rollout, RolloutPhase, TrafficSplit
from shared.rollout.observation import EndpointState, SmokeResult
from shared.rollout.policy import RolloutPolicy


class ProviderError(Exception):
    """Azure answered with an error or could not be reached; the tick can be retried."""


class ConflictError(Exception):
    """Someone else changed the rollout first (ETag), or the row already exists."""


class AlreadyExistsError(ConflictError):
    """A rollout for this model version exists, or another rollout holds the endpoint."""


class OperationInProgressError(ProviderError):
    """Azure refused a write because another operation on the resource is still running (HTTP 409):
    try again on a later tick; not a fault of ours."""


class ThrottledError(OperationInProgressError):
    """Azure answered 429 even after the SDK honoured `Retry-After`: the rollout is left for a later
    tick (never decided on, never counted as an error in a row). A traffic order refused so is
    ordered again like one refused while Azure is busy. See shared/adapters/throttle.py."""


class EndpointBusyError(AlreadyExistsError):
    """Another rollout holds the endpoint's lock (not a duplicate of this one)."""


class Clock(Protocol):
    def now(self) -> datetime: ...


class EndpointGateway(Protocol):
    def read_endpoint(self, endpoint: EndpointRef) -> EndpointState | None:
        """The endpoint's traffic and deployments; None if it does not exist."""
        ...

    def create_deployment(self, endpoint: EndpointRef, action: CreateDeployment) -> None:
        """Start creating green (returns once Azure accepted it; never waits for provisioning)."""
        ...

    def set_traffic(self, endpoint: EndpointRef, split: TrafficSplit) -> None:
        """Start changing the endpoint's split (GET, mutate, PUT) and return once Azure accepted the
        update; never waits for it to finish. A later read confirms it (the endpoint holds the split
        and its provisioning state is Succeeded). OperationInProgressError on a 409."""
        ...

    def tag_deployment(self, endpoint: EndpointRef, deployment: str, tags: dict[str, str]) -> None: ...

    def scale_deployment(self, endpoint: EndpointRef, deployment: str, instances: int) -> None:
        """Start changing a deployment's instance count and return once Azure accepted it; never
        waits for it. A later read confirms it (the count shown and provisioning Succeeded).
        OperationInProgressError on a 409; ProviderError with Azure's reason (quota, ...) otherwise."""
        ...

    def delete_deployment(self, endpoint: EndpointRef, deployment: str) -> None:
        """Start deleting; a deployment that is already gone is not an error."""
        ...

    def smoke_test(self, endpoint: EndpointRef, deployment: str, requests: Sequence[dict[str, Any]]) -> SmokeResult: ...


@dataclass(frozen=True)
class MetricsQuery:
    endpoint: EndpointRef
    blue: str | None
    green: str
    start: datetime
    end: datetime
    error_codes: tuple[str, ...]
    percentile: float
    region: str = ""  # the endpoint's Azure region; metrics:getBatch is regional and per subscription
    tail_percentile: float | None = None  # the tail check's percentile, read per minute too
    blue_resources: bool = False  # read blue's CPU and memory too (the capacity check compares them)


@dataclass(frozen=True)
class Timeline:
    """Per-minute series of one rollout, for reports; None where a minute had no data."""

    minutes: list[datetime]
    percentile: float
    blue_latency_ms: list[float | None]
    green_latency_ms: list[float | None]
    blue_error_rate: list[float | None]
    green_error_rate: list[float | None]


class MetricsSource(Protocol):
    def fetch(self, queries: Sequence[MetricsQuery]) -> list[WindowMetrics | ProviderError]:
        """One result per query, in order; failures come back as values, never raised."""
        ...

    def timeline(self, query: MetricsQuery) -> Timeline | ProviderError:
        """Per-minute latency and error rate of blue and green over the query's span."""
        ...


class EventPublisher(Protocol):
    def publish(self, events: Sequence[DomainEvent]) -> None: ...


class DecisionRecord(Frozen):
    """One row of a rollout's audit trail."""

    seq: int
    at: datetime
    actor: str
    from_phase: RolloutPhase
    to_phase: RolloutPhase
    reason: str
    traffic: TrafficSplit
    actions: tuple[str, ...] = ()
    events: tuple[str, ...] = ()
    evidence: tuple[CheckResult, ...] = ()


@dataclass(frozen=True)
class StoredRollout:
    rollout: Rollout
    policy: RolloutPolicy
    etag: str
    # The stored policy snapshot could not be read (written by an older version, or holding a value
    # no longer accepted): `policy` is then the defaults, used only to finish safely, and the
    # rollout is isolated (paused for a person) instead of stopping every tick.
    policy_error: str | None = None


class RolloutStore(Protocol):
    def create(
        self,
        rollout: Rollout,
        policy: RolloutPolicy,
        decision: DecisionRecord,
        *,
        replacing: tuple[StoredRollout, Rollout, DecisionRecord] | None = None,
    ) -> StoredRollout:
        """Insert a rollout and take the endpoint's lock, in one transaction.

        AlreadyExistsError if this rollout exists or another holds the lock (unless `replacing`
        names the lock holder, whose new status is saved in the same transaction).
        """
        ...

    def save(
        self,
        stored: StoredRollout,
        rollout: Rollout,
        decision: DecisionRecord | None,
        *,
        markers: Sequence[str] = (),
    ) -> StoredRollout:
        """Update the status if the ETag still matches, append the decision, record idempotency
        markers, and release the lock when the rollout ends: all or nothing (ConflictError)."""
        ...

    def get(self, rollout_id: str) -> StoredRollout | None: ...

    def active_for(self, endpoint: EndpointRef) -> StoredRollout | None: ...

    def find(
        self,
        *,
        endpoint: EndpointRef | None = None,
        phase: RolloutPhase | None = None,
        due_only: bool = False,
    ) -> list[StoredRollout]: ...

    def decisions(self, rollout_id: str) -> list[DecisionRecord]: ...

    def has_marker(self, endpoint: EndpointRef, marker: str) -> bool: ...
