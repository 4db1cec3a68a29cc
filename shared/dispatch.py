"""The dispatcher's decisions, pure: which due rollouts go together in one work item, and the work
item's message (schema, validation). No Azure, no clock.

A work item holds rollouts of one subscription and one region: `metrics:getBatch` takes resource
ids of one subscription and region per call (REST spec metricBatch.json, 2024-02-01; see
shared/adapters/monitor.py), so a batch so grouped is read with one call per metric group, and its
traffic-log rows with one Log Analytics query. Batches hold at most `batch_size` rollouts (default
25: 50 deployments, the most resource ids one getBatch call takes).

A message is at most 64 KiB (Azure Queue storage: "A queue message can be up to 64 KB in size",
learn.microsoft.com/azure/storage/queues/storage-queues-introduction); a batch of 50 rollout ids
is about 2.5 KB of JSON, 3.4 KB once base64-encoded.
"""

from __future__ import annotations

import json
import re
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from itertools import zip_longest
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

DEFAULT_BATCH_SIZE = 25
MAX_BATCH_SIZE = 50
MAX_MESSAGE_BYTES = 48 * 1024  # below the queue's 64 KiB once base64-encoded (4/3)
# A message older than this is acknowledged without judging: every later tick dispatched its
# rollouts again, so nothing is lost, and a backlog never judges on stale orders.
STALE_AFTER = timedelta(minutes=10)
_ROLLOUT_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$")


class BadMessageError(ValueError):
    """A queue message that is not a work item; the text says what is wrong (never the payload)."""


class WorkItem(BaseModel):
    """One queue message: judge these rollouts (one subscription and region) for this tick."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    v: Literal[1] = 1
    tick: datetime
    subscription: str = Field(min_length=1, max_length=64)
    region: str = Field(max_length=64)
    batch: int = Field(ge=0)  # its position in the tick (for the logs)
    rollouts: tuple[str, ...] = Field(min_length=1, max_length=MAX_BATCH_SIZE)

    @field_validator("tick")
    @classmethod
    def _aware(cls, value: datetime) -> datetime:
        if value.tzinfo is None:
            raise ValueError("tick must carry a time zone (UTC)")
        return value

    @field_validator("rollouts")
    @classmethod
    def _ids(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        for rid in value:
            if not _ROLLOUT_ID.match(rid):
                raise ValueError(f"not a rollout id: {rid[:64]!r}")
        if len(set(value)) != len(value):
            raise ValueError("a rollout appears twice")
        return value

    def to_message(self) -> str:
        text = self.model_dump_json()
        if len(text.encode()) > MAX_MESSAGE_BYTES:
            raise ValueError(f"work item too large for a queue message ({len(text)} bytes)")
        return text

    def stale(self, now: datetime) -> bool:
        return now - self.tick > STALE_AFTER


def parse_message(text: str | bytes) -> WorkItem:
    """The work item in a queue message, or BadMessageError naming what is wrong."""
    try:
        raw = text.decode() if isinstance(text, bytes) else text
        data = json.loads(raw)
    except (UnicodeDecodeError, ValueError):
        raise BadMessageError("queue message is not JSON (is the message encoding base64 on both sides?)") from None
    if not isinstance(data, dict):
        raise BadMessageError("queue message is not a JSON object")
    try:
        return WorkItem.model_validate(data)
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(str(p) for p in e['loc']) or 'message'}: {e['msg']}" for e in exc.errors())
        raise BadMessageError(f"queue message is not a work item: {problems}"[:500]) from None


@dataclass(frozen=True)
class Due:
    """What the dispatcher needs of a due rollout."""

    rollout_id: str
    subscription: str
    region: str


def plan_batches(due: Sequence[Due], tick: datetime, batch_size: int = DEFAULT_BATCH_SIZE) -> list[WorkItem]:
    """Due rollouts grouped by subscription and region (case-insensitive, as ARM ids and region
    names are), in batches of at most `batch_size`, in a stable order that alternates between the
    groups."""
    if not 1 <= batch_size <= MAX_BATCH_SIZE:
        raise ValueError(f"batch size must be between 1 and {MAX_BATCH_SIZE}")
    groups: dict[tuple[str, str], list[str]] = defaultdict(list)
    for d in due:
        groups[(d.subscription.lower(), d.region.replace(" ", "").lower())].append(d.rollout_id)
    chunks: list[list[tuple[str, str, tuple[str, ...]]]] = []
    for (subscription, region), ids in sorted(groups.items()):
        ordered = sorted(set(ids))
        chunks.append(
            [
                (subscription, region, tuple(ordered[start : start + batch_size]))
                for start in range(0, len(ordered), batch_size)
            ]
        )
    # Round robin over the groups: consecutive messages go to different subscriptions, so the
    # instances that take them at once spend different subscriptions' ARM budgets (each instance
    # paces itself to a share of each subscription's limit: shared/adapters/throttle.py). Each round
    # starts one group later, so instances taking every n-th message do not all get one group.
    items: list[WorkItem] = []
    for n, layer in enumerate(zip_longest(*chunks)):
        shift = n % len(layer)
        for chunk in (*layer[shift:], *layer[:shift]):
            if chunk is not None:
                subscription, region, rollouts = chunk
                items.append(
                    WorkItem(tick=tick, subscription=subscription, region=region, batch=len(items), rollouts=rollouts)
                )
    return items
