"""A simulated clock shared by the emulator, the app and the tests, so hours run in seconds."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta


class SimClock:
    def __init__(self, start: datetime | None = None) -> None:
        self._now = start or datetime(2026, 11, 1, 9, 0, tzinfo=UTC)
        self._lock = threading.Lock()

    def now(self) -> datetime:
        with self._lock:
            return self._now

    def advance(self, delta: timedelta) -> datetime:
        if delta < timedelta(0):
            raise ValueError("the simulated clock never goes back")
        with self._lock:
            self._now += delta
            return self._now

    def sleep(self, seconds: float) -> None:
        """A wait inside the app (a request waiting for Azure) passes on the simulated clock."""
        self.advance(timedelta(seconds=max(0.0, seconds)))
