"""The rollout service's state and what every part of it shares: the store, the Azure gateway, the
metrics source, the events, the clock and the policy file (shared/service.py puts the parts together)."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Any

from shared.ports import (
    Clock,
    EndpointGateway,
    EventPublisher,
    MetricsSource,
    RolloutStore,
    StoredRollout,
)
from shared.targets import PolicyFile

log = logging.getLogger("safe_rollout")


class NotFoundError(LookupError):
    pass


class ServiceBase:
    def __init__(
        self,
        *,
        store: RolloutStore,
        gateway: EndpointGateway,
        metrics: MetricsSource,
        events: EventPublisher,
        clock: Clock,
        policies: PolicyFile | Callable[[], PolicyFile],
        max_concurrency: int = 8,
        tick_budget_seconds: float = 240.0,
        monotonic: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] | None = None,
        model_checks: Any = None,
    ) -> None:
        self.store = store
        # Scoring inputs on blue and green, and the KPI queries (shared/model_checks.py); None: off.
        self.model_checks = model_checks
        self.gateway = gateway
        self.metrics = metrics
        self.events = events
        self.clock = clock
        self._policies = policies
        self.max_concurrency = max_concurrency
        self.tick_budget_seconds = tick_budget_seconds
        self._monotonic = monotonic
        # Waits within a request (a person's or an alert's order meeting a busy endpoint). A
        # simulated clock (tests, the demo) sleeps on its own time.
        self._sleep: Callable[[float], None] = sleep or getattr(clock, "sleep", None) or time.sleep
        self._lock = threading.Lock()

    @property
    def policies(self) -> PolicyFile:
        return self._policies() if callable(self._policies) else self._policies

    def get(self, rollout_id: str) -> StoredRollout:
        stored = self.store.get(rollout_id)
        if stored is None:
            raise NotFoundError(rollout_id)
        return stored
