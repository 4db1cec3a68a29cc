"""Traffic simulator: users' requests routed by an endpoint's live split and copied by its mirror.

Per endpoint, users send `rpm` requests a minute (Poisson). Each minute's requests are routed to
deployments by the live split in force at the start of the minute (multinomial), and a mirrored
copy of each live request goes to the mirror target with the mirror percentage (binomial), as
Azure ML does. Mirrored responses are discarded: users only ever receive live answers (tracked
in `user_answers`), but the mirror target's metrics and logs are recorded.

Each deployment answers according to its `Scenario`: latency (lognormal), error mix (5xx, 424
with modelStatusCode 500, 408, 429), CPU and memory, and how these change over time or with load.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Any

import numpy as np

from emulator.capacity import load_per_instance, throughput
from emulator.predictor import Predictor
from shared.rollout.model import TrafficSplit


@dataclass(frozen=True)
class Scenario:
    latency_ms: float = 80.0  # median
    latency_sigma: float = 0.35  # lognormal shape
    tail_rate: float = 0.0  # share of requests that land in a slow tail
    tail_multiplier: float = 1.0
    error_rate: float = 0.002  # plain 5xx (503s from the model server)
    model_error_rate: float = 0.0  # the model returned 500: clients see 424
    timeout_rate: float = 0.0  # 408
    throttle_rate: float = 0.0  # 429
    live_error_rate: float = 0.0  # 424s only on live (user) requests: mirrored copies look fine
    cpu_percent: float = 35.0
    cpu_per_100rpm: float = 3.0
    memory_percent: float = 45.0
    memory_leak_per_hour: float = 0.0
    capacity_rpm: float | None = None  # above this load, latency and 429s grow
    # Sized per instance (emulator/capacity.py): the throughput is this times the instances serving,
    # and CPU follows the load per instance. None: capacity_rpm and CPU for the whole deployment.
    capacity_rpm_per_instance: float | None = None
    smoke_fails: bool = False  # direct invocations with sample requests fail
    # What the model answers (emulator/predictor.py); None: the fixed answer [0.5].
    predictor: Predictor | None = None
    # (minutes after the deployment starts receiving traffic, changes): behaviour that drifts
    changes: tuple[tuple[float, dict[str, Any]], ...] = ()

    def at(self, minutes_active: float) -> Scenario:
        current = self
        for after, change in self.changes:
            if minutes_active >= after:
                current = replace(current, **change)
        return current


HEALTHY = Scenario()


@dataclass
class MinuteStats:
    requests: int = 0
    mirrored: int = 0
    by_status: dict[tuple[int, int], int] = field(default_factory=lambda: defaultdict(int))
    latencies: list[float] = field(default_factory=list)
    # The same for live (user) requests only: whether Azure's endpoint-scope metrics count mirrored
    # copies is not documented, so the emulator can answer either way (MonitorMetrics flag).
    live_by_status: dict[tuple[int, int], int] = field(default_factory=lambda: defaultdict(int))
    live_latencies: list[float] = field(default_factory=list)
    cpu: float | None = None
    memory: float | None = None

    def percentile(self, q: float) -> float | None:
        return float(np.percentile(self.latencies, q)) if self.latencies else None


@dataclass(frozen=True)
class LogRow:
    time: datetime
    endpoint: str
    deployment: str
    response_code: int
    model_status_code: int
    total_ms: float
    request_id: str
    mirrored: bool = False


@dataclass
class EndpointTraffic:
    rpm: float = 600.0
    splits: list[tuple[datetime, TrafficSplit]] = field(default_factory=list)

    def split_at(self, when: datetime) -> TrafficSplit:
        current = TrafficSplit()
        for changed, split in self.splits:
            if changed <= when:
                current = split
        return current


class TrafficSimulator:
    """Generates traffic minute by minute, lazily, up to the simulated clock."""

    # Log rows kept per deployment per minute. The traffic log has one row per request, and the
    # adapter refuses a log that holds far fewer rows than the requests metrics count, so every
    # request up to this many a minute is kept (an endpoint allows 500 requests/s; 5000 a minute per
    # deployment covers every scenario here while memory stays bounded at scale).
    MAX_LOG_ROWS_PER_MINUTE = 5000

    def __init__(self, start: datetime, seed: int = 0, *, keep_logs: bool = True) -> None:
        self.rng = np.random.default_rng(seed)
        self.keep_logs = keep_logs
        self.generated_until = start.replace(second=0, microsecond=0)
        self.endpoints: dict[str, EndpointTraffic] = {}
        self.scenarios: dict[tuple[str, str], Scenario] = {}
        self.first_traffic: dict[tuple[str, str], datetime] = {}
        self.stats: dict[tuple[str, str], dict[datetime, MinuteStats]] = defaultdict(dict)
        self.logs: dict[tuple[str, str], list[LogRow]] = defaultdict(list)
        # Answers users actually received, per (endpoint, deployment): mirrored answers never count.
        self.user_answers: dict[tuple[str, str], int] = defaultdict(int)
        self.user_errors: dict[tuple[str, str], int] = defaultdict(int)
        self._request_seq = 0
        # (endpoint, deployment) -> instances serving now (emulator/capacity.py); None: one
        self.instances_of: Callable[[str, str], int] | None = None

    # -- configuration -------------------------------------------------------------------------

    def set_rpm(self, endpoint: str, rpm: float) -> None:
        self.endpoints.setdefault(endpoint.lower(), EndpointTraffic()).rpm = rpm

    def set_scenario(self, endpoint: str, deployment: str, scenario: Scenario) -> None:
        self.scenarios[(endpoint.lower(), deployment.lower())] = scenario

    def scenario(self, endpoint: str, deployment: str) -> Scenario:
        return self.scenarios.get((endpoint.lower(), deployment.lower()), HEALTHY)

    def record_split(self, endpoint: str, when: datetime, split: TrafficSplit) -> None:
        """Called when the endpoint's traffic changes (after generating up to `when`)."""
        self.advance(when)
        self.endpoints.setdefault(endpoint.lower(), EndpointTraffic()).splits.append((when, split))

    # -- generation ----------------------------------------------------------------------------

    def advance(self, now: datetime) -> None:
        while self.generated_until + timedelta(minutes=1) <= now:
            self._generate_minute(self.generated_until)
            self.generated_until += timedelta(minutes=1)

    def _generate_minute(self, minute: datetime) -> None:
        for name, ep in self.endpoints.items():
            split = ep.split_at(minute)
            if not split.live:
                continue
            total = int(self.rng.poisson(ep.rpm))
            names = list(split.live)
            shares = np.array([split.live[n] for n in names], dtype=float) / 100.0
            counts = self.rng.multinomial(total, shares)
            for deployment, n in zip(names, counts, strict=True):
                self._serve(name, deployment, minute, int(n), live=True)
            for target, pct in split.mirror.items():
                copies = int(self.rng.binomial(total, pct / 100.0))
                self._serve(name, target, minute, copies, live=False)
            for deployment in {d for (e, d) in self.scenarios if e == name} | set(names) | set(split.mirror):
                self._resources(name, deployment, minute)

    def _serve(self, endpoint: str, deployment: str, minute: datetime, n: int, *, live: bool) -> None:
        key = (endpoint, deployment)
        if n <= 0:
            return
        self.first_traffic.setdefault(key, minute)
        active = (minute - self.first_traffic[key]).total_seconds() / 60
        sc = self.scenario(endpoint, deployment).at(active)
        stats = self.stats[key].setdefault(minute, MinuteStats())
        slow = 1.0
        throttle = sc.throttle_rate
        limit = throughput(sc.capacity_rpm_per_instance, sc.capacity_rpm, self._instances(endpoint, deployment))
        load = (stats.requests + n) / limit if limit else 0.0
        if load > 1:
            slow = load**2
            throttle = min(0.9, throttle + (load - 1) * 0.5)
        latencies = self.rng.lognormal(np.log(sc.latency_ms * slow), sc.latency_sigma, n)
        if sc.tail_rate > 0:
            tail = self.rng.random(n) < sc.tail_rate
            latencies[tail] *= sc.tail_multiplier
        live_errors = sc.live_error_rate if live else 0.0
        bad = np.clip(np.array([sc.error_rate, sc.model_error_rate + live_errors, sc.timeout_rate, throttle]), 0, 1)
        if bad.sum() > 1:
            bad = bad / bad.sum()
        outcome = self.rng.multinomial(n, [*bad, max(0.0, 1.0 - float(bad.sum()))])
        codes = [(503, 503), (424, 500), (408, 408), (429, 429), (200, 200)]
        stats.requests += n
        if not live:
            stats.mirrored += n
        statuses: list[tuple[int, int]] = []
        for (code, model_code), count in zip(codes, outcome, strict=True):
            if count:
                stats.by_status[(code, model_code)] += int(count)
                if live:
                    stats.live_by_status[(code, model_code)] += int(count)
                statuses += [(code, model_code)] * int(count)
        statuses = [statuses[i] for i in self.rng.permutation(len(statuses))]
        stats.latencies.extend(float(x) for x in latencies)
        if live:
            stats.live_latencies.extend(float(x) for x in latencies)
        if live:
            self.user_answers[key] += n
            self.user_errors[key] += sum(int(c) for c, (code, _) in zip(outcome, codes, strict=True) if code >= 408)
        keep = min(n, self.MAX_LOG_ROWS_PER_MINUTE) if self.keep_logs else 0
        seconds = np.sort(self.rng.uniform(0, 60, keep))
        for i in range(keep):
            self._request_seq += 1
            code, model_code = statuses[i] if i < len(statuses) else (200, 200)
            self.logs[key].append(
                LogRow(
                    time=minute + timedelta(seconds=float(seconds[i])),
                    endpoint=endpoint,
                    deployment=deployment,
                    response_code=code,
                    model_status_code=model_code,
                    total_ms=float(latencies[i]),
                    request_id=f"req-{self._request_seq:09d}",
                    mirrored=not live,
                )
            )

    def _resources(self, endpoint: str, deployment: str, minute: datetime) -> None:
        key = (endpoint, deployment)
        if key not in self.first_traffic:
            return
        active = (minute - self.first_traffic[key]).total_seconds() / 60
        sc = self.scenario(endpoint, deployment).at(active)
        stats = self.stats[key].setdefault(minute, MinuteStats())
        noise = self.rng.normal(0, 1.5, 2)
        per_instance = sc.capacity_rpm_per_instance is not None
        served = load_per_instance(stats.requests, self._instances(endpoint, deployment), per_instance)
        stats.cpu = float(np.clip(sc.cpu_percent + sc.cpu_per_100rpm * served / 100 + noise[0], 0, 100))
        stats.memory = float(np.clip(sc.memory_percent + sc.memory_leak_per_hour * active / 60 + noise[1], 0, 100))

    def _instances(self, endpoint: str, deployment: str) -> int:
        return self.instances_of(endpoint, deployment) if self.instances_of is not None else 1

    # -- reading ------------------------------------------------------------------------------

    def minutes(self, endpoint: str, deployment: str, start: datetime, end: datetime) -> dict[datetime, MinuteStats]:
        series = self.stats.get((endpoint.lower(), deployment.lower()), {})
        return {m: s for m, s in series.items() if start <= m < end}

    def log_rows(self, endpoint: str, deployment: str, start: datetime, end: datetime) -> list[LogRow]:
        rows = self.logs.get((endpoint.lower(), deployment.lower()), [])
        return [r for r in rows if start <= r.time < end]

    def record_direct(self, endpoint: str, deployment: str, now: datetime, status: int, latency: float) -> None:
        """A request sent straight to a deployment (its `azureml-model-deployment` header): counted in
        its metrics and traffic log like any request it serves (no user sees it, so not in
        `user_answers`), without starting its scenario's clock."""
        key = (endpoint.lower(), deployment.lower())
        minute = now.replace(second=0, microsecond=0)
        stats = self.stats[key].setdefault(minute, MinuteStats())
        stats.requests += 1
        code = (status, 500) if status == 424 else (status, status)
        stats.by_status[code] += 1
        stats.latencies.append(latency)
        if self.keep_logs:
            self._request_seq += 1
            self.logs[key].append(
                LogRow(now, key[0], key[1], code[0], code[1], latency, f"req-{self._request_seq:09d}", mirrored=False)
            )

    def answer(self, endpoint: str, deployment: str, now: datetime) -> tuple[int, float]:
        """One direct request (smoke test): (status code, latency)."""
        key = (endpoint.lower(), deployment.lower())
        first = self.first_traffic.get(key, now)
        sc = self.scenario(endpoint, deployment).at((now - first).total_seconds() / 60)
        latency = float(self.rng.lognormal(np.log(sc.latency_ms), sc.latency_sigma))
        if sc.smoke_fails:
            return 424, latency
        return 200, latency
