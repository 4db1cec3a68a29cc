"""EventPublisher: the core's domain events as CloudEvents to an Event Grid custom topic.

Uses the public sync EventGridPublisherClient as is. (In azure-eventgrid 4.22.1 it drops keyword
options such as `transport=` for basic topics, so tests publish over real HTTP to a local sink.)
Publishing is best effort after the state is saved: the audit trail in Table storage is the record;
a failed publish is logged with the events' types and ids, never raised into the rollout.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

from shared.rollout.actions import DomainEvent

log = logging.getLogger("safe_rollout.events")
EVENT_TYPE_PREFIX = "SafeRollout."
SOURCE = "/safe-rollout"


class NoopPublisher:
    """When no topic is configured: events still reach the logs and the audit trail."""

    def publish(self, events: Sequence[DomainEvent]) -> None:
        for event in events:
            log.info(
                "event %s%s for %s (not published: no topic configured)",
                EVENT_TYPE_PREFIX,
                event.type,
                event.rollout_id,
            )


class EventGridPublisher:
    def __init__(self, endpoint: str, credential: Any) -> None:
        from azure.eventgrid import EventGridPublisherClient

        self._client = EventGridPublisherClient(endpoint, credential)
        self.failures = 0

    def publish(self, events: Sequence[DomainEvent]) -> None:
        if not events:
            return
        from azure.core.exceptions import AzureError
        from azure.core.messaging import CloudEvent

        cloud_events = [
            CloudEvent(
                source=SOURCE,
                type=f"{EVENT_TYPE_PREFIX}{e.type}",
                subject=e.subject,
                data={"rolloutId": e.rollout_id, **e.data},
            )
            for e in events
        ]
        try:
            self._client.send(cloud_events)
        except (AzureError, OSError) as exc:
            self.failures += 1
            log.warning(
                "publishing %d event(s) failed (%s): %s",
                len(events),
                type(exc).__name__,
                ", ".join(f"{e.type}/{e.rollout_id}" for e in events),
            )
