"""Azure's request limits, so the emulator refuses with 429 what Azure would (opt-in:
`Emulator.rate_limits = RateLimits()`; off by default so tests about other things are not paced).

- ARM, per subscription (one principal): token buckets, reads 250 (refill 25/s), writes 200
  (10/s), deletes 200 (10/s); a request with no token left answers 429 `TooManyRequests` with
  `Retry-After` in seconds (learn.microsoft.com/azure/azure-resource-manager/management/
  request-limits-and-throttling: "Regional throttling and token bucket algorithm", "Error code").
  Operation polls are ARM reads too (GET on the subscription's operation status).
- Log Analytics, per user: at most 200 queries in 30 seconds; over that, 429 with `Retry-After`
  (Azure Monitor service limits, "User query throttling"; includes/azure-monitor-limits-log-
  queries.md). The limit of 5 concurrent queries is a queue, not a refusal ("Any other query is
  added to a queue"; 429 after 3 minutes queued or beyond 200 queued): the emulator answers one
  request at a time, so the queueing is the benchmark's to model (bench/scale.py).
- metrics:getBatch: not limited here (its limits are not in the documents cited above).

Every 429 is counted in `refused` by service, so a benchmark can report them.
"""

from __future__ import annotations

import math
import re
from collections import Counter, deque
from dataclasses import dataclass, field
from datetime import datetime
from urllib.parse import urlsplit

from emulator.responses import Response, _error

_SUBSCRIPTION = re.compile(r"^/subscriptions/([^/]+)", re.I)


@dataclass
class _Bucket:
    capacity: float
    rate: float
    tokens: float = -1.0
    at: datetime | None = None

    def take(self, now: datetime) -> float:
        """0 if a token was taken, else the seconds until one is there (nothing taken)."""
        if self.tokens < 0:
            self.tokens = self.capacity
        if self.at is not None and now > self.at:
            self.tokens = min(self.capacity, self.tokens + (now - self.at).total_seconds() * self.rate)
        self.at = now if self.at is None else max(self.at, now)
        if self.tokens >= 1:
            self.tokens -= 1
            return 0.0
        return (1 - self.tokens) / self.rate


@dataclass
class RateLimits:
    arm_reads: tuple[float, float] = (250.0, 25.0)
    arm_writes: tuple[float, float] = (200.0, 10.0)
    arm_deletes: tuple[float, float] = (200.0, 10.0)
    logs_per_window: int = 200
    logs_window_seconds: float = 30.0
    refused: Counter[str] = field(default_factory=Counter)
    _buckets: dict[tuple[str, str], _Bucket] = field(default_factory=dict)
    _logs: deque[datetime] = field(default_factory=deque)

    def check(self, method: str, url: str, now: datetime) -> Response | None:
        parts = urlsplit(url)
        host = (parts.hostname or "").lower()
        if host == "management.azure.com" or host.endswith(".management.azure.com"):
            m = _SUBSCRIPTION.match(parts.path)
            if m is None:
                return None
            kind = {"GET": "read", "HEAD": "read", "DELETE": "delete"}.get(method.upper(), "write")
            size, rate = {"read": self.arm_reads, "write": self.arm_writes, "delete": self.arm_deletes}[kind]
            bucket = self._buckets.setdefault((m[1].lower(), kind), _Bucket(size, rate))
            wait = bucket.take(now)
            if wait > 0:
                self.refused[f"arm-{kind}"] += 1
                return _throttled(wait, f"Number of '{kind}' requests for subscription '{m[1]}' exceeded the limit")
            return None
        if host in ("api.loganalytics.io", "api.loganalytics.azure.com"):
            horizon = self.logs_window_seconds
            while self._logs and (now - self._logs[0]).total_seconds() >= horizon:
                self._logs.popleft()
            if len(self._logs) >= self.logs_per_window:
                self.refused["logs"] += 1
                wait = horizon - (now - self._logs[0]).total_seconds()
                return _throttled(wait, "Too many requests: the user's query rate limit was exceeded")
            self._logs.append(now)
        return None


def _throttled(wait: float, message: str) -> Response:
    return _error(429, "TooManyRequests", message, {"Retry-After": str(max(1, math.ceil(wait)))})
