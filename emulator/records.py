"""The emulator's records: faults to inject, long-running operations, stored resources, published events."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any


@dataclass
class Fault:
    """Answer the next `times` requests matching `operation` with `status` (and Retry-After)."""

    # e.g. "endpoint.get", "endpoint.put", "endpoint.delete", "deployment.put", "deployment.delete",
    # "metrics", "logs", "eventgrid"
    operation: str
    status: int = 503
    times: int = 1
    retry_after: int | None = None
    partial: bool = False  # logs: a partial result instead of an error


@dataclass
class Operation:
    """A long-running ARM operation (Azure ML's `mfeOperationsStatus`), finished at `done_at` on
    the simulated clock. An endpoint update carries the endpoint as it will be once it lands
    (`pending`): Azure shows the old traffic until then."""

    id: str
    kind: str  # "create", "update", "delete"
    resource: str  # lower-cased ARM id of the resource
    done_at: datetime
    outcome: str = "Succeeded"  # or Failed / Canceled / Hung (never finishes) / any other state
    started: datetime | None = None
    pending: dict[str, Any] | None = None  # endpoint create/update: the body that lands at the end
    finished: bool = False


@dataclass
class Resource:
    body: dict[str, Any]
    created: datetime


@dataclass
class Published:
    topic: str
    events: list[dict[str, Any]]
