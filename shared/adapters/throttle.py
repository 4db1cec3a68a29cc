"""Staying within Azure Resource Manager's request limits, and what a 429 means to a tick.

Facts (docs/AZURE-FACTS-USED.md, "Scale-out (issue 15)"):
- ARM throttles per subscription, per principal and per operation type with token buckets, per
  region since 2024: reads bucket 250, refill 25/s; writes 200, 10/s; deletes 200, 10/s
  (learn.microsoft.com/azure/azure-resource-manager/management/request-limits-and-throttling).
  A throttled request answers 429 with `Retry-After`.
- azure-core's RetryPolicy already retries a 429 (429 is in its retry codes) and, when the answer
  carries `Retry-After` (or `retry-after-ms` / `x-ms-retry-after-ms`), sleeps that long through
  `transport.sleep` before retrying (azure/core/pipeline/policies/_retry.py `is_retry`,
  `sleep_for_retry`, _utils.get_retry_after). The gateway's pipelines keep that policy, so
  `Retry-After` is honoured inside each call. What is added here:
  1. a client-side token bucket per subscription for reads and for writes, so that the instances
     of the Function App together stay under the documented rates (each instance takes its share:
     SAFE_ROLLOUT_ARM_READS_PER_SECOND / SAFE_ROLLOUT_ARM_WRITES_PER_SECOND);
  2. a 429 that outlasts the SDK's retries is counted and raised as ThrottledError: the rollout is
     left for the next tick (deferred), never decided on and never counted as a provider error in
     a row (a throttled read says nothing about the endpoint);
  3. after such a 429 the subscription's bucket is emptied, so the rest of the batch waits instead
     of adding to the storm.
"""

from __future__ import annotations

import re
import threading
import time
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from shared.adapters.scoring_reach import ScoringTarget
from shared.ports import ProviderError, ThrottledError
from shared.rollout.actions import CreateDeployment
from shared.rollout.model import EndpointRef, TrafficSplit
from shared.rollout.observation import EndpointState, SmokeResult

# Documented ARM limits per subscription and principal (see above).
ARM_READS = (250.0, 25.0)  # (bucket, refill per second)
ARM_WRITES = (200.0, 10.0)
_THROTTLED = re.compile(r"\bHTTP 429\b|\bTooManyRequests\b")


__all__ = ["ArmLimits", "ThrottledError", "ThrottledGateway", "TokenBucket", "is_throttled"]


def is_throttled(exc: BaseException) -> bool:
    return isinstance(exc, ThrottledError) or (isinstance(exc, ProviderError) and bool(_THROTTLED.search(str(exc))))


@dataclass
class TokenBucket:
    """A token bucket on an injected clock: `take(n)` answers how long to wait before n tokens are
    there (and takes them). The clock may be simulated; time that seems to go back adds nothing."""

    capacity: float
    rate: float  # tokens per second
    now: Callable[[], float] = time.monotonic
    tokens: float = -1.0
    _at: float | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def __post_init__(self) -> None:
        if self.capacity <= 0 or self.rate <= 0:
            raise ValueError("a token bucket needs a positive size and rate")
        if self.tokens < 0:
            self.tokens = self.capacity

    def take(self, n: float = 1.0) -> float:
        with self._lock:
            t = self.now()
            if self._at is not None and t > self._at:
                self.tokens = min(self.capacity, self.tokens + (t - self._at) * self.rate)
            self._at = t if self._at is None else max(self._at, t)
            self.tokens -= n
            return 0.0 if self.tokens >= 0 else -self.tokens / self.rate

    def drain(self) -> None:
        with self._lock:
            self.tokens = min(self.tokens, 0.0)


@dataclass
class ArmLimits:
    """Per-instance rates (tokens per second) and bursts; defaults are a quarter of the documented
    subscription limits, so four instances at full speed stay under them."""

    reads_per_second: float = ARM_READS[1] / 4
    writes_per_second: float = ARM_WRITES[1] / 4
    read_burst: float = ARM_READS[0] / 4
    write_burst: float = ARM_WRITES[0] / 4


class ThrottledGateway:
    """An EndpointGateway that paces its calls per subscription and turns a lasting 429 into
    ThrottledError. Everything else is passed through unchanged."""

    def __init__(
        self,
        inner: Any,
        limits: ArmLimits | None = None,
        *,
        now: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.inner = inner
        self.limits = limits or ArmLimits()
        self._now = now
        self._sleep = sleep
        self._buckets: dict[tuple[str, str], TokenBucket] = {}
        self._lock = threading.Lock()
        self.throttled: Counter[str] = Counter()  # 429s that outlasted the SDK's retries, per subscription
        self.waited = 0.0  # seconds spent waiting for tokens

    def _bucket(self, subscription: str, kind: str) -> TokenBucket:
        key = (subscription.lower(), kind)
        with self._lock:
            if key not in self._buckets:
                lim = self.limits
                if kind == "read":
                    size, rate = lim.read_burst, lim.reads_per_second
                else:
                    size, rate = lim.write_burst, lim.writes_per_second
                self._buckets[key] = TokenBucket(size, rate, self._now)
            return self._buckets[key]

    def _call(self, endpoint: EndpointRef, costs: Mapping[str, float], fn: Callable[[], Any]) -> Any:
        subscription = endpoint.workspace.subscription_id
        for kind, n in costs.items():
            wait = self._bucket(subscription, kind).take(n)
            if wait > 0:
                self.waited += wait
                self._sleep(wait)
        try:
            return fn()
        except ProviderError as exc:
            if not is_throttled(exc):
                raise
            self.throttled[subscription.lower()] += 1
            for kind in costs:
                self._bucket(subscription, kind).drain()
            if isinstance(exc, ThrottledError):
                raise
            raise ThrottledError(f"throttled by Azure (429), left for the next tick: {exc}"[:500]) from exc

    # -- EndpointGateway ----------------------------------------------------------------------------

    def read_endpoint(self, endpoint: EndpointRef) -> EndpointState | None:
        # Three reads (observed against the emulator): GET the endpoint, and azure-ai-ml's
        # online_deployments.list sends two GETs (api-versions 2022-02-01-preview and 2023-04-01-preview).
        result: EndpointState | None = self._call(endpoint, {"read": 3}, lambda: self.inner.read_endpoint(endpoint))
        return result

    def set_traffic(self, endpoint: EndpointRef, split: TrafficSplit) -> None:
        self._call(endpoint, {"read": 1, "write": 1}, lambda: self.inner.set_traffic(endpoint, split))

    def create_deployment(self, endpoint: EndpointRef, action: CreateDeployment) -> None:
        self._call(endpoint, {"read": 1, "write": 1}, lambda: self.inner.create_deployment(endpoint, action))

    def tag_deployment(self, endpoint: EndpointRef, deployment: str, tags: dict[str, str]) -> None:
        self._call(endpoint, {"write": 1}, lambda: self.inner.tag_deployment(endpoint, deployment, tags))

    def delete_deployment(self, endpoint: EndpointRef, deployment: str) -> None:
        self._call(endpoint, {"write": 1}, lambda: self.inner.delete_deployment(endpoint, deployment))

    def scale_deployment(self, endpoint: EndpointRef, deployment: str, instances: int) -> None:
        self._call(endpoint, {"write": 1}, lambda: self.inner.scale_deployment(endpoint, deployment, instances))

    def smoke_test(self, endpoint: EndpointRef, deployment: str, requests: Sequence[dict[str, Any]]) -> SmokeResult:
        result: SmokeResult = self._call(
            endpoint, {"read": 1, "write": 1}, lambda: self.inner.smoke_test(endpoint, deployment, requests)
        )
        return result

    def scoring_target(self, endpoint: EndpointRef) -> ScoringTarget:
        # GET the endpoint (a read) and POST listKeys (a non-GET request: ARM counts it against the
        # subscription's writes, learn.microsoft.com/troubleshoot/azure/virtual-machines/
        # troubleshooting-throttling-errors). The scoring requests themselves do not go through ARM.
        result: ScoringTarget = self._call(
            endpoint, {"read": 1, "write": 1}, lambda: self.inner.scoring_target(endpoint)
        )
        return result

    def paced_reads(self, endpoint: EndpointRef, reads: int, fn: Callable[[], Any]) -> Any:
        """Another adapter's ARM GETs in the endpoint's subscription (a data asset's version and its
        datastore: shared/adapters/data_asset_inputs.py), paced like the gateway's own reads."""
        return self._call(endpoint, {"read": reads}, fn)

    def __getattr__(self, name: str) -> Any:  # anything else the gateway offers
        return getattr(self.inner, name)
