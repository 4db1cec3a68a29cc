"""The world of the stateful test (test_stateful.py): a store whose row backend can go down, the
fault kinds it injects, and the counters it prints at the end of a run.

Everything random comes from hypothesis; the emulator and its traffic simulator take their seed
from it, and the service runs one rollout at a time (max_concurrency=1), so an example replays
exactly.
"""

from __future__ import annotations

import os
import re
import threading
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from emulator.azure import Emulator, Fault
from emulator.traffic import Scenario
from shared.ports import ProviderError
from shared.store import Entity, MemoryRows, Op

ENDPOINT = "fraud-scorer"
MODEL = "fraud-model"
SOAK = os.environ.get("SAFE_ROLLOUT_SOAK", "") not in ("", "0")

# What one run did, summed over every example (printed and written to a file by the test).
STATS: Counter[str] = Counter()
_STATS_LOCK = threading.Lock()


def count(key: str, n: int = 1) -> None:
    with _STATS_LOCK:
        STATS[key] += n


# A short policy (tests/reliability/world.py FAST, with a 45m deadline): a healthy rollout takes
# about 20 minutes, so one example of 60 steps sees several rollouts start and end.
POLICY: dict[str, Any] = {
    "mirror": {"percent": 20, "min_duration": "3m", "min_requests": 100, "max_duration": "10m"},
    "steps": [
        {"percent": 10, "min_duration": "3m", "min_requests": 50, "max_duration": "10m"},
        {"percent": 50, "min_duration": "3m", "min_requests": 100, "max_duration": "10m"},
    ],
    "bake": {"duration": "3m", "min_requests": 100, "max_duration": "10m"},
    "provisioning_timeout": "10m",
    "approval_timeout": "15m",
    "deadline": "45m",
}
DEADLINE = timedelta(minutes=45)
SLACK = timedelta(minutes=5)  # "by its deadline, plus a few ticks"

SCENARIOS: dict[str, Scenario] = {
    "healthy": Scenario(),
    "slow": Scenario(latency_ms=240.0),
    "erroring": Scenario(error_rate=0.08),
    "fails-live": Scenario(live_error_rate=0.1),
}


@dataclass(frozen=True)
class ArmFault:
    """One kind of Azure fault: the emulator operation it hits and how it answers."""

    operation: str
    status: int
    retry_after: bool = False
    max_times: int = 6


ARM_FAULTS: dict[str, ArmFault] = {
    "endpoint read 404 (ARM replication lag)": ArmFault("endpoint.get", 404, max_times=1),
    "endpoint read 503": ArmFault("endpoint.get", 503),
    "endpoint read 429 + Retry-After": ArmFault("endpoint.get", 429, retry_after=True),
    "traffic PUT 409 (operation in progress)": ArmFault("endpoint.put", 409),
    "traffic PUT 429 + Retry-After": ArmFault("endpoint.put", 429, retry_after=True),
    "traffic PUT 500": ArmFault("endpoint.put", 500),
    "traffic PUT 403 (policy deny, lasting)": ArmFault("endpoint.put", 403, max_times=30),
    "deployment PUT 500": ArmFault("deployment.put", 500),
    "deployment PUT 409": ArmFault("deployment.put", 409),
    "deployment DELETE 500": ArmFault("deployment.delete", 500),
    "metrics 503": ArmFault("metrics", 503, max_times=12),
    "metrics 429 + Retry-After": ArmFault("metrics", 429, retry_after=True),
}


OTHER_FAULTS = (
    "provisioning ends Failed",
    "provisioning ends Canceled",
    "provisioning ends Migrating",  # a state we do not know: never taken for ready
    "provisioning hangs",
    "slow provisioning",
    "slow deletion",
)


def pending_faults(emu: Emulator) -> int:
    return sum(f.times for f in emu.faults)


def inject(emu: Emulator, kind: str, times: int, retry_after: int) -> None:
    spec = ARM_FAULTS[kind]
    emu.faults.append(
        Fault(
            spec.operation,
            status=spec.status,
            times=max(1, min(times, spec.max_times)),
            retry_after=retry_after if spec.retry_after else None,
        )
    )


class FlakyRows:
    """MemoryRows that can go down: while down every call raises ProviderError, as the Table
    adapter (shared/adapters/table_store.py) does when Table storage cannot be reached. `down_after`
    lets an outage start in the middle of an operation (after that many more calls)."""

    def __init__(self) -> None:
        self.inner = MemoryRows()
        self.down = False
        self.down_after: int | None = None
        self.refused = 0  # calls refused since the last look

    def go_down(self, after_calls: int) -> None:
        if after_calls <= 0:
            self.down, self.down_after = True, None
        else:
            self.down_after = after_calls

    def come_back(self) -> None:
        self.down, self.down_after = False, None

    def _gate(self) -> None:
        if self.down_after is not None:
            self.down_after -= 1
            if self.down_after < 0:
                self.down, self.down_after = True, None
        if self.down:
            self.refused += 1
            raise ProviderError("Table storage unavailable (injected outage)")

    def get(self, partition: str, row: str) -> tuple[Entity, str] | None:
        self._gate()
        return self.inner.get(partition, row)

    def query(self, equals: dict[str, Any], partition: str | None = None) -> list[tuple[Entity, str]]:
        self._gate()
        return self.inner.query(equals, partition)

    def transact(self, partition: str, ops: Sequence[Op]) -> dict[str, str]:
        self._gate()
        return self.inner.transact(partition, ops)


_MODEL_ID = re.compile(r"/models/([^/]+)/versions/([^/]+)$", re.IGNORECASE)


def deployment_version(emu: Emulator, deployment: str) -> int | None:
    """The integer model version a deployment serves (None if it is gone or not ours)."""
    res = emu.deployments.get((ENDPOINT, deployment.lower()))
    if res is None:
        return None
    model = str(res.body["properties"].get("model") or "")
    m = _MODEL_ID.search(model) or re.search(r":([^:]+)$", model)
    version = m[m.lastindex or 1] if m else ""
    return int(version) if version.isdigit() else None


def provisioning_state(emu: Emulator, deployment: str) -> str | None:
    res = emu.deployments.get((ENDPOINT, deployment.lower()))
    return None if res is None else str(res.body["properties"].get("provisioningState"))


def release_pollers(emu: Emulator) -> None:
    """End every operation, so the SDK's background LRO pollers (daemon threads that poll with
    short real sleeps) stop once an example is over instead of polling a dead world forever."""
    with emu._lock:
        past = emu.clock.now() - timedelta(seconds=1)
        for op in emu.operations.values():
            if op.outcome == "Hung":
                op.outcome = "Canceled"
            op.done_at = min(op.done_at, past)
        emu.hung_provisioning.clear()
    emu.settle()


def summary() -> str:
    with _STATS_LOCK:
        stats = dict(STATS)
    lines = [
        "stateful test: {examples} examples, {steps} steps, {ticks} timer ticks".format(
            examples=stats.get("examples", 0), steps=stats.get("steps", 0), ticks=stats.get("ticks", 0)
        )
    ]
    for prefix, title in (
        ("fault:", "faults injected"),
        ("event:", "registrations"),
        ("command:", "commands"),
        ("alert:", "alerts"),
        ("phase:", "rollouts ended"),
    ):
        items = sorted((k.removeprefix(prefix), v) for k, v in stats.items() if k.startswith(prefix))
        if items:
            lines.append(f"  {title}: " + ", ".join(f"{k} {v}" for k, v in items))
    return "\n".join(lines)
