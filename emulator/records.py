"""The emulator's records: faults to inject, long-running operations, stored resources, published events."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any


@dataclass
class Fault:
    """Answer the next `times` requests matching `operation` with `status` (and Retry-After)."""

    operation: str  # e.g. "endpoint.put", "deployment.put", "deployment.delete", "metrics", "logs"
    status: int = 503
    times: int = 1
    retry_after: int | None = None
    partial: bool = False  # logs: a partial result instead of an error


@dataclass
class Operation:
    id: str
    kind: str  # "create", "update", "delete"
    resource: str  # lower-cased ARM id of the resource
    done_at: datetime
    outcome: str = "Succeeded"  # or Failed / Canceled


@dataclass
class Resource:
    body: dict[str, Any]
    created: datetime


@dataclass
class Published:
    topic: str
    events: list[dict[str, Any]]
