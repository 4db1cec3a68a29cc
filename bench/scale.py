"""Scale: the dispatcher and the queue workers over 100 / 1,000 / 5,000 active rollouts on 1, 2, 4
and 8 Function App instances, in virtual time.

What runs for real: the dispatcher's planning (shared/dispatcher.plan_tick), the queue worker's
entry point (RolloutService.reconcile_batch, one call per work item) with the real SDK adapters
(azure-ai-ml, plain ARM REST, azure-monitor-querymetrics, azure-monitor-query) behind the
ThrottledGateway, against the in-process emulator, one emulator per subscription, with Azure's
request limits enforced (emulator/rate_limits.py: ARM per subscription 250 reads + 25/s, 200
writes + 10/s; Log Analytics 200 queries per 30 s per user).

What is simulated: time. Nothing sleeps. Each call is charged a latency on the virtual clock of the
worker slot that makes it, and a discrete-event loop hands the queue's work items, in order, to the
slot that is free first (the Functions host's queue loop: host.json batchSize 2 + newBatchThreshold
2 = 4 work items at once per instance). Inside a work item the service judges up to
`max_concurrency` (8) rollouts at once: calls made on its pool threads are charged divided over
those threads (ideal parallelism of that phase), calls on the item's own thread in full.
Latencies:
- ARM GET / PUT / operation polls: drawn from the `x-request-time` of the recorded sessions
  (tests/recordings/azure-ai-ml/*.json, the same sessions the emulator's operation durations come
  from; a traffic update then takes 20 s in the emulator, not waited for within a tick);
- metrics:getBatch 0.5 s, a Log Analytics query 2 s plus its wait for one of the user's 5
  concurrent slots, a Table storage operation 0.02 s, a queue operation 0.02 s, the queue
  trigger's first pick-up 2 s (host.json maxPollingInterval): UNVERIFIED (no recorded timing;
  see docs/AZURE-FACTS-USED.md, "Scale-out (issue 15)").
Approximations (pessimistic): work items run one after another in real time and are placed on
their slots' timelines afterwards, so Azure's token buckets see time only as the latest time so
far (no refill for an item that starts earlier than one already run).

Per case, two ticks: the first finds every rollout mirroring with its window ready (every rollout
is judged and moves traffic: a read, a metrics fetch, a traffic-log query, a GET + PUT), the
second a minute later (the steady state: every rollout read and judged). Reported: time from the
tick to the last rollout judged, decisions per minute, calls per rollout, 429s received.
Run: python -m bench.scale [--sizes 100 1000 5000] [--instances 1 2 4 8]
"""

from __future__ import annotations

import argparse
import heapq
import json
import random
import threading
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from emulator.azure import Emulator
from emulator.rate_limits import RateLimits
from emulator.transport import EmulatorTransport, StaticCredential
from shared.adapters.azureml import AzureMLGateway
from shared.adapters.eventgrid import NoopPublisher
from shared.adapters.monitor import MonitorMetrics
from shared.adapters.throttle import ARM_READS, ARM_WRITES, ArmLimits, ThrottledGateway
from shared.dispatch import WorkItem
from shared.dispatcher import plan_tick
from shared.ports import DecisionRecord
from shared.rollout.machine import plan_start, split_for
from shared.rollout.model import EndpointRef, ModelRef, RolloutPhase, TrafficSplit, WorkspaceRef
from shared.rollout.observation import DeploymentState, EndpointState
from shared.rollout.policy import RolloutPolicy
from shared.service import RolloutService
from shared.store import RolloutStoreImpl, memory_store
from shared.targets import PolicyFile

ROOT = Path(__file__).resolve().parents[1]
ROLLOUTS_PER_SUBSCRIPTION = 250
SLOTS_PER_INSTANCE = 4  # host.json: batchSize 2 + newBatchThreshold 2
MAX_CONCURRENCY = 8  # SAFE_ROLLOUT_MAX_CONCURRENCY: rollouts judged at once within a work item
BATCH_SIZE = 25
# UNVERIFIED latencies (no recorded timing): see the module docstring.
METRICS_S, LOGS_S, TABLE_S, QUEUE_S, PICKUP_S = 0.5, 2.0, 0.02, 0.02, 2.0
LOGS_CONCURRENT = 5  # per user (Azure Monitor service limits)
T0 = datetime.fromisoformat("2026-11-01T09:00:00+00:00")
RPM = 60  # each endpoint's users (low: the emulator simulates every request, in this process)
READY_AFTER = 9 * 60.0  # mirroring since T0: the default 5-minute mirror stage is ready to judge
SCENARIOS = {
    "judge": "every rollout mirroring with its window ready: endpoint read, metrics, traffic log, decision",
    "move": "every rollout's green just provisioned: endpoint read, then a traffic order (GET + PUT)",
}
SHARE = 0.9  # each instance paces itself to this share of its part of ARM's documented rates
# Traffic-log rows per deployment and query: the production default is 5,000; 200 here keeps the
# in-process deserialisation (not a cost on Azure's side) within minutes. Queries and their
# charged latency are unchanged.
LOG_SAMPLE = 200


def recorded_latencies() -> dict[str, list[float]]:
    """`x-request-time` (seconds) of the recorded Azure ML sessions, by kind of request."""
    out: dict[str, list[float]] = {"get": [], "put": [], "poll": []}
    for path in sorted((ROOT / "tests" / "recordings" / "azure-ai-ml").glob("*.json")):
        for entry in json.loads(path.read_text()).get("Entries", []):
            headers = {k.lower(): v for k, v in (entry.get("ResponseHeaders") or {}).items()}
            if "x-request-time" not in headers:
                continue
            uri, method = entry.get("RequestUri", ""), entry.get("RequestMethod", "")
            kind = "poll" if "operation" in uri.lower() else "put" if method in ("PUT", "PATCH", "POST") else "get"
            out[kind].append(float(headers["x-request-time"]))
    return out


class VirtualClock:
    """The emulator's and the service's clock: the running work item's time (or the tick's)."""

    def __init__(self) -> None:
        self.base = 0.0  # seconds since T0 when no work item runs
        self.item: _Timeline | None = None
        self._lock = threading.Lock()

    def seconds(self) -> float:
        return self.item.now() if self.item is not None else self.base

    def now(self) -> datetime:
        return T0 + timedelta(seconds=self.seconds())

    def charge(self, seconds: float) -> None:
        with self._lock:
            if self.item is not None:
                self.item.charge(seconds)
            else:
                self.base += seconds

    def wait(self, seconds: float) -> None:
        """A wait (Retry-After, pacing): the whole work item's time moves, whichever thread waits
        (pessimistic: in reality the item's other threads go on meanwhile)."""
        with self._lock:
            if self.item is not None:
                self.item.wait(seconds)
            else:
                self.base += seconds

    def advance(self, delta: timedelta) -> datetime:
        self.wait(max(0.0, delta.total_seconds()))
        return self.now()

    def sleep(self, seconds: float) -> None:
        self.wait(max(0.0, seconds))


@dataclass
class _Timeline:
    """A work item's time on its slot. It judges MAX_CONCURRENCY rollouts at once: a latency on the
    item's own thread is charged in full, one on its pool threads divided over those threads (ideal
    parallelism of that phase). A wait (Retry-After, pacing) on the item's own thread is charged in
    full; on a pool thread it is a floor: the item cannot end before that thread's wait is over."""

    start: float
    main: int  # the work item's own thread
    own: float = 0.0
    pooled: float = 0.0
    waited: float = 0.0
    floor: float = 0.0

    def now(self) -> float:
        return self.start + self.waited + max(self.own + self.pooled / MAX_CONCURRENCY, self.floor)

    def wait(self, seconds: float) -> None:
        if threading.get_ident() == self.main:
            self.waited += seconds
        else:
            self.floor = max(self.floor, self.now() - self.start - self.waited + seconds)

    def charge(self, seconds: float) -> None:
        if threading.get_ident() == self.main:
            self.own += seconds
        else:
            self.pooled += seconds


@dataclass
class Azure:
    """One emulator per subscription behind one transport, charging each call its latency."""

    clock: VirtualClock
    emus: dict[str, Emulator]
    rng: random.Random
    latencies: dict[str, list[float]]
    calls: Counter[str] = field(default_factory=Counter)
    logs_free: list[float] = field(default_factory=lambda: [0.0] * LOGS_CONCURRENT)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def handle(self, method: str, url: str, headers: dict[str, str], body: bytes | None) -> Any:
        kind, emu = self._route(method, url, body)
        with self._lock:
            self.calls[kind] += 1
            if kind == "logs":  # one of the user's 5 concurrent slots, or wait for one
                now = self.clock.seconds()
                lane = min(range(LOGS_CONCURRENT), key=lambda i: self.logs_free[i])
                begin = max(now, self.logs_free[lane])
                self.logs_free[lane] = begin + LOGS_S
                cost = begin - now + LOGS_S
            elif kind == "metrics":
                cost = METRICS_S
            else:
                cost = self.rng.choice(self.latencies[kind])
        self.clock.charge(cost)
        return emu.handle(method, url, headers, body)

    def _route(self, method: str, url: str, body: bytes | None) -> tuple[str, Emulator]:
        if "loganalytics" in url:
            text = (body or b"").decode()
            sub = text.split("/subscriptions/", 1)[1].split("/", 1)[0] if "/subscriptions/" in text else ""
            return "logs", self.emus.get(sub.lower(), next(iter(self.emus.values())))
        sub = url.split("/subscriptions/", 1)[1].split("/", 1)[0].lower() if "/subscriptions/" in url else ""
        emu = self.emus.get(sub, next(iter(self.emus.values())))
        if "metrics:getbatch" in url.lower():
            return "metrics", emu
        if "operation" in url.lower():
            return "poll", emu
        return ("get" if method.upper() in ("GET", "HEAD") else "put"), emu

    def refused(self) -> int:
        return sum(sum(e.rate_limits.refused.values()) for e in self.emus.values())


class _Transport(EmulatorTransport):
    """EmulatorTransport over the router: waits (Retry-After) pass on the virtual clock."""

    def __init__(self, azure: Azure) -> None:
        super().__init__(azure)  # type: ignore[arg-type]
        self.azure = azure

    def sleep(self, duration: float) -> None:
        self.sleeps.append(float(duration))
        self.azure.clock.sleep(max(1.0, float(duration)))


class TimedStore:
    """The in-memory store, each operation charged a Table storage round trip."""

    def __init__(self, inner: RolloutStoreImpl, clock: VirtualClock) -> None:
        self.inner, self.clock = inner, clock
        self.ops = 0

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self.inner, name)
        if not callable(attr) or name.startswith("_"):
            return attr

        def timed(*args: Any, **kwargs: Any) -> Any:
            self.ops += 1
            self.clock.charge(TABLE_S)
            return attr(*args, **kwargs)

        return timed


@dataclass
class Fleet:
    clock: VirtualClock
    azure: Azure
    store: TimedStore
    services: list[RolloutService]  # one per instance (its own pacing buckets)
    n: int


def build(
    n: int, instances: int, subscriptions: int, scenario: str = "judge", *, seed: int = 1, rpm: float = RPM
) -> Fleet:
    clock = VirtualClock()
    emus: dict[str, Emulator] = {}
    for s in range(subscriptions):
        sub = f"00000000-0000-0000-0000-{s + 1:012d}"
        emu = Emulator(clock, seed=seed + s, subscription=sub)  # type: ignore[arg-type]
        emu.rate_limits = RateLimits()
        emus[sub] = emu
    azure = Azure(clock, emus, random.Random(seed), recorded_latencies())
    policy = RolloutPolicy()
    store = memory_store()
    subs = list(emus)
    for i in range(n):
        emu = emus[subs[i % subscriptions]]
        name = f"ep-{i:05d}"
        emu.add_endpoint(name, rpm=rpm)
        emu.add_deployment(name, "blue", ("m", "1"), traffic=100)
        emu.add_deployment(name, "green", ("m", "2"))
        endpoint = EndpointRef(workspace=WorkspaceRef.parse(emu.workspace_id), name=name)
        pending = plan_start(endpoint, ModelRef(name="m", version="2"), _blue_only(name), policy, T0, trigger="bench")
        rollout = pending.rollout.model_copy(update={"green": "green", "region": "eastus", "decisions": 1})
        if scenario == "move":  # green provisioned: the next judgement starts mirroring
            store.create(
                rollout,
                policy,
                DecisionRecord(
                    seq=1,
                    at=T0,
                    actor="bench",
                    from_phase=RolloutPhase.PENDING,
                    to_phase=RolloutPhase.PENDING,
                    reason="set up",
                    traffic=rollout.desired,
                ),
            )
            continue
        rollout = rollout.model_copy(
            update={
                "phase": RolloutPhase.MIRRORING,
                "stage_started_at": T0,
                "traffic_confirmed": True,  # Azure was seen holding the mirror split from T0
                "window_started_at": T0,
                "desired": split_for(rollout, policy, RolloutPhase.MIRRORING, -1),
                "decisions": 1,
            }
        )
        emu.set_traffic_by_hand(name, dict(rollout.desired.live), dict(rollout.desired.mirror))
        record = DecisionRecord(
            seq=1,
            at=T0,
            actor="bench",
            from_phase=RolloutPhase.PENDING,
            to_phase=RolloutPhase.MIRRORING,
            reason="set up",
            traffic=rollout.desired,
        )
        store.create(rollout, policy, record)
    clock.base = READY_AFTER  # the mirror windows are ready
    for emu in emus.values():  # the users' requests up to now (the emulator's own work, done once)
        with emu._lock:
            emu._settle()
    transport = _Transport(azure)
    timed = TimedStore(store, clock)
    limits = ArmLimits(  # each instance's share of the documented per-subscription limits
        reads_per_second=SHARE * ARM_READS[1] / instances,
        writes_per_second=SHARE * ARM_WRITES[1] / instances,
        read_burst=SHARE * ARM_READS[0] / instances,
        write_burst=SHARE * ARM_WRITES[0] / instances,
    )
    services = [
        RolloutService(
            store=timed,  # type: ignore[arg-type]
            gateway=ThrottledGateway(
                AzureMLGateway(StaticCredential(), transport=transport, polling_interval=0),
                limits,
                now=clock.seconds,
                sleep=clock.sleep,
            ),
            metrics=MonitorMetrics(
                StaticCredential(),
                metrics_endpoint="https://{region}.metrics.monitor.azure.com",
                logs_workspace_id="law-bench",
                transport=transport,
                log_sample=LOG_SAMPLE,
            ),
            events=NoopPublisher(),
            clock=clock,
            policies=PolicyFile.model_validate({"targets": [{"model": "m", "endpoint": "ep-00000"}]}),
            max_concurrency=MAX_CONCURRENCY,
            tick_budget_seconds=10**9,  # wall time is not the budget here: virtual time is
            sleep=clock.sleep,
        )
        for _ in range(instances)
    ]
    return Fleet(clock, azure, timed, services, n)


def _blue_only(name: str) -> EndpointState:
    return EndpointState(
        name=name,
        traffic=TrafficSplit(live={"blue": 100}),
        deployments={"blue": DeploymentState(name="blue", provisioning_state="Succeeded")},
    )


@contextmanager
def _on_timeline(clock: VirtualClock, start: float) -> Iterator[_Timeline]:
    line = _Timeline(start=start, main=threading.get_ident())
    clock.item = line
    try:
        yield line
    finally:
        clock.item = None


@dataclass
class TickResult:
    last_judged: float  # seconds after the tick
    judged: int
    moved: int
    calls: Counter[str]
    table_ops: int
    refused: int
    throttled: int
    failed: int


def run_tick(fleet: Fleet, tick_at: float, slots: list[tuple[float, int, int]]) -> TickResult:
    """One timer tick at `tick_at` (seconds since T0); `slots` (free at, slot, instance) carries over."""
    clock, azure = fleet.clock, fleet.azure
    calls_before, ops_before, refused_before = Counter(azure.calls), fleet.store.ops, azure.refused()
    clock.base = tick_at
    phases_before = {s.rollout.id: s.rollout.desired for s in fleet.store.inner.find(due_only=True)}
    items: list[WorkItem] = plan_tick(fleet.services[0], BATCH_SIZE)  # the dispatcher's table query
    enqueued = [clock.seconds() + QUEUE_S * (k + 1) for k in range(len(items))]
    judged = moved = throttled = failed = 0
    last = 0.0
    heap = list(slots)
    heapq.heapify(heap)
    for item, at in zip(items, enqueued, strict=True):
        free, slot, instance = heapq.heappop(heap)
        start = max(free, at) + QUEUE_S  # receive
        with _on_timeline(clock, start) as line:
            report = fleet.services[instance].reconcile_batch(item.rollouts)
            line.own += QUEUE_S  # delete the message
            end = line.now()
        judged += report.reconciled + report.conflicts
        throttled += report.throttled
        failed += report.failed
        last = max(last, end - tick_at)
        heapq.heappush(heap, (end, slot, instance))
    slots[:] = sorted(heap)
    after = {s.rollout.id: s.rollout.desired for s in fleet.store.inner.find(due_only=True)}
    moved = sum(1 for rid, split in after.items() if phases_before.get(rid) != split)
    calls = Counter(azure.calls)
    calls.subtract(calls_before)
    return TickResult(
        last_judged=last,
        judged=judged,
        moved=moved,
        calls=+calls,
        table_ops=fleet.store.ops - ops_before,
        refused=azure.refused() - refused_before,
        throttled=throttled,
        failed=failed,
    )


def run_case(n: int, instances: int, subscriptions: int | None = None, scenario: str = "judge") -> TickResult:
    subscriptions = subscriptions or max(1, -(-n // ROLLOUTS_PER_SUBSCRIPTION))
    fleet = build(n, instances, subscriptions, scenario)
    # (free at, slot, instance): the instances poll the queue at once, so consecutive messages go
    # to different instances.
    slots = [(READY_AFTER + PICKUP_S, j, i) for i in range(instances) for j in range(SLOTS_PER_INSTANCE)]
    return run_tick(fleet, READY_AFTER, slots)


def row(n: int, subs: int, instances: int, tick: str, r: TickResult) -> str:
    arm = r.calls["get"] + r.calls["put"] + r.calls["poll"]
    per = (arm + r.calls["metrics"] + r.calls["logs"]) / max(1, n)
    rate = r.judged / (r.last_judged / 60) if r.last_judged > 0 else 0.0
    ok = "yes" if r.last_judged <= 60 and r.refused == 0 and r.judged == n else "no"
    return (
        f"| {n:,} | {subs} | {instances} | {tick} | {r.last_judged:.1f} | {r.judged:,} of {n:,} | {r.moved:,} | "
        f"{rate:,.0f} | {per:.2f} (ARM {arm / max(1, n):.2f}, metrics {r.calls['metrics']}, logs {r.calls['logs']}) | "
        f"{r.refused} | {r.throttled} | {ok} |"
    )


HEADER = [
    "| active rollouts | subscriptions | instances | scenario | tick to last judged (s) | judged | moved traffic | "
    "decisions per minute | Azure calls per rollout | 429s received | deferred (throttled) | within 60 s, no 429 |",
    "|---|---|---|---|---|---|---|---|---|---|---|---|",
]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="*", default=[100, 1000, 5000])
    parser.add_argument("--instances", type=int, nargs="+", default=[1, 2, 4, 8])
    parser.add_argument(
        "--one-subscription", type=int, nargs="*", default=[1000], help="sizes also run in one subscription"
    )
    parser.add_argument("--move-sizes", type=int, nargs="*", default=[1000], help="sizes of the traffic-order scenario")
    parser.add_argument("--out", type=Path, default=Path("bench/results"))
    args = parser.parse_args(argv)
    rows = list(HEADER)
    print("\n".join(rows), flush=True)
    began = time.monotonic()
    cases = [(n, None, "judge") for n in args.sizes]
    cases += [(n, None, "move") for n in args.move_sizes]
    cases += [(n, 1, "judge") for n in args.one_subscription]
    for n, subs, scenario in cases:
        for instances in args.instances:
            r = run_case(n, instances, subs, scenario)
            used = subs or max(1, -(-n // ROLLOUTS_PER_SUBSCRIPTION))
            rows.append(row(n, used, instances, scenario, r))
            print(rows[-1], flush=True)
    wall = time.monotonic() - began
    text = (
        "# Scale benchmark\n\n"
        "Dispatcher -> queue -> workers, in virtual time (bench/scale.py explains the model). Real service code "
        "and SDK adapters against the emulator, one emulator per subscription, Azure's ARM and Log Analytics "
        f"limits enforced; {SLOTS_PER_INSTANCE} work items at once per instance, {BATCH_SIZE} rollouts per work "
        f"item, {MAX_CONCURRENCY} rollouts judged at once within one; ARM latencies drawn from the recorded "
        f"sessions; metrics {METRICS_S} s, Log Analytics {LOGS_S} s per query ({LOGS_CONCURRENT} at once per "
        f"user), Table storage {TABLE_S} s per operation (UNVERIFIED). Fleets of more than "
        f"{ROLLOUTS_PER_SUBSCRIPTION} rollouts are spread over subscriptions of {ROLLOUTS_PER_SUBSCRIPTION} each, "
        "unless the row says one subscription.\n\nScenarios: "
        + "; ".join(f"*{k}*: {v}" for k, v in SCENARIOS.items())
        + ".\n\n"
        + "\n".join(rows)
        + f"\n\nWall time of the whole run: {wall:.0f} s.\n"
    )
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "scale.md").write_text(text)
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
